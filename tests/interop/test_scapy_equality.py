"""Byte-for-byte equality of every netweave.packet header with scapy, in both directions.

For each header, with the same field values on both sides:

(a) our build and scapy's build give identical bytes; fields that are computed (lengths, checksums: None in
    ours, left unset in scapy) are computed independently by each side, so the whole byte string is compared;
(b) our parser, fed scapy's bytes, returns exactly the field values we gave (and, for the computed fields,
    the values scapy wrote).

scapy defaults that differ from ours (IP id=1, TCP window 8192 and flags S, Dot1Q vlan=1, NA R=O=1, LACP
priorities 0, UDP ports 53, ...) are never relied on: every field is passed explicitly to both sides. Ether
src/dst are always given, so scapy never looks up routes or ARP for them.
"""

import socket
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.lacp import LACP, SlowProtocol
from scapy.layers.inet import (
    ICMP,
    IP,
    TCP,
    UDP,
    IPOption,
    IPOption_NOP,
    IPOption_Router_Alert,
    TCPOptions,
    icmp_id_seq_types,
)
from scapy.layers.inet6 import (
    HBHOptUnknown,
    ICMPv6DestUnreach,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    ICMPv6TimeExceeded,
    ICMPv6Unknown,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    Pad1,
    PadN,
)
from scapy.layers.l2 import ARP, GRE, Dot1AD, Dot1Q, Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw
from scapy.utils import RawPcapReader, RawPcapWriter

import netweave.packet as nw
from netweave.packet.registry import lookup

pytestmark = pytest.mark.interop

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SRC_MAC = "02:00:00:00:00:01"
DST_MAC = "02:00:00:00:00:02"
ETH_P_IP, ETH_P_ARP, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x0806, 0x8100, 0x88A8
ETH_P_IPV6, ETH_P_SLOW, ETH_P_TEB = 0x86DD, 0x8809, 0x6558
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_GRE, PROTO_ICMPV6 = 1, 6, 17, 47, 58
PROTO_HOPOPTS, PROTO_ROUTING, PROTO_FRAGMENT, PROTO_DSTOPTS = 0, 43, 44, 60
VXLAN_PORT, GENEVE_PORT, STT_PORT = 4789, 6081, 7471
TUNNEL_UDP_PORTS = (VXLAN_PORT, GENEVE_PORT)


# ---------------------------------------------------------------------------------------------------------
# strategies and helpers


def uint(bits: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=(1 << bits) - 1)


u8, u16, u32 = uint(8), uint(16), uint(32)
macs = st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))
ipv4s = st.binary(min_size=4, max_size=4).map(lambda b: socket.inet_ntop(socket.AF_INET, b))
ipv6s = st.binary(min_size=16, max_size=16).map(lambda b: socket.inet_ntop(socket.AF_INET6, b))
payloads = st.binary(max_size=64)


def parse_chain(buf: bytes, *classes: type[nw.Header]) -> tuple[list[nw.Header], bytes]:
    """Parse `buf` as exactly these headers one after another (as `decode` does, without the registry)."""
    layers = []
    off, end = 0, len(buf)
    for cls in classes:
        hdr, off, end = cls.parse(buf[:end], off)
        layers.append(hdr)
    return layers, buf[off:end]


def given_with(hdr: nw.Header, **computed: object) -> dict[str, object]:
    """The field values `hdr` was built from, with the fields it left None (computed on build) replaced by
    the values scapy computed. Fields given explicitly keep the given value."""
    values = hdr.to_dict()
    for name, value in computed.items():
        if values[name] is None:
            values[name] = value
    return values


def word(buf: bytes, off: int) -> int:
    """The 16-bit value scapy wrote at `off`. Computed fields are read from scapy's bytes rather than from
    re-dissecting them with scapy, whose dissectors can raise on arbitrary payloads."""
    return int.from_bytes(buf[off : off + 2], "big")


def outer_pair(v6: bool, proto: int, src: str, dst: str, *, ident: int = 0x1234, ttl: int = 64):
    """Our and scapy's Ethernet + IP headers with the same explicit field values."""
    if v6:
        return (
            [nw.Ethernet(dst=DST_MAC, src=SRC_MAC, type=ETH_P_IPV6),
             nw.IPv6(tclass=0, flow_label=ident, next_header=proto, hop_limit=ttl, src=src, dst=dst)],
            Ether(dst=DST_MAC, src=SRC_MAC, type=ETH_P_IPV6)
            / IPv6(tc=0, fl=ident, nh=proto, hlim=ttl, src=src, dst=dst),
        )
    return (
        [nw.Ethernet(dst=DST_MAC, src=SRC_MAC, type=ETH_P_IP),
         nw.IPv4(dscp=0, ecn=0, ident=ident, df=0, mf=0, frag_offset=0, ttl=ttl, proto=proto,
                 src=src, dst=dst)],
        Ether(dst=DST_MAC, src=SRC_MAC, type=ETH_P_IP)
        / IP(version=4, tos=0, id=ident, flags=0, frag=0, ttl=ttl, proto=proto, src=src, dst=dst),
    )


# ---------------------------------------------------------------------------------------------------------
# Ethernet, 802.1Q / 802.1ad, ARP


@SETTINGS
@given(dst=macs, src=macs, etype=u16, payload=payloads)
def test_ethernet(*, dst: str, src: str, etype: int, payload: bytes) -> None:
    ours = nw.Ethernet(dst=dst, src=src, type=etype)
    theirs = bytes(Ether(dst=dst, src=src, type=etype) / Raw(payload))
    assert ours.build(payload) == theirs
    (eth,), rest = parse_chain(theirs, nw.Ethernet)
    assert eth.to_dict() == ours.to_dict()
    assert rest == payload


@SETTINGS
@given(pcp=uint(3), dei=uint(1), vid=uint(12), etype=u16, payload=payloads)
def test_dot1q(*, pcp: int, dei: int, vid: int, etype: int, payload: bytes) -> None:
    ours = [nw.Ethernet(dst=DST_MAC, src=SRC_MAC, type=ETH_P_8021Q),
            nw.Dot1Q(pcp=pcp, dei=dei, vid=vid, type=etype)]
    theirs = bytes(Ether(dst=DST_MAC, src=SRC_MAC, type=ETH_P_8021Q)
                   / Dot1Q(prio=pcp, dei=dei, vlan=vid, type=etype) / Raw(payload))
    assert nw.build_stack(ours, payload) == theirs
    parsed, rest = parse_chain(theirs, nw.Ethernet, nw.Dot1Q)
    assert [h.to_dict() for h in parsed] == [h.to_dict() for h in ours]
    assert rest == payload


@SETTINGS
@given(s_pcp=uint(3), s_dei=uint(1), s_vid=uint(12), c_pcp=uint(3), c_dei=uint(1), c_vid=uint(12),
       etype=u16, payload=payloads)
def test_qinq_8021ad_over_8021q(
    *, s_pcp: int, s_dei: int, s_vid: int, c_pcp: int, c_dei: int, c_vid: int, etype: int, payload: bytes
) -> None:
    ours = [
        nw.Ethernet(dst=DST_MAC, src=SRC_MAC, type=ETH_P_8021AD),
        nw.Dot1Q(pcp=s_pcp, dei=s_dei, vid=s_vid, type=ETH_P_8021Q),
        nw.Dot1Q(pcp=c_pcp, dei=c_dei, vid=c_vid, type=etype),
    ]
    theirs = bytes(
        Ether(dst=DST_MAC, src=SRC_MAC, type=ETH_P_8021AD)
        / Dot1AD(prio=s_pcp, dei=s_dei, vlan=s_vid, type=ETH_P_8021Q)
        / Dot1Q(prio=c_pcp, dei=c_dei, vlan=c_vid, type=etype)
        / Raw(payload)
    )
    assert nw.build_stack(ours, payload) == theirs
    parsed, rest = parse_chain(theirs, nw.Ethernet, nw.Dot1Q, nw.Dot1Q)
    assert [h.to_dict() for h in parsed] == [h.to_dict() for h in ours]
    assert rest == payload
    if lookup("ethertype", etype) is None:  # the registry walks both tags; the rest is payload
        pkt = nw.decode(theirs)
        assert [h.to_dict() for h in pkt.layers] == [h.to_dict() for h in ours]
        assert pkt.payload == payload


