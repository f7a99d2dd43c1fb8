"""Frames the VTEP answers with itself: ARP replies and neighbour advertisements for suppression, and
ICMP fragmentation-needed / packet-too-big when a frame cannot fit the tunnel. Built with the codecs."""

from netweave.packet import (
    Arp,
    Ethernet,
    IcmpDestUnreach,
    Icmpv6PacketTooBig,
    IPv4,
    IPv6,
    NdOption,
    NeighborAdvert,
    NeighborSolicit,
    build_stack,
)
from netweave.packet.icmp import ICMP_FRAG_NEEDED
from netweave.packet.ip import IPPROTO_ICMP, IPPROTO_ICMPV6

ETH_LEN = 14
IPV6_MIN_MTU = 1280
ICMP_QUOTE_MAX = 548  # RFC 1812 4.3.2.3: the reply stays within 576 bytes


def arp_reply(request: Arp, request_src_mac: str, answer_mac: str) -> bytes:
    """The reply the owner of `request.tpa` would send."""
    arp = Arp(op=Arp.REPLY, sha=answer_mac, spa=request.tpa, tha=request.sha, tpa=request.spa)
    return build_stack([Ethernet(dst=request_src_mac, src=answer_mac, type=0x0806), arp])


def neighbor_advert(ns_ip: IPv6, ns: NeighborSolicit, ns_src_mac: str, answer_mac: str) -> bytes:
    """A solicited NA for `ns.target` from its owner, with the target link-layer address option."""
    dst = ns_ip.src
    solicited = 1
    if dst == "::":  # DAD probe: answer to all-nodes, not solicited (RFC 4861 7.2.4)
        dst, solicited = "ff02::1", 0
    ip = IPv6(src=ns.target, dst=dst, next_header=IPPROTO_ICMPV6, hop_limit=255)
    na = NeighborAdvert(solicited=solicited, override=1, target=ns.target,
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
