"""The public encapsulation API: wrap a tenant frame for the underlay and take it out again.

`encapsulate` returns a whole outer Ethernet frame; `decapsulate` takes one and returns the tenant frame
with what the outer headers said. The outer UDP source port (and NVGRE's FlowID, IPv6's flow label) come
from a hash of the inner flow, so ECMP in the underlay spreads tenant flows across paths while every
packet of one flow takes the same path (RFC 7348 section 5, RFC 6438).
"""

import itertools
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from netweave.packet.addr import ZERO_MAC, ip_version
from netweave.packet.checksum import internet_checksum, pseudo_header
from netweave.packet.errors import DecodeError
from netweave.packet.ip import (
    IPPROTO_GRE,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV4_HEADER_LEN,
    IPv4,
    IPv6,
    ipv6_upper_layer,
)
from netweave.packet.l2 import ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, ETH_P_TEB, Ethernet
from netweave.packet.l4 import Tcp, Udp
from netweave.packet.tunnel import (
    GENEVE_PORT,
    STT_HEADER_LEN,
    STT_PORT,
    VXLAN_FLAG_I,
    VXLAN_PORT,
    Geneve,
    GeneveOption,
    Gre,
    Stt,
    Vxlan,
    nvgre_key,
)

Encap = Literal["vxlan", "geneve", "nvgre", "gre", "stt"]
ENCAPS: tuple[Encap, ...] = ("vxlan", "geneve", "nvgre", "gre", "stt")

#: the largest tunnel ID each encapsulation carries (VNI, key, VSID or context ID)
VNI_BITS: dict[str, int] = {"vxlan": 24, "geneve": 24, "nvgre": 24, "gre": 32, "stt": 64}

EPHEMERAL_LOW = 49152
EPHEMERAL_SPAN = 65536 - EPHEMERAL_LOW

_TRANSPORT_WITH_PORTS = {IPPROTO_TCP, IPPROTO_UDP, 132}  # 132 = SCTP
_ip_ident = itertools.count(1)


def flow_key(frame: bytes) -> bytes:
    """The bytes that identify `frame`'s flow: protocol, addresses and ports of the IP 5-tuple where there
    is one (ports left out for fragments, as the Linux flow dissector does), else the Ethernet addresses
    and type. Never raises: it runs on frames nothing has validated yet."""
    off, etype = 12, frame[12:14]
    while etype in (b"\x81\x00", b"\x88\xa8") and len(frame) >= off + 6:
        off += 4
        etype = frame[off : off + 2]
    l3 = off + 2
    try:
        if etype == b"\x08\x00" and len(frame) >= l3 + IPV4_HEADER_LEN:
            proto = frame[l3 + 9]
            addrs = frame[l3 + 12 : l3 + 20]
            fragmented = int.from_bytes(frame[l3 + 6 : l3 + 8], "big") & 0x3FFF
            l4 = l3 + (frame[l3] & 0x0F) * 4
            ports = frame[l4 : l4 + 4] if proto in _TRANSPORT_WITH_PORTS and not fragmented else b""
            return bytes((proto,)) + addrs + ports
        if etype == b"\x86\xdd" and len(frame) >= l3 + 40:
            proto, l4, later_fragment = ipv6_upper_layer(frame, l3)
            ports = frame[l4 : l4 + 4] if proto in _TRANSPORT_WITH_PORTS and not later_fragment else b""
            return bytes((proto,)) + frame[l3 + 8 : l3 + 40] + ports
    except DecodeError:
        pass
    return frame[:12] + etype


#: CRC32 of each one-byte protocol number: the seed that lets the IPv4 fast path hash without joining bytes
_PROTO_CRC = tuple(zlib.crc32(bytes((p,))) for p in range(256))