@SETTINGS
@given(hwtype=st.one_of(st.just(1), u16), ptype=st.one_of(st.just(ETH_P_IP), u16), op=u16,
       sha=macs, spa=ipv4s, tha=macs, tpa=ipv4s)
def test_arp(*, hwtype: int, ptype: int, op: int, sha: str, spa: str, tha: str, tpa: str) -> None:
    ours = nw.Arp(hwtype=hwtype, ptype=ptype, hwlen=6, plen=4, op=op, sha=sha, spa=spa, tha=tha, tpa=tpa)
    # scapy types hwsrc/psrc from hwtype/ptype; for other types it takes the raw address bytes
    hw = (lambda m: m) if hwtype == 1 else nw.mac_to_bytes
    pa = (lambda a: a) if ptype == ETH_P_IP else (lambda a: socket.inet_pton(socket.AF_INET, a))
    theirs = bytes(
        Ether(dst=nw.BROADCAST_MAC, src=sha, type=ETH_P_ARP)
        / ARP(hwtype=hwtype, ptype=ptype, hwlen=6, plen=4, op=op,
              hwsrc=hw(sha), psrc=pa(spa), hwdst=hw(tha), pdst=pa(tpa))
    )
    assert nw.build_stack([nw.Ethernet(dst=nw.BROADCAST_MAC, src=sha, type=ETH_P_ARP), ours]) == theirs
    pkt = nw.decode(theirs)
    assert [type(h) for h in pkt.layers] == [nw.Ethernet, nw.Arp]
    assert pkt.layers[1].to_dict() == ours.to_dict()


# ---------------------------------------------------------------------------------------------------------
# IPv4


_SCAPY_IP_OPTION_NUMBERS = frozenset(IPOption.registered_ip_options)


@st.composite
def ipv4_options(draw: st.DrawFn) -> tuple[bytes, list[ScapyPacket]]:
    """(wire bytes, scapy option objects): NOPs, router alerts and generic TLVs of option numbers scapy has
    no special class for, end-of-list padded to a multiple of 4 bytes, at most 40."""
    items = draw(st.lists(st.one_of(
        st.just(("nop", 0)),
        st.tuples(st.just("ra"), u16),
        st.tuples(u8.filter(lambda t: t & 0x1F not in _SCAPY_IP_OPTION_NUMBERS), st.binary(max_size=8)),
    ), max_size=5))
    wire, objs = b"", []
    for kind, value in items:
        if kind == "nop":
            wire += b"\x01"
            objs.append(IPOption_NOP())
        elif kind == "ra":
            wire += b"\x94\x04" + value.to_bytes(2, "big")
            objs.append(IPOption_Router_Alert(alert=value))
        else:
            wire += bytes((kind, 2 + len(value))) + value
            objs.append(IPOption(copy_flag=kind >> 7, optclass=(kind >> 5) & 3, option=kind & 0x1F,
                                 value=value))
    wire += bytes(-len(wire) % 4)  # end-of-option-list padding (scapy adds it on its own)
    assume(len(wire) <= 40)
    return wire, objs


@SETTINGS
@given(dscp=uint(6), ecn=uint(2), ident=u16, reserved=uint(1), df=uint(1), mf=uint(1), frag=uint(13),
       ttl=u8, proto=u8, src=ipv4s, dst=ipv4s, opts=ipv4_options(), payload=payloads)
def test_ipv4(*, dscp: int, ecn: int, ident: int, reserved: int, df: int, mf: int, frag: int, ttl: int,
              proto: int, src: str, dst: str, opts: tuple[bytes, list[ScapyPacket]], payload: bytes) -> None:
    wire_opts, scapy_opts = opts
    ours = nw.IPv4(dscp=dscp, ecn=ecn, ident=ident, reserved=reserved, df=df, mf=mf, frag_offset=frag,
                   ttl=ttl, proto=proto, src=src, dst=dst, options=wire_opts)
    scapy_ip = IP(version=4, tos=dscp << 2 | ecn, id=ident, flags=reserved << 2 | df << 1 | mf, frag=frag,
                  ttl=ttl, proto=proto, src=src, dst=dst, options=scapy_opts)
    theirs = bytes(scapy_ip / Raw(payload))
    assert ours.build(payload) == theirs
    (ip,), rest = parse_chain(theirs, nw.IPv4)
    assert ip.to_dict() == given_with(ours, ihl=theirs[0] & 0xF, total_length=word(theirs, 2),
                                      checksum=word(theirs, 10))
    assert rest == payload
    assert ip.checksum_ok()


@SETTINGS
@given(ident=u16, ttl=u8, proto=u8, checksum=u16, src=ipv4s, dst=ipv4s, payload=payloads)
def test_ipv4_explicit_length_and_checksum_are_sent_as_given(
    *, ident: int, ttl: int, proto: int, checksum: int, src: str, dst: str, payload: bytes
) -> None:
    total = 20 + len(payload)
    ours = nw.IPv4(ihl=5, total_length=total, ident=ident, ttl=ttl, proto=proto, checksum=checksum,
                   src=src, dst=dst)
    theirs = bytes(IP(ihl=5, len=total, tos=0, id=ident, flags=0, frag=0, ttl=ttl, proto=proto,
                      chksum=checksum, src=src, dst=dst) / Raw(payload))
    assert ours.build(payload) == theirs
    (ip,), _ = parse_chain(theirs, nw.IPv4)
    assert ip.to_dict() == ours.to_dict()


# ---------------------------------------------------------------------------------------------------------
# IPv6 and its extension headers


@SETTINGS
@given(tclass=u8, flow=uint(20), nh=u8, hlim=u8, src=ipv6s, dst=ipv6s, payload=payloads)
def test_ipv6(*, tclass: int, flow: int, nh: int, hlim: int, src: str, dst: str, payload: bytes) -> None:
    ours = nw.IPv6(tclass=tclass, flow_label=flow, next_header=nh, hop_limit=hlim, src=src, dst=dst)
    theirs = bytes(IPv6(tc=tclass, fl=flow, nh=nh, hlim=hlim, src=src, dst=dst) / Raw(payload))
    assert ours.build(payload) == theirs
    (ip,), rest = parse_chain(theirs, nw.IPv6)
    assert ip.to_dict() == given_with(ours, payload_length=word(theirs, 4))
    assert rest == payload


@st.composite
def ipv6_option_area(draw: st.DrawFn) -> tuple[bytes, list[ScapyPacket]]:
    """(data bytes, scapy options) of a hop-by-hop / destination options header: Pad1, PadN and arbitrary
    TLVs, padded with Pad1/PadN so that the header is a multiple of 8 bytes."""
    items = draw(st.lists(st.one_of(
        st.just((0, b"")),  # Pad1
        st.tuples(u8.filter(bool), st.binary(max_size=12)),  # any TLV incl. PadN (type 1)
    ), max_size=4))
    wire, objs = b"", []
    for otype, data in items:
        if otype == 0:
            wire += b"\x00"
            objs.append(Pad1())
        else:
            wire += bytes((otype, len(data))) + data
            objs.append(HBHOptUnknown(otype=otype, optdata=data))
    pad = -(2 + len(wire)) % 8
    if pad == 1:
        wire += b"\x00"
        objs.append(Pad1())
    elif pad:
        wire += bytes((1, pad - 2)) + bytes(pad - 2)
        objs.append(PadN(optdata=bytes(pad - 2)))
    return wire, objs


OPTION_HEADERS = [(nw.IPv6HopByHop, IPv6ExtHdrHopByHop), (nw.IPv6DestOpts, IPv6ExtHdrDestOpt)]


