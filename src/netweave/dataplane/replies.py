"""Frames the VTEP answers with itself: ARP replies and neighbour advertisements for suppression and for
the anycast gateway, ICMP fragmentation-needed / packet-too-big when a frame cannot fit the tunnel, and the
router's ICMP (echo replies from the gateway, time exceeded, destination unreachable). Built with the
codecs."""

from netweave.packet import (
    Arp,
    Ethernet,
    IcmpDestUnreach,
    IcmpEcho,
    IcmpTimeExceeded,
    Icmpv6DestUnreach,
    Icmpv6Echo,
    Icmpv6PacketTooBig,
    Icmpv6TimeExceeded,
    IPv4,
    IPv6,
    NdOption,
    NeighborAdvert,
    NeighborSolicit,
    build_stack,
)
from netweave.packet.header import Header
from netweave.packet.icmp import ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST, ICMP_FRAG_NEEDED, ICMPV6_ECHO_REPLY
from netweave.packet.ip import IPPROTO_ICMP, IPPROTO_ICMPV6

ETH_LEN = 14
IPV6_MIN_MTU = 1280
ICMP_QUOTE_MAX = 548  # RFC 1812 4.3.2.3: the reply stays within 576 bytes


def arp_reply(request: Arp, request_src_mac: str, answer_mac: str) -> bytes:
    """The reply the owner of `request.tpa` would send."""
    arp = Arp(op=Arp.REPLY, sha=answer_mac, spa=request.tpa, tha=request.sha, tpa=request.spa)
    return build_stack([Ethernet(dst=request_src_mac, src=answer_mac, type=0x0806), arp])


def neighbor_advert(ns_ip: IPv6, ns: NeighborSolicit, ns_src_mac: str, answer_mac: str, *,
                    router: bool = False) -> bytes:
    """A solicited NA for `ns.target` from its owner, with the target link-layer address option. A
    gateway's NA has the router flag: a host that sees it clear drops the sender from its default routers
    (RFC 4861 7.2.5)."""
    dst = ns_ip.src
    solicited = 1
    if dst == "::":  # DAD probe: answer to all-nodes, not solicited (RFC 4861 7.2.4)
        dst, solicited = "ff02::1", 0
    ip = IPv6(src=ns.target, dst=dst, next_header=IPPROTO_ICMPV6, hop_limit=255)
    na = NeighborAdvert(router=int(router), solicited=solicited, override=1, target=ns.target,
                        options=[NdOption.lladdr(answer_mac, target=True)])
    return build_stack([Ethernet(dst=ns_src_mac, src=answer_mac, type=0x86DD), ip, na])


def frag_needed(frame: bytes, mtu: int) -> bytes | None:
    """ICMP destination-unreachable/fragmentation-needed (IPv4) or packet-too-big (IPv6) for `frame`,
    addressed back to its sender as if from its destination; None where no such message applies."""
    eth, off, _ = Ethernet.parse(frame)
    if eth.type == 0x0800:
        ip4, l4, _ = IPv4.parse(frame, off)
        if not ip4.df:
            return None  # no DF: the sender's stack may fragment
        if ip4.proto == IPPROTO_ICMP and len(frame) > l4 and frame[l4] not in (0, 8):
            return None  # never answer an ICMP error with another
        quote = frame[off : off + min(len(frame) - off, ICMP_QUOTE_MAX)]
        return build_stack([
            Ethernet(dst=eth.src, src=eth.dst, type=0x0800),
            IPv4(src=ip4.dst, dst=ip4.src, proto=IPPROTO_ICMP, ttl=64),
            IcmpDestUnreach(code=ICMP_FRAG_NEEDED, next_hop_mtu=mtu),
        ], quote)
    if eth.type == 0x86DD:
        ip6, _, _ = IPv6.parse(frame, off)
        quote = frame[off : off + min(len(frame) - off, IPV6_MIN_MTU - 40 - 8)]
        return build_stack([
            Ethernet(dst=eth.src, src=eth.dst, type=0x86DD),
            IPv6(src=ip6.dst, dst=ip6.src, next_header=IPPROTO_ICMPV6, hop_limit=64),
            Icmpv6PacketTooBig(mtu=max(mtu, IPV6_MIN_MTU)),
        ], quote)
    return None