def flow_hash(frame: bytes) -> int:
    """A 32-bit hash of the inner flow (of `flow_key`), stable across processes and runs (unlike
    Python's `hash`). Untagged, unfragmented IPv4 TCP/UDP without options - the bulk of tenant traffic
    - hashes its contiguous address+port bytes directly, seeded with the protocol's CRC, which equals the
    CRC of `flow_key` (CRC32 chains)."""
    if (frame[12:14] == b"\x08\x00" and len(frame) >= 38 and frame[14] == 0x45
            and frame[23] in _TRANSPORT_WITH_PORTS and not (frame[20] & 0x3F or frame[21])):
        h = zlib.crc32(frame[26:38], _PROTO_CRC[frame[23]])
    else:
        h = zlib.crc32(flow_key(frame))
    # CRC32 is linear: one multiply-xorshift round spreads every input bit over the output bits
    h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
    return h ^ (h >> 16)


def entropy_port(h: int) -> int:
    """Map a flow hash into the dynamic port range 49152-65535 (RFC 7348 section 5)."""
    return EPHEMERAL_LOW + h % EPHEMERAL_SPAN


def check_vni(encap: str, vni: int) -> None:
    bits = VNI_BITS.get(encap)
    if bits is None:
        raise ValueError(f"unknown encapsulation {encap!r}; use one of {', '.join(ENCAPS)}")
    if not 0 <= vni < 1 << bits:
        raise ValueError(f"{encap}: VNI {vni} out of range 0..{(1 << bits) - 1}")


def tunnel_header(
    inner: bytes, *, encap: str, vni: int, options: Sequence[GeneveOption] = (), flow: int | None = None
) -> tuple[int, int, bytes]:
    """The part a tunnel socket sends: (IP protocol, destination port or 0, encapsulation header + inner).

    For VXLAN/Geneve this is the UDP payload, for GRE/NVGRE the IP payload; STT includes its TCP-like
    header (checksum left for `encapsulate`, which knows the addresses). The userspace datapath sends
    it over its UDP/raw sockets, `encapsulate` puts the outer headers around it.
    """
    check_vni(encap, vni)
    if options and encap != "geneve":
        raise ValueError("only Geneve carries options")
    h = flow_hash(inner) if flow is None else flow
    if encap == "vxlan":
        return IPPROTO_UDP, VXLAN_PORT, Vxlan(vni=vni).build(inner)
    if encap == "geneve":
        gen = Geneve(vni=vni, options=list(options), c=int(any(o.critical for o in options)))
        return IPPROTO_UDP, GENEVE_PORT, gen.build(inner)
    if encap == "gre":
        return IPPROTO_GRE, 0, Gre(key=vni, protocol=ETH_P_TEB).build(inner)
    if encap == "nvgre":
        return IPPROTO_GRE, 0, Gre(key=nvgre_key(vni, h & 0xFF), protocol=ETH_P_TEB).build(inner)
    frame = Stt(context_id=vni).build(inner)
    seg = Tcp(
        sport=entropy_port(h), dport=STT_PORT, seq=len(frame) << 16, ack=h,
        flags=Tcp.ACK | Tcp.PSH, window=0xFFFF, checksum=0,
    ).build(frame)
    return IPPROTO_TCP, STT_PORT, seg