@pytest.mark.parametrize(("ours_cls", "scapy_cls"), OPTION_HEADERS, ids=["hop-by-hop", "destopts"])
@SETTINGS
@given(nh=u8, area=ipv6_option_area(), payload=payloads)
def test_ipv6_option_headers(*, ours_cls: type[nw.Header], scapy_cls: type[ScapyPacket], nh: int,
                             area: tuple[bytes, list[ScapyPacket]], payload: bytes) -> None:
    data, opts = area
    ours = ours_cls(next_header=nh, data=data)
    theirs = bytes(scapy_cls(nh=nh, options=opts) / Raw(payload))
    assert ours.build(payload) == theirs
    (hdr,), rest = parse_chain(theirs, ours_cls)
    assert hdr.to_dict() == given_with(ours, hdr_ext_len=theirs[1])
    assert rest == payload


@pytest.mark.parametrize(("ours_cls", "scapy_cls"), OPTION_HEADERS, ids=["hop-by-hop", "destopts"])
def test_ipv6_option_headers_default_is_scapys_autopad(*, ours_cls: type[nw.Header],
                                                        scapy_cls: type[ScapyPacket]) -> None:
    # our default data (one PadN covering 6 bytes) is exactly what scapy's autopad makes of no options
    assert bytes(ours_cls(next_header=59)) == bytes(scapy_cls(nh=59))


def routing_data(rtype: int, segleft: int, reserved: int, addresses: list[str]) -> bytes:
    """The routing header after next-header/length: type, segments left, 32 reserved bits, addresses."""
    return (bytes((rtype, segleft)) + reserved.to_bytes(4, "big")
            + b"".join(socket.inet_pton(socket.AF_INET6, a) for a in addresses))


@SETTINGS
@given(nh=u8, rtype=u8, segleft=u8, reserved=u32, addresses=st.lists(ipv6s, max_size=4), payload=payloads)
def test_ipv6_routing(*, nh: int, rtype: int, segleft: int, reserved: int, addresses: list[str],
                      payload: bytes) -> None:
    ours = nw.IPv6Routing(next_header=nh, data=routing_data(rtype, segleft, reserved, addresses))
    theirs = bytes(IPv6ExtHdrRouting(nh=nh, type=rtype, segleft=segleft, reserved=reserved,
                                     addresses=addresses) / Raw(payload))
    assert ours.build(payload) == theirs
    (hdr,), rest = parse_chain(theirs, nw.IPv6Routing)
    assert hdr.to_dict() == given_with(ours, hdr_ext_len=theirs[1])  # the length scapy wrote
    assert rest == payload


@SETTINGS
@given(nh=u8, reserved=u8, offset=uint(13), res=uint(2), m=uint(1), ident=u32, payload=payloads)
def test_ipv6_fragment(*, nh: int, reserved: int, offset: int, res: int, m: int, ident: int,
                       payload: bytes) -> None:
    ours = nw.IPv6Fragment(next_header=nh, reserved=reserved, offset=offset, res=res, m=m, ident=ident)
    theirs = bytes(IPv6ExtHdrFragment(nh=nh, res1=reserved, offset=offset, res2=res, m=m, id=ident)
                   / Raw(payload))
    assert ours.build(payload) == theirs
    (hdr,), rest = parse_chain(theirs, nw.IPv6Fragment)
    assert hdr.to_dict() == ours.to_dict()
    assert rest == payload


EXT_PROTO = {"hbh": PROTO_HOPOPTS, "routing": PROTO_ROUTING, "fragment": PROTO_FRAGMENT,
             "destopts": PROTO_DSTOPTS}


@st.composite
def ext_header_spec(draw: st.DrawFn, *, segleft: st.SearchStrategy[int]) -> tuple[str, tuple]:
    kind = draw(st.sampled_from(sorted(EXT_PROTO)))
    if kind in ("hbh", "destopts"):
        return kind, draw(ipv6_option_area())
    if kind == "routing":
        return kind, (draw(st.sampled_from([0, 2])), draw(segleft), draw(u32),
                      draw(st.lists(ipv6s, min_size=1, max_size=3)))
    # a first fragment (offset 0): the UDP header behind it is what both sides checksum
    return kind, (draw(u8), draw(uint(2)), draw(uint(1)), draw(u32))


def ext_header_pair(spec: tuple[str, tuple], nh: int) -> tuple[nw.Header, ScapyPacket]:
    kind, params = spec
    if kind in ("hbh", "destopts"):
        data, opts = params
        ours_cls, scapy_cls = OPTION_HEADERS[0] if kind == "hbh" else OPTION_HEADERS[1]
        return ours_cls(next_header=nh, data=data), scapy_cls(nh=nh, options=opts)
    if kind == "routing":
        rtype, segleft, reserved, addresses = params
        return (nw.IPv6Routing(next_header=nh, data=routing_data(rtype, segleft, reserved, addresses)),
                IPv6ExtHdrRouting(nh=nh, type=rtype, segleft=segleft, reserved=reserved, addresses=addresses))
    reserved, res, m, ident = params
    return (nw.IPv6Fragment(next_header=nh, reserved=reserved, offset=0, res=res, m=m, ident=ident),
            IPv6ExtHdrFragment(nh=nh, res1=reserved, offset=0, res2=res, m=m, id=ident))


def build_ipv6_ext_udp(specs, *, tclass, flow, hlim, src, dst, sport, dport, payload):
    """The same Ether/IPv6/extension headers/UDP stack from ours and from scapy, all autos left unset."""
    protos = [EXT_PROTO[kind] for kind, _ in specs] + [PROTO_UDP]
    pairs = [ext_header_pair(spec, protos[i + 1]) for i, spec in enumerate(specs)]
    ours = [
        nw.Ethernet(dst=DST_MAC, src=SRC_MAC, type=ETH_P_IPV6),
        nw.IPv6(tclass=tclass, flow_label=flow, next_header=protos[0], hop_limit=hlim, src=src, dst=dst),
        *(o for o, _ in pairs),
        nw.Udp(sport=sport, dport=dport),
    ]
    scapy_pkt = Ether(dst=DST_MAC, src=SRC_MAC, type=ETH_P_IPV6) / IPv6(
        tc=tclass, fl=flow, nh=protos[0], hlim=hlim, src=src, dst=dst)
    for _, layer in pairs:
        scapy_pkt = scapy_pkt / layer
    scapy_pkt = scapy_pkt / UDP(sport=sport, dport=dport) / Raw(payload)
    return ours, bytes(scapy_pkt)


@SETTINGS
@given(specs=st.lists(ext_header_spec(segleft=st.just(0)), min_size=1, max_size=3), tclass=u8,
       flow=uint(20), hlim=u8, src=ipv6s, dst=ipv6s, sport=u16, dport=u16, payload=payloads)
def test_ipv6_extension_chain_udp(*, specs, tclass, flow, hlim, src, dst, sport, dport, payload) -> None:
    ours, theirs = build_ipv6_ext_udp(specs, tclass=tclass, flow=flow, hlim=hlim, src=src, dst=dst,
                                      sport=sport, dport=dport, payload=payload)
    assert nw.build_stack(ours, payload) == theirs
    parsed, rest = parse_chain(theirs, *(type(h) for h in ours))
    computed: list[dict[str, object]] = [{}, {"payload_length": word(theirs, 18)}]
    off = 54
    for ext in ours[2:-1]:
        computed.append({} if isinstance(ext, nw.IPv6Fragment) else {"hdr_ext_len": theirs[off + 1]})
        off += len(ext.header_bytes())
    computed.append({"length": word(theirs, off + 4), "checksum": word(theirs, off + 6)})
    assert [h.to_dict() for h in parsed] == [given_with(o, **c) for o, c in zip(ours, computed, strict=True)]
    assert rest == payload
    if dport not in TUNNEL_UDP_PORTS:  # the registry walks the extension headers to UDP
        pkt = nw.decode(theirs)
        assert [h.to_dict() for h in pkt.layers] == [h.to_dict() for h in parsed]
        assert pkt.payload == payload