def echo_reply(frame: bytes) -> bytes | None:
    """The answer to the ICMP / ICMPv6 echo request in `frame` from its destination (a gateway address),
    or None when `frame` is not an echo request."""
    eth, off, _ = Ethernet.parse(frame)
    if eth.type == 0x0800:
        ip4, l4, end = IPv4.parse(frame, off)
        if ip4.proto != IPPROTO_ICMP or ip4.frag_offset or ip4.mf or frame[l4] != ICMP_ECHO_REQUEST:
            return None
        echo, data, _ = IcmpEcho.parse(frame[:end], l4)
        return build_stack([Ethernet(dst=eth.src, src=eth.dst, type=0x0800),
                            IPv4(src=ip4.dst, dst=ip4.src, proto=IPPROTO_ICMP, ttl=64),
                            IcmpEcho(type=ICMP_ECHO_REPLY, ident=echo.ident, seq=echo.seq)], frame[data:end])
    if eth.type == 0x86DD:
        ip6, l4, end = IPv6.parse(frame, off)
        if ip6.next_header != IPPROTO_ICMPV6 or frame[l4] != 128:
            return None
        echo6, data, _ = Icmpv6Echo.parse(frame[:end], l4)
        return build_stack([Ethernet(dst=eth.src, src=eth.dst, type=0x86DD),
                            IPv6(src=ip6.dst, dst=ip6.src, next_header=IPPROTO_ICMPV6, hop_limit=64),
                            Icmpv6Echo(type=ICMPV6_ECHO_REPLY, ident=echo6.ident, seq=echo6.seq)],
                           frame[data:end])
    return None


def icmp_error(frame: bytes, src_ip: str, src_mac: str, *, time_exceeded: bool,
               code: int = 0) -> bytes | None:
    """ICMP time-exceeded (`time_exceeded`) or destination-unreachable with `code` for the IP packet in
    `frame`, from the router address `src_ip` back to the sender. None where RFC 1812 4.3.2.7 / RFC 4443
    2.4 forbid one: the offending packet is itself an ICMP error, or was sent to a broadcast/multicast
    address. Codes: IPv4 0 net / 1 host unreachable; IPv6 0 no route / 3 address unreachable."""
    eth, off, _ = Ethernet.parse(frame)
    if frame[0] & 1:
        return None  # sent to an Ethernet broadcast/multicast address
    icmp: Header
    if eth.type == 0x0800:
        ip4, l4, _ = IPv4.parse(frame, off)
        if frame[off + 16] >= 224 or ip4.dst == "255.255.255.255":
            return None  # to an IP multicast (or class E) or limited broadcast address
        if ip4.proto == IPPROTO_ICMP and len(frame) > l4 and frame[l4] not in (0, 8):
            return None
        if ip4.frag_offset:
            return None  # only about the first fragment
        icmp = IcmpTimeExceeded(code=0) if time_exceeded else IcmpDestUnreach(code=code)
        quote = frame[off : off + min(len(frame) - off, ICMP_QUOTE_MAX)]
        return build_stack([Ethernet(dst=eth.src, src=src_mac, type=0x0800),
                            IPv4(src=src_ip, dst=ip4.src, proto=IPPROTO_ICMP, ttl=64), icmp], quote)
    if eth.type == 0x86DD:
        ip6, l4, _ = IPv6.parse(frame, off)
        if frame[off + 24] == 0xFF:
            return None  # to an IPv6 multicast address
        if ip6.next_header == IPPROTO_ICMPV6 and len(frame) > l4 and frame[l4] < 128:
            return None
        icmp = Icmpv6TimeExceeded(code=0) if time_exceeded else Icmpv6DestUnreach(code=code)
        quote = frame[off : off + min(len(frame) - off, IPV6_MIN_MTU - 40 - 8)]
        return build_stack([Ethernet(dst=eth.src, src=src_mac, type=0x86DD),
                            IPv6(src=src_ip, dst=ip6.src, next_header=IPPROTO_ICMPV6, hop_limit=64), icmp],
                           quote)
    return None