def encapsulate(
    inner: bytes,
    *,
    encap: str,
    vni: int,
    src_ip: str,
    dst_ip: str,
    src_mac: str = ZERO_MAC,
    dst_mac: str = ZERO_MAC,
    options: Sequence[GeneveOption] = (),
    ttl: int = 64,
    src_port: int | None = None,
    df: bool = False,
) -> bytes:
    """The whole outer Ethernet frame carrying tenant frame `inner` on tunnel `vni`.

    `encap` is one of vxlan, geneve, nvgre, gre, stt; `src_ip`/`dst_ip` both IPv4 or both IPv6. The UDP
    source port (VXLAN, Geneve), NVGRE FlowID, STT source port and IPv6 flow label come from the inner
    flow's hash unless `src_port` is given. UDP checksums: zero over IPv4 (RFC 7348/8926 allow it, Linux
    sends it), computed over IPv6 (RFC 8200; Linux drops zero-checksum UDP over IPv6 by default).
    """
    if len(inner) < Ethernet.size:
        raise ValueError(f"inner frame of {len(inner)} bytes is shorter than an Ethernet header")
    h = flow_hash(inner)
    proto, dport, body = tunnel_header(inner, encap=encap, vni=vni, options=options, flow=h)
    v6 = ip_version(src_ip) == 6
    if v6 != (ip_version(dst_ip) == 6):
        raise ValueError("src_ip and dst_ip must both be IPv4 or both IPv6")
    sport = entropy_port(h) if src_port is None else src_port
    if proto == IPPROTO_UDP:
        udp_len = 8 + len(body)
        if v6:
            ph = pseudo_header(src_ip, dst_ip, IPPROTO_UDP, udp_len)
            hdr = struct.pack("!HHHH", sport, dport, udp_len, 0)
            ck = internet_checksum(ph + hdr + body) or 0xFFFF
        else:
            ck = 0
        payload = struct.pack("!HHHH", sport, dport, udp_len, ck) + body
    elif proto == IPPROTO_TCP:  # STT: fill the source port and the checksum of the TCP-like header
        seg = bytearray(body)
        seg[0:2] = sport.to_bytes(2, "big")
        seg[16:18] = internet_checksum(pseudo_header(src_ip, dst_ip, IPPROTO_TCP, len(seg)) + seg).to_bytes(
            2, "big"
        )
        payload = bytes(seg)
    else:
        payload = body
    if v6:
        ip_bytes = IPv6(
            flow_label=h & 0xFFFFF, next_header=proto, hop_limit=ttl, src=src_ip, dst=dst_ip
        ).header_bytes(payload)
        etype = ETH_P_IPV6
    else:
        ip_bytes = IPv4(
            ident=next(_ip_ident) & 0xFFFF, df=int(df), ttl=ttl, proto=proto, src=src_ip, dst=dst_ip
        ).header_bytes(payload)
        etype = ETH_P_IP
    return Ethernet(dst=dst_mac, src=src_mac, type=etype).header_bytes() + ip_bytes + payload


@dataclass(frozen=True)
class Decapsulated:
    """What an underlay frame carried: the tenant frame and the outer headers' facts."""

    encap: str
    vni: int
    inner: bytes
    outer_src: str
    outer_dst: str
    outer_src_mac: str
    outer_dst_mac: str
    ttl: int
    src_port: int | None = None  # UDP/STT encapsulations
    dst_port: int | None = None
    options: tuple[GeneveOption, ...] = ()  # Geneve
    oam: bool = False  # Geneve O bit
    flow_id: int | None = None  # NVGRE FlowID
    gre_key: int | None = None  # GRE/NVGRE raw key


def _verify_l4(ip: IPv4 | IPv6, proto: int, segment: bytes, what: str) -> None:
    if internet_checksum(pseudo_header(ip.src, ip.dst, proto, len(segment)) + segment) != 0:
        raise DecodeError(f"{what}: bad checksum")