@settings(max_examples=20, deadline=None)
@given(rtype=st.sampled_from([0, 2]), segleft=st.integers(1, 255), addresses=st.lists(ipv6s, min_size=1,
       max_size=3), src=ipv6s, dst=ipv6s, sport=u16, dport=u16, payload=payloads)
def test_ipv6_routing_header_with_segments_left_checksums_final_destination(
    *, rtype, segleft, addresses, src, dst, sport, dport, payload
) -> None:
    # RFC 8200 8.1: "If the IPv6 packet contains a Routing header, the Destination Address used in the
    # pseudo-header is that of the final destination" -- at the source, the last address of a type 0/2
    # routing header. scapy's in6_chksum does exactly that when segments left is non-zero; we use the
    # IPv6 header's dst (the next hop), so every receiver drops the datagram for a bad checksum.
    assume(addresses[-1] != dst)
    specs = [("routing", (rtype, segleft, 0, addresses))]
    ours, theirs = build_ipv6_ext_udp(specs, tclass=0, flow=0, hlim=64, src=src, dst=dst, sport=sport,
                                      dport=dport, payload=payload)
    assert nw.build_stack(ours, payload) == theirs


# ---------------------------------------------------------------------------------------------------------
# UDP and TCP over IPv4 and IPv6


FAMILIES = pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])


@FAMILIES
@SETTINGS
@given(src4=ipv4s, dst4=ipv4s, src6=ipv6s, dst6=ipv6s, ident=uint(20), sport=u16, dport=u16, payload=payloads)
def test_udp(*, v6: bool, src4: str, dst4: str, src6: str, dst6: str, ident: int, sport: int, dport: int,
             payload: bytes) -> None:
    src, dst = (src6, dst6) if v6 else (src4, dst4)
    outer, scapy_outer = outer_pair(v6, PROTO_UDP, src, dst, ident=ident if v6 else ident & 0xFFFF)
    ours = [*outer, nw.Udp(sport=sport, dport=dport)]
    theirs = bytes(scapy_outer / UDP(sport=sport, dport=dport) / Raw(payload))
    assert nw.build_stack(ours, payload) == theirs
    parsed, rest = parse_chain(theirs, *(type(h) for h in ours))
    l4 = 54 if v6 else 34
    assert parsed[2].to_dict() == given_with(ours[2], length=word(theirs, l4 + 4),
                                             checksum=word(theirs, l4 + 6))
    assert rest == payload
    if dport not in TUNNEL_UDP_PORTS:
        assert nw.decode(theirs).layers == parsed


@FAMILIES
@SETTINGS
@given(src4=ipv4s, dst4=ipv4s, src6=ipv6s, dst6=ipv6s, sport=u16, dport=u16, payload=payloads)
def test_udp_checksum_zero_is_sent_as_ffff(*, v6: bool, src4: str, dst4: str, src6: str, dst6: str,
                                           sport: int, dport: int, payload: bytes) -> None:
    # append the one 16-bit word that makes the computed checksum 0: both must send 0xffff (RFC 768/8200)
    src, dst = (src6, dst6) if v6 else (src4, dst4)
    payload += bytes(len(payload) % 2)
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload) + 2, 0) + payload + b"\x00\x00"
    payload += nw.internet_checksum(nw.pseudo_header(src, dst, PROTO_UDP, len(seg)) + seg).to_bytes(2, "big")
    outer, scapy_outer = outer_pair(v6, PROTO_UDP, src, dst)
    theirs = bytes(scapy_outer / UDP(sport=sport, dport=dport) / Raw(payload))
    assert nw.build_stack([*outer, nw.Udp(sport=sport, dport=dport)], payload) == theirs
    assert theirs[-len(payload) - 2 : -len(payload)] == b"\xff\xff"


_SCAPY_TCP_KINDS = frozenset(TCPOptions[0])


@st.composite
def tcp_options(draw: st.DrawFn) -> tuple[bytes, list[tuple[object, object]]]:
    """(wire bytes, scapy option list): the options scapy knows by name plus TLVs of kinds it does not,
    end-of-list padded to a multiple of 4 bytes, at most 40."""
    items = draw(st.lists(st.one_of(
        st.just(("NOP", None)),
        st.tuples(st.just("MSS"), u16),
        st.tuples(st.just("WScale"), u8),
        st.just(("SAckOK", b"")),
        st.tuples(st.just("Timestamp"), st.tuples(u32, u32)),
        st.tuples(st.just("SAck"), st.lists(st.tuples(u32, u32), min_size=1, max_size=3).map(
            lambda edges: tuple(e for pair in edges for e in pair))),
        st.tuples(u8.filter(lambda k: k not in _SCAPY_TCP_KINDS), st.binary(max_size=8)),
    ), max_size=5))
    wire = b""
    for name, value in items:
        if name == "NOP":
            wire += b"\x01"
        elif name == "MSS":
            wire += b"\x02\x04" + struct.pack("!H", value)
        elif name == "WScale":
            wire += b"\x03\x03" + bytes((value,))
        elif name == "SAckOK":
            wire += b"\x04\x02"
        elif name == "Timestamp":
            wire += b"\x08\x0a" + struct.pack("!II", *value)
        elif name == "SAck":
            wire += bytes((5, 2 + 4 * len(value))) + struct.pack(f"!{len(value)}I", *value)
        else:
            wire += bytes((name, 2 + len(value))) + value
    wire += bytes(-len(wire) % 4)
    assume(len(wire) <= 40)
    return wire, items


@FAMILIES
@SETTINGS
@given(src4=ipv4s, dst4=ipv4s, src6=ipv6s, dst6=ipv6s, sport=u16, dport=u16, seq=u32, ack=u32,
       reserved=uint(3), flags=uint(9), window=u16, urgptr=u16, opts=tcp_options(), payload=payloads)
def test_tcp(*, v6: bool, src4: str, dst4: str, src6: str, dst6: str, sport: int, dport: int, seq: int,
             ack: int, reserved: int, flags: int, window: int, urgptr: int,
             opts: tuple[bytes, list[tuple[object, object]]], payload: bytes) -> None:
    src, dst = (src6, dst6) if v6 else (src4, dst4)
    wire_opts, scapy_opts = opts
    outer, scapy_outer = outer_pair(v6, PROTO_TCP, src, dst)
    tcp = nw.Tcp(sport=sport, dport=dport, seq=seq, ack=ack, reserved=reserved, flags=flags, window=window,
                 urgptr=urgptr, options=wire_opts)
    theirs = bytes(scapy_outer / TCP(sport=sport, dport=dport, seq=seq, ack=ack, reserved=reserved,
                                     flags=flags, window=window, urgptr=urgptr, options=scapy_opts)
                   / Raw(payload))
    assert nw.build_stack([*outer, tcp], payload) == theirs
    parsed, rest = parse_chain(theirs, *(type(h) for h in outer), nw.Tcp)
    l4 = 54 if v6 else 34
    assert parsed[2].to_dict() == given_with(tcp, dataofs=theirs[l4 + 12] >> 4,
                                             checksum=word(theirs, l4 + 16))
    assert rest == payload
    if dport != STT_PORT:
        assert nw.decode(theirs).layers == parsed


# ---------------------------------------------------------------------------------------------------------
# ICMPv4


def check_icmp4(ours: nw.Header, scapy_icmp: ScapyPacket, payload: bytes, src: str, dst: str) -> None:
    """Ether/IPv4/ICMP from both sides equal; decode (dispatching on the ICMP type) gives `ours` back."""
    outer, scapy_outer = outer_pair(False, PROTO_ICMP, src, dst)
    theirs = bytes(scapy_outer / scapy_icmp / Raw(payload))
    assert nw.build_stack([*outer, ours], payload) == theirs
    pkt = nw.decode(theirs)
    assert [type(h) for h in pkt.layers] == [nw.Ethernet, nw.IPv4, type(ours)]
    assert pkt.layers[2].to_dict() == given_with(ours, checksum=word(theirs, 36))
    assert pkt.payload == payload


@SETTINGS
@given(itype=st.sampled_from([0, 8]), code=u8, ident=u16, seq=u16, src=ipv4s, dst=ipv4s, payload=payloads)
def test_icmp_echo(*, itype: int, code: int, ident: int, seq: int, src: str, dst: str,
                   payload: bytes) -> None:
    check_icmp4(nw.IcmpEcho(type=itype, code=code, ident=ident, seq=seq),
                ICMP(type=itype, code=code, id=ident, seq=seq), payload, src, dst)


@SETTINGS
@given(code=st.one_of(st.just(4), u8), unused=u16, mtu=u16, src=ipv4s, dst=ipv4s, inner_id=u16,
       sport=u16, dport=u16)
def test_icmp_dest_unreach_frag_needed(*, code: int, unused: int, mtu: int, src: str, dst: str, inner_id: int,
                                       sport: int, dport: int) -> None:
    # the payload is the offending datagram's IP header and first 8 bytes, as a router sends it
    offending = bytes(IP(src=dst, dst=src, id=inner_id, flags="DF", ttl=1, proto=PROTO_UDP)
                      / UDP(sport=sport, dport=dport) / Raw(bytes(100)))[:28]
    # scapy splits our 16 unused bits into reserved (8) and RFC 4884 length (8)
    check_icmp4(nw.IcmpDestUnreach(code=code, unused=unused, next_hop_mtu=mtu),
                ICMP(type=3, code=code, reserved=unused >> 8, length=unused & 0xFF, nexthopmtu=mtu),
                offending, src, dst)


@SETTINGS
@given(code=u8, unused=u32, src=ipv4s, dst=ipv4s, payload=payloads)
def test_icmp_time_exceeded(*, code: int, unused: int, src: str, dst: str, payload: bytes) -> None:
    check_icmp4(nw.IcmpTimeExceeded(code=code, unused=unused),
                ICMP(type=11, code=code, reserved=unused >> 24, length=(unused >> 16) & 0xFF,
                     unused=unused & 0xFFFF), payload, src, dst)


# types scapy lays out its own way (timestamps, address mask, ...; and 37/38, the obsolete RFC 1788 domain
# name request/reply, which it gives id, seq and a further 32-bit word): the others are `type code cksum rest`
_ICMP_SCAPY_SPECIAL = {0, 3, 5, 8, 11, 12, 13, 14, 15, 16, 17, 18, *icmp_id_seq_types}


@SETTINGS
@given(itype=st.one_of(st.sampled_from([5, 12]), u8.filter(lambda t: t not in _ICMP_SCAPY_SPECIAL)),
       code=u8, rest=u32, src=ipv4s, dst=ipv4s, payload=payloads)
def test_icmp_generic(*, itype: int, code: int, rest: int, src: str, dst: str, payload: bytes) -> None:
    if itype == 5:  # redirect: the second word is the gateway address
        scapy_icmp = ICMP(type=5, code=code, gw=socket.inet_ntop(socket.AF_INET, rest.to_bytes(4, "big")))
    elif itype == 12:  # parameter problem: pointer, length, unused
        scapy_icmp = ICMP(type=12, code=code, ptr=rest >> 24, length=(rest >> 16) & 0xFF,
                          unused=rest & 0xFFFF)
    else:
        scapy_icmp = ICMP(type=itype, code=code, unused=rest)
    check_icmp4(nw.Icmp(type=itype, code=code, rest=rest), scapy_icmp, payload, src, dst)


# ---------------------------------------------------------------------------------------------------------
# ICMPv6 incl. neighbour discovery


def check_icmp6(ours: nw.Header, scapy_icmp: ScapyPacket, payload: bytes, src: str, dst: str, *,
                hlim: int = 64, options: list[nw.NdOption] | None = None) -> None:
    """Ether/IPv6/ICMPv6 from both sides equal; decode gives `ours` back (with `options` as parsed)."""
    outer, scapy_outer = outer_pair(True, PROTO_ICMPV6, src, dst, ttl=hlim)
    theirs = bytes(scapy_outer / scapy_icmp / Raw(payload))
    assert nw.build_stack([*outer, ours], payload) == theirs
    pkt = nw.decode(theirs)
    assert [type(h) for h in pkt.layers] == [nw.Ethernet, nw.IPv6, type(ours)]
    cksum = word(theirs, 56)
    expected = given_with(ours, checksum=cksum)
    if options is not None:
        expected["options"] = options
    assert pkt.layers[2].to_dict() == expected
    assert pkt.payload == payload


@SETTINGS
@given(itype=st.sampled_from([128, 129]), code=u8, ident=u16, seq=u16, src=ipv6s, dst=ipv6s, payload=payloads)
def test_icmpv6_echo(*, itype: int, code: int, ident: int, seq: int, src: str, dst: str,
                     payload: bytes) -> None:
    scapy_cls = ICMPv6EchoRequest if itype == 128 else ICMPv6EchoReply
    check_icmp6(nw.Icmpv6Echo(type=itype, code=code, ident=ident, seq=seq),
                scapy_cls(code=code, id=ident, seq=seq), payload, src, dst)


@SETTINGS
@given(code=u8, mtu=u32, src=ipv6s, dst=ipv6s, payload=payloads)
def test_icmpv6_packet_too_big(*, code: int, mtu: int, src: str, dst: str, payload: bytes) -> None:
    check_icmp6(nw.Icmpv6PacketTooBig(code=code, mtu=mtu), ICMPv6PacketTooBig(code=code, mtu=mtu),
                payload, src, dst)


@pytest.mark.parametrize(("ours_cls", "scapy_cls"), [(nw.Icmpv6DestUnreach, ICMPv6DestUnreach),
                                                      (nw.Icmpv6TimeExceeded, ICMPv6TimeExceeded)],
                         ids=["dest-unreach", "time-exceeded"])
@SETTINGS
@given(code=u8, unused=u32, src=ipv6s, dst=ipv6s, payload=payloads)
def test_icmpv6_errors(*, ours_cls: type[nw.Header], scapy_cls: type[ScapyPacket], code: int, unused: int,
                       src: str, dst: str, payload: bytes) -> None:
    # scapy splits our 32 unused bits into the RFC 4884 length (8) and unused (24)
    check_icmp6(ours_cls(code=code, unused=unused), scapy_cls(code=code, length=unused >> 24,
                                                              unused=unused & 0xFFFFFF), payload, src, dst)


_ICMPV6_OWN_CLASSES = {1, 2, 3, 128, 129, 135, 136}


@SETTINGS
@given(itype=u8.filter(lambda t: t not in _ICMPV6_OWN_CLASSES), code=u8, rest=u32, src=ipv6s, dst=ipv6s,
       payload=payloads)
def test_icmpv6_generic(*, itype: int, code: int, rest: int, src: str, dst: str, payload: bytes) -> None:
    check_icmp6(nw.Icmpv6(type=itype, code=code, rest=rest),
                ICMPv6Unknown(type=itype, code=code, msgbody=rest.to_bytes(4, "big")), payload, src, dst)


nd_option_specs = st.lists(st.one_of(
    st.tuples(st.sampled_from(["src", "dst"]), macs),
    st.tuples(st.just("mtu"), st.tuples(u16, u32)),
), max_size=3)


def nd_options(specs: list[tuple[str, object]]) -> tuple[list[nw.NdOption], ScapyPacket | None]:
    ours, theirs = [], None
    for kind, value in specs:
        if kind == "mtu":  # an option we have no helper for, as a generic TLV
            res, mtu = value
            ours.append(nw.NdOption(type=5, data=struct.pack("!HI", res, mtu)))
            layer = ICMPv6NDOptMTU(res=res, mtu=mtu)
        else:
            ours.append(nw.NdOption.lladdr(value, target=kind == "dst"))
            layer = (ICMPv6NDOptDstLLAddr if kind == "dst" else ICMPv6NDOptSrcLLAddr)(lladdr=value)
        theirs = layer if theirs is None else theirs / layer
    return ours, theirs