def decapsulate(frame: bytes, *, gre_encap: Literal["gre", "nvgre"] = "gre") -> Decapsulated:
    """Take the tenant frame out of an underlay Ethernet frame; DecodeError for anything else.

    GRE and NVGRE look the same on the wire (K bit, protocol 0x6558); `gre_encap` says which the
    receiver's configuration expects: "gre" reports the whole key as the VNI, "nvgre" its VSID.
    Checksums are verified where present (IPv4 header, non-zero UDP, GRE with C, STT).
    """
    eth, off, end = Ethernet.parse(frame)
    etype = eth.type
    while etype in (ETH_P_8021Q, ETH_P_8021AD):
        if off + 4 > end:
            raise DecodeError("802.1Q tag truncated")
        etype = int.from_bytes(frame[off + 2 : off + 4], "big")
        off += 4
    ip: IPv4 | IPv6
    if etype == ETH_P_IP:
        ip4, off, end = IPv4.parse(frame, off)
        if ip4.mf or ip4.frag_offset:
            raise DecodeError("outer IPv4 packet is a fragment; reassemble before decapsulating")
        if internet_checksum(frame[off - ip4.size - len(ip4.options) : off]) != 0:
            raise DecodeError("outer IPv4 header checksum is wrong")
        ip, proto, ttl = ip4, ip4.proto, ip4.ttl
    elif etype == ETH_P_IPV6:
        ip6, _, end = IPv6.parse(frame, off)
        proto, off, later_fragment = ipv6_upper_layer(frame[:end], off)
        if later_fragment or proto == 44:
            raise DecodeError("outer IPv6 packet is a fragment; reassemble before decapsulating")
        ip, ttl = ip6, ip6.hop_limit
    else:
        raise DecodeError(f"not an IP underlay frame (ethertype {etype:#06x})")
    common = {"outer_src": ip.src, "outer_dst": ip.dst, "outer_src_mac": eth.src,
              "outer_dst_mac": eth.dst, "ttl": ttl}
    if proto == IPPROTO_UDP:
        udp, off, end = Udp.parse(frame[:end], off)
        if udp.checksum:
            _verify_l4(ip, IPPROTO_UDP, frame[off - 8 : end], "UDP")
        elif isinstance(ip, IPv6):
            raise DecodeError("UDP over IPv6 with a zero checksum")
        ports = {"src_port": udp.sport, "dst_port": udp.dport}
        if udp.dport == VXLAN_PORT:
            vx, off, end = Vxlan.parse(frame[:end], off)
            if not vx.flags & VXLAN_FLAG_I:
                raise DecodeError("VXLAN: I flag clear (no valid VNI)")
            return Decapsulated("vxlan", vx.vni, frame[off:end], **common, **ports)  # type: ignore[arg-type]
        if udp.dport == GENEVE_PORT:
            gen, off, end = Geneve.parse(frame[:end], off)
            if gen.protocol != ETH_P_TEB:
                raise DecodeError(f"Geneve: protocol {gen.protocol:#06x} is not Ethernet")
            return Decapsulated(
                "geneve", gen.vni, frame[off:end], **common, **ports,  # type: ignore[arg-type]
                options=tuple(gen.options), oam=bool(gen.o),
            )
        raise DecodeError(f"UDP port {udp.dport} is not a tunnel port")
    if proto == IPPROTO_GRE:
        gre, hdr_end, end = Gre.parse(frame[:end], off)
        if gre.protocol != ETH_P_TEB:
            raise DecodeError(f"GRE: protocol {gre.protocol:#06x} is not Ethernet")
        if gre.c and internet_checksum(frame[off:end]) != 0:
            raise DecodeError("GRE: bad checksum")
        if gre.key is None:
            raise DecodeError("GRE: no key, so no tenant network")
        vni = gre.key >> 8 if gre_encap == "nvgre" else gre.key
        flow = gre.key & 0xFF if gre_encap == "nvgre" else None
        return Decapsulated(gre_encap, vni, frame[hdr_end:end], **common,  # type: ignore[arg-type]
                            flow_id=flow, gre_key=gre.key)
    if proto == IPPROTO_TCP:
        tcp, tcp_end, end = Tcp.parse(frame[:end], off)
        if tcp.dport != STT_PORT:
            raise DecodeError(f"TCP port {tcp.dport} is not STT")
        _verify_l4(ip, IPPROTO_TCP, frame[off:end], "STT")
        length, frag_off = tcp.seq >> 16, tcp.seq & 0xFFFF
        if frag_off or length != end - tcp_end:
            raise DecodeError("STT frame is segmented; reassembly is not supported")
        if length < STT_HEADER_LEN:
            raise DecodeError("STT frame shorter than its header")
        stt, off, end = Stt.parse(frame[:end], tcp_end)
        return Decapsulated("stt", stt.context_id, frame[off:end], **common,  # type: ignore[arg-type]
                            src_port=tcp.sport, dst_port=tcp.dport)
    raise DecodeError(f"IP protocol {proto} is not a tunnel")