def parsed_nd_options(ours: list[nw.NdOption], theirs: bytes) -> list[nw.NdOption]:
    """`ours` with each option's length set to what scapy wrote (options follow the 24-byte NS/NA)."""
    out, off = [], 14 + 40 + 24
    for opt in ours:
        out.append(opt.replace(length=theirs[off + 1]))
        off += 8 * theirs[off + 1]
    assert off == len(theirs)
    return out


@SETTINGS
@given(code=u8, reserved=u32, target=ipv6s, src=ipv6s, dst=ipv6s, opts=nd_option_specs)
def test_neighbor_solicit(*, code: int, reserved: int, target: str, src: str, dst: str,
                          opts: list[tuple[str, object]]) -> None:
    our_opts, scapy_opts = nd_options(opts)
    ns = ICMPv6ND_NS(code=code, res=reserved, tgt=target)
    theirs_l4 = ns if scapy_opts is None else ns / scapy_opts
    ours = nw.NeighborSolicit(code=code, reserved=reserved, target=target, options=our_opts)
    _, scapy_outer = outer_pair(True, PROTO_ICMPV6, src, dst, ttl=255)
    theirs = bytes(scapy_outer / theirs_l4)
    check_icmp6(ours, theirs_l4, b"", src, dst, hlim=255,
                options=parsed_nd_options(our_opts, theirs))
    assert nw.decode(theirs)[nw.NeighborSolicit].lladdr() == next(
        (mac for kind, mac in opts if kind != "mtu"), None)


@SETTINGS
@given(code=u8, router=uint(1), solicited=uint(1), override=uint(1), reserved=uint(29), target=ipv6s,
       src=ipv6s, dst=ipv6s, opts=nd_option_specs)
def test_neighbor_advert(*, code: int, router: int, solicited: int, override: int, reserved: int, target: str,
                         src: str, dst: str, opts: list[tuple[str, object]]) -> None:
    our_opts, scapy_opts = nd_options(opts)
    na = ICMPv6ND_NA(code=code, R=router, S=solicited, O=override, res=reserved, tgt=target)
    theirs_l4 = na if scapy_opts is None else na / scapy_opts
    ours = nw.NeighborAdvert(code=code, router=router, solicited=solicited, override=override,
                             reserved=reserved, target=target, options=our_opts)
    _, scapy_outer = outer_pair(True, PROTO_ICMPV6, src, dst, ttl=255)
    theirs = bytes(scapy_outer / theirs_l4)
    check_icmp6(ours, theirs_l4, b"", src, dst, hlim=255,
                options=parsed_nd_options(our_opts, theirs))


# ---------------------------------------------------------------------------------------------------------
# tunnel headers


@SETTINGS
@given(flags=u8.filter(lambda f: f & 0x84 != 0x84), reserved1=uint(24), vni=uint(24), reserved2=u8,
       payload=payloads)
def test_vxlan(*, flags: int, reserved1: int, vni: int, reserved2: int, payload: bytes) -> None:
    # scapy names the 24 bits after the flags by the G (0x80) / next-protocol (0x04) flags: reserved0 +
    # NextProtocol, or gpflags + gpid, or reserved1. With both flags set its header is not 8 bytes: skipped.
    if flags & 0x04:
        middle = {"reserved0": reserved1 >> 8, "NextProtocol": reserved1 & 0xFF}
    elif flags & 0x80:
        middle = {"gpflags": reserved1 >> 16, "gpid": reserved1 & 0xFFFF}
    else:
        middle = {"reserved1": reserved1}
    ours = nw.Vxlan(flags=flags, reserved1=reserved1, vni=vni, reserved2=reserved2)
    theirs = bytes(VXLAN(flags=flags, vni=vni, reserved2=reserved2, **middle) / Raw(payload))
    assert ours.build(payload) == theirs
    (hdr,), rest = parse_chain(theirs, nw.Vxlan)
    assert hdr.to_dict() == ours.to_dict()
    assert rest == payload


@st.composite
def geneve_option_specs(draw: st.DrawFn) -> list[tuple[int, int, int, bytes]]:
    """(class, type, reserved, data) of up to 4 option TLVs; critical ones (type bit 0x80) included."""
    opts = draw(st.lists(st.tuples(
        u16, st.one_of(st.integers(0x80, 0xFF), u8), uint(3),
        st.integers(0, 31).flatmap(lambda words: st.binary(min_size=4 * words, max_size=4 * words)),
    ), max_size=4))
    assume(sum(4 + len(d) for *_, d in opts) <= 252)
    return opts


def geneve_options(specs: list[tuple[int, int, int, bytes]]) -> tuple[list[nw.GeneveOption], list]:
    ours = [nw.GeneveOption(option_class=c, type=t, reserved=r, data=d) for c, t, r, d in specs]
    # scapy's GeneveOptions.post_build masks the flags byte with 0x03 instead of 0xe0 when it computes the
    # length, losing the 3 reserved bits; so give scapy the length (len(data) / 4) when they are non-zero.
    theirs = [GeneveOptions(classid=c, type=t, reserved=r, data=d, length=len(d) // 4 if r else None)
              for c, t, r, d in specs]
    return ours, theirs


@SETTINGS
@given(ver=uint(2), o=uint(1), c=uint(1), reserved=uint(6), protocol=u16, vni=uint(24), reserved2=u8,
       opts=geneve_option_specs(), payload=payloads)
def test_geneve(*, ver: int, o: int, c: int, reserved: int, protocol: int, vni: int, reserved2: int,
                opts: list[tuple[int, int, int, bytes]], payload: bytes) -> None:
    our_opts, scapy_opts = geneve_options(opts)
    ours = nw.Geneve(ver=ver, o=o, c=c, reserved=reserved, protocol=protocol, vni=vni, reserved2=reserved2,
                     options=our_opts)
    theirs = bytes(GENEVE(version=ver, oam=o, critical=c, reserved=reserved, proto=protocol, vni=vni,
                          reserved2=reserved2, options=scapy_opts) / Raw(payload))
    assert ours.build(payload) == theirs
    if ver != 0:  # we decode version 0 only (RFC 8926: unknown versions are dropped)
        with pytest.raises(nw.DecodeError):
            nw.Geneve.parse(theirs)
        return
    (hdr,), rest = parse_chain(theirs, nw.Geneve)
    parsed_opts, off = [], 8  # each option with the 5-bit length scapy wrote
    for opt in our_opts:
        parsed_opts.append(opt.replace(length=theirs[off + 3] & 0x1F))
        off += 4 + 4 * (theirs[off + 3] & 0x1F)
    expected = given_with(ours, opt_len=theirs[0] & 0x3F)
    expected["options"] = parsed_opts
    assert hdr.to_dict() == expected
    assert [opt.critical for opt in hdr.options] == [bool(t & 0x80) for _, t, _, _ in opts]
    assert rest == payload


@SETTINGS
@given(cp=st.booleans(), kp=st.booleans(), sp=st.booleans(), explicit_bits=st.booleans(),
       checksum=st.one_of(st.none(), u16), reserved1=u16, key=u32, sequence=u32, reserved0=uint(9),
       version=uint(3), protocol=u16, payload=payloads)
def test_gre(*, cp: bool, kp: bool, sp: bool, explicit_bits: bool, checksum: int | None, reserved1: int,
             key: int, sequence: int, reserved0: int, version: int, protocol: int, payload: bytes) -> None:
    ours = nw.Gre(
        # C/K/S either given, or (None) following whether checksum/key/sequence are set; a computed
        # checksum needs c=1 with checksum None
        c=int(cp) if explicit_bits or (cp and checksum is None) else None,
        k=int(kp) if explicit_bits else None,
        s=int(sp) if explicit_bits else None,
        r=0, reserved0=reserved0, version=version, protocol=protocol,
        checksum=checksum if cp else None, reserved1=reserved1 if cp else 0,
        key=key if kp else None, sequence=sequence if sp else None,
    )
    theirs = bytes(GRE(chksum_present=int(cp), routing_present=0, key_present=int(kp), seqnum_present=int(sp),
                       strict_route_source=reserved0 >> 8, recursion_control=(reserved0 >> 5) & 7,
                       flags=reserved0 & 0x1F, version=version, proto=protocol,
                       chksum=checksum, offset=reserved1, key=key, sequence_number=sequence) / Raw(payload))
    assert ours.build(payload) == theirs
    if version != 0:  # version 1 is PPTP's enhanced GRE, others are unknown: we refuse them
        with pytest.raises(nw.DecodeError):
            nw.Gre.parse(theirs)
        return
    (hdr,), rest = parse_chain(theirs, nw.Gre)
    scapy_checksum = int.from_bytes(theirs[4:6], "big") if cp else None  # computed by scapy, or given
    assert hdr.to_dict() == given_with(ours, c=int(cp), k=int(kp), s=int(sp), checksum=scapy_checksum)
    if cp and checksum is None:
        assert nw.internet_checksum(theirs) == 0
    assert rest == payload


@SETTINGS
@given(vsid=uint(24), flow_id=u8, payload=payloads)
def test_nvgre_key_layout(*, vsid: int, flow_id: int, payload: bytes) -> None:
    # RFC 7637 3.2: the 32-bit key is the 24-bit VSID followed by the 8-bit FlowID
    key = int.from_bytes(vsid.to_bytes(3, "big") + bytes((flow_id,)), "big")
    ours = nw.Gre(key=nw.nvgre_key(vsid, flow_id), protocol=ETH_P_TEB)
    theirs = bytes(GRE(chksum_present=0, routing_present=0, key_present=1, seqnum_present=0, version=0,
                       proto=ETH_P_TEB, key=key) / Raw(payload))
    assert ours.build(payload) == theirs
    (hdr,), rest = parse_chain(theirs, nw.Gre)
    assert (hdr.c, hdr.k, hdr.s, hdr.protocol, hdr.vsid, hdr.flow_id) == (0, 1, 0, ETH_P_TEB, vsid, flow_id)
    assert rest == payload


# STT: scapy has no STT layer. Its TCP-like header is checked against scapy's TCP (sport, dport 7471,
# seq = STT frame length << 16 | fragment offset, ack = fragment ID, flags PSH|ACK, window 0xffff,
# computed checksum), and the 18-byte STT frame header against struct.pack of draft-davie-stt-08's
# layout: version, flags, L4 offset, reserved (1 byte each), MSS (16), PCP(3)|V(1)|VLAN ID(12),
# context ID (64), padding (16).
STT_LAYOUT = "!BBBBHHQH"


@SETTINGS
@given(version=u8, flags=u8, l4_offset=u8, reserved=u8, mss=u16, pcp=uint(3), v=uint(1), vlan_id=uint(12),
       context_id=uint(64), padding=u16, payload=payloads)
def test_stt_header(*, version: int, flags: int, l4_offset: int, reserved: int, mss: int, pcp: int, v: int,
                    vlan_id: int, context_id: int, padding: int, payload: bytes) -> None:
    ours = nw.Stt(version=version, flags=flags, l4_offset=l4_offset, reserved=reserved, mss=mss, pcp=pcp, v=v,
                  vlan_id=vlan_id, context_id=context_id, padding=padding)
    ref = struct.pack(STT_LAYOUT, version, flags, l4_offset, reserved, mss, pcp << 13 | v << 12 | vlan_id,
                      context_id, padding)
    assert len(ref) == 18
    assert ours.build(payload) == ref + payload
    if version != 0:
        with pytest.raises(nw.DecodeError):
            nw.Stt.parse(ref + payload)
        return
    (hdr,), rest = parse_chain(ref + payload, nw.Stt)
    assert hdr.to_dict() == ours.to_dict()
    assert rest == payload


@FAMILIES
@SETTINGS
@given(src4=ipv4s, dst4=ipv4s, src6=ipv6s, dst6=ipv6s, sport=u16, frag_id=u32, context_id=uint(64),
       inner=st.binary(min_size=14, max_size=100))
def test_stt_tcp_like_header(*, v6: bool, src4: str, dst4: str, src6: str, dst6: str, sport: int,
                             frag_id: int, context_id: int, inner: bytes) -> None:
    src, dst = (src6, dst6) if v6 else (src4, dst4)
    frame = struct.pack(STT_LAYOUT, 0, 0, 0, 0, 0, 0, context_id, 0) + inner
    outer, scapy_outer = outer_pair(v6, PROTO_TCP, src, dst)
    tcp = nw.Tcp(sport=sport, dport=STT_PORT, seq=len(frame) << 16, ack=frag_id, reserved=0,
                 flags=nw.Tcp.PSH | nw.Tcp.ACK, window=0xFFFF, urgptr=0)
    ours = nw.build_stack([*outer, tcp, nw.Stt(context_id=context_id)], inner)
    theirs = bytes(scapy_outer / TCP(sport=sport, dport=STT_PORT, seq=len(frame) << 16, ack=frag_id,
                                     reserved=0, flags="PA", window=0xFFFF, urgptr=0, options=[])
                   / Raw(frame))
    assert ours == theirs
    (_, _, got_tcp, got_stt), rest = parse_chain(theirs, nw.Ethernet, type(outer[1]), nw.Tcp, nw.Stt)
    assert got_tcp.to_dict() == given_with(tcp, dataofs=5, checksum=word(theirs, (54 if v6 else 34) + 16))
    assert got_stt.to_dict() == nw.Stt(context_id=context_id).to_dict()
    assert rest == inner


# ---------------------------------------------------------------------------------------------------------
# LACP


@SETTINGS
@given(src=macs, version=u8, actor=st.tuples(u16, macs, u16, u16, u16, u8, st.binary(min_size=3, max_size=3)),
       partner=st.tuples(u16, macs, u16, u16, u16, u8, st.binary(min_size=3, max_size=3)),
       tlv_types=st.tuples(u8, u8, u8, u8), max_delay=u16,
       collector_reserved=st.binary(min_size=12, max_size=12), reserved=st.binary(min_size=50, max_size=50))
def test_lacpdu(*, src: str, version: int, actor: tuple, partner: tuple, tlv_types: tuple[int, int, int, int],
                max_delay: int, collector_reserved: bytes, reserved: bytes) -> None:
    a_prio, a_sys, a_key, a_pprio, a_port, a_state, a_res = actor
    p_prio, p_sys, p_key, p_pprio, p_port, p_state, p_res = partner
    ours = nw.Lacpdu(
        subtype=1, version=version, actor_type=tlv_types[0], actor_length=20, actor_system_priority=a_prio,
        actor_system=a_sys, actor_key=a_key, actor_port_priority=a_pprio, actor_port=a_port,
        actor_state=a_state, actor_reserved=int.from_bytes(a_res, "big"),
        partner_type=tlv_types[1], partner_length=20, partner_system_priority=p_prio, partner_system=p_sys,
        partner_key=p_key, partner_port_priority=p_pprio, partner_port=p_port, partner_state=p_state,
        partner_reserved=int.from_bytes(p_res, "big"),
        collector_type=tlv_types[2], collector_length=16, collector_max_delay=max_delay,
        collector_reserved=collector_reserved, terminator_type=tlv_types[3], terminator_length=0,
        reserved=reserved,
    )
    theirs = bytes(
        Ether(dst=nw.LACP_DST_MAC, src=src, type=ETH_P_SLOW)
        / SlowProtocol(subtype=1)
        / LACP(version=version, actor_type=tlv_types[0], actor_length=20, actor_system_priority=a_prio,
               actor_system=a_sys, actor_key=a_key, actor_port_priority=a_pprio, actor_port_number=a_port,
               actor_state=a_state, actor_reserved=a_res,
               partner_type=tlv_types[1], partner_length=20, partner_system_priority=p_prio,
               partner_system=p_sys, partner_key=p_key, partner_port_priority=p_pprio,
               partner_port_number=p_port, partner_state=p_state, partner_reserved=p_res,
               collector_type=tlv_types[2], collector_length=16, collector_max_delay=max_delay,
               collector_reserved=collector_reserved, terminator_type=tlv_types[3], terminator_length=0,
               reserved=reserved)
    )
    assert len(theirs) == 14 + 110
    assert nw.build_stack([nw.Ethernet(dst=nw.LACP_DST_MAC, src=src, type=ETH_P_SLOW), ours]) == theirs
    pkt = nw.decode(theirs)
    assert [type(h) for h in pkt.layers] == [nw.Ethernet, nw.Lacpdu]
    assert pkt.layers[1].to_dict() == ours.to_dict()


# ---------------------------------------------------------------------------------------------------------
# encapsulate(): the whole underlay frame


inner_frames = st.one_of(
    st.binary(min_size=14, max_size=120),
    st.builds(
        lambda s, d, sp, dp, p: bytes(Ether(dst=DST_MAC, src=SRC_MAC)
                                      / IP(src=s, dst=d, id=1, flags=0, ttl=64)
                                      / UDP(sport=sp, dport=dp) / Raw(p)),
        ipv4s, ipv4s, u16, u16, payloads,
    ),
)
VNI_BITS = {"vxlan": 24, "geneve": 24, "gre": 32, "nvgre": 24, "stt": 64}


@pytest.mark.parametrize("encap", ["vxlan", "geneve", "gre", "nvgre", "stt"])
@FAMILIES
@SETTINGS
@given(data=st.data(), inner=inner_frames, src4=ipv4s, dst4=ipv4s, src6=ipv6s, dst6=ipv6s, src_mac=macs,
       dst_mac=macs, ttl=u8, df=st.booleans(), opts=geneve_option_specs(),
       src_port=st.one_of(st.none(), u16))
def test_encapsulate(*, encap: str, v6: bool, data: st.DataObject, inner: bytes, src4: str, dst4: str,
                     src6: str, dst6: str, src_mac: str, dst_mac: str, ttl: int, df: bool,
                     opts: list[tuple[int, int, int, bytes]], src_port: int | None) -> None:
    vni = data.draw(uint(VNI_BITS[encap]), label="vni")
    src, dst = (src6, dst6) if v6 else (src4, dst4)
    if encap != "geneve":
        opts = []
    our_opts, scapy_opts = geneve_options(opts)
    ours = nw.encapsulate(inner, encap=encap, vni=vni, src_ip=src, dst_ip=dst, src_mac=src_mac,
                          dst_mac=dst_mac, options=our_opts, ttl=ttl, src_port=src_port, df=df)

    # the values encapsulate chose (IPv4 ident, IPv6 flow label, entropy port, NVGRE FlowID, STT ack),
    # read back from its output
    gre_encap = "nvgre" if encap == "nvgre" else "gre"
    facts = nw.decapsulate(ours, gre_encap=gre_encap)
    if v6:
        ip6, l4, _ = nw.IPv6.parse(ours, 14)
        proto = ip6.next_header
        scapy_ip = IPv6(tc=0, fl=ip6.flow_label, nh=proto, hlim=ttl, src=src, dst=dst)
    else:
        ip4, l4, _ = nw.IPv4.parse(ours, 14)
        proto = ip4.proto
        scapy_ip = IP(version=4, tos=0, id=ip4.ident, flags=2 if df else 0, frag=0, ttl=ttl, proto=proto,
                      src=src, dst=dst)
    scapy_pkt = Ether(dst=dst_mac, src=src_mac, type=ETH_P_IPV6 if v6 else ETH_P_IP) / scapy_ip

    # the same stack built with scapy. UDP checksum: 0 over IPv4 (RFC 7348/8926), computed over IPv6
    udp_ck = None if v6 else 0
    if encap == "vxlan":
        assert proto == PROTO_UDP
        scapy_pkt /= UDP(sport=facts.src_port, dport=VXLAN_PORT, chksum=udp_ck) / VXLAN(
            flags=0x08, reserved1=0, vni=vni, reserved2=0)
    elif encap == "geneve":
        assert proto == PROTO_UDP
        critical = int(any(t & 0x80 for _, t, _, _ in opts))
        scapy_pkt /= UDP(sport=facts.src_port, dport=GENEVE_PORT, chksum=udp_ck) / GENEVE(
            version=0, oam=0, critical=critical, reserved=0, proto=ETH_P_TEB, vni=vni, reserved2=0,
            options=scapy_opts)
    elif encap in ("gre", "nvgre"):
        assert proto == PROTO_GRE
        key = vni  # GRE: the whole key; NVGRE: VSID (24 bits) then the FlowID encapsulate chose (8 bits)
        if encap == "nvgre":
            assert facts.flow_id is not None
            key = int.from_bytes(vni.to_bytes(3, "big") + bytes((facts.flow_id,)), "big")
        scapy_pkt /= GRE(chksum_present=0, routing_present=0, key_present=1, seqnum_present=0, version=0,
                         proto=ETH_P_TEB, key=key)
    else:
        assert proto == PROTO_TCP
        tcp, _, _ = nw.Tcp.parse(ours, l4)
        frame = struct.pack(STT_LAYOUT, 0, 0, 0, 0, 0, 0, vni, 0) + inner
        scapy_pkt /= TCP(sport=facts.src_port, dport=STT_PORT, seq=len(frame) << 16, ack=tcp.ack, reserved=0,
                         flags="PA", window=0xFFFF, urgptr=0, options=[]) / Raw(frame)
    if encap != "stt":
        scapy_pkt /= Raw(inner)
    theirs = bytes(scapy_pkt)
    assert ours == theirs
    if src_port is not None and encap in ("vxlan", "geneve", "stt"):
        assert facts.src_port == src_port

    # and back: what decapsulate reads from scapy's frame is what we asked for
    got = nw.decapsulate(theirs, gre_encap=gre_encap)
    assert (got.encap, got.vni, got.inner, got.outer_src, got.outer_dst, got.outer_src_mac, got.outer_dst_mac,
            got.ttl) == (encap, vni, inner, src, dst, src_mac, dst_mac, ttl)
    if encap == "geneve":
        assert [(o.option_class, o.type, o.reserved, o.data) for o in got.options] == opts
    if encap == "nvgre":
        assert got.flow_id == facts.flow_id
    if encap == "gre":
        assert got.gre_key == vni


# ---------------------------------------------------------------------------------------------------------
# pcap file headers


@SETTINGS
@given(frames=st.lists(st.binary(min_size=1, max_size=100), min_size=1, max_size=4),
       start=st.integers(0, 2**31 - 1), endianness=st.sampled_from(["<", ">"]), nano=st.booleans())
def test_pcap_files(*, frames: list[bytes], start: int, endianness: str, nano: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # ours -> scapy's reader
        path = Path(tmp, "ours.pcap")
        nw.write_pcap(path, frames, start=float(start))
        with RawPcapReader(str(path)) as reader:
            got = list(reader)
            assert reader.linktype == 1
        assert [pkt for pkt, _ in got] == frames
        assert [(meta.sec, meta.usec, meta.wirelen) for _, meta in got] == [
            (start, i, len(f)) for i, f in enumerate(frames)]

        # scapy's writer (either byte order, us or ns timestamps) -> ours
        path = Path(tmp, "scapy.pcap")
        with RawPcapWriter(str(path), linktype=1, endianness=endianness, nano=nano) as writer:
            writer.write_header(None)
            for i, f in enumerate(frames):  # the fraction is in ns when nano
                writer.write_packet(f, sec=start, usec=i)
        records = nw.read_pcap(path)
        assert [r.data for r in records] == frames
        assert [r.orig_len for r in records] == [len(f) for f in frames]
        scale = 1e-9 if nano else 1e-6
        expected = [start + i * scale for i in range(len(frames))]
        assert [r.timestamp for r in records] == pytest.approx(expected, abs=1e-6)  # float seconds
