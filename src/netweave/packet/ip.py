"""IPv4 (options, header checksum, DF/MF/fragment offset) and IPv6 with its extension headers."""

import socket
from collections.abc import Mapping
from typing import Annotated

from netweave.packet.checksum import internet_checksum
from netweave.packet.errors import DecodeError
from netweave.packet.header import (
    U1,
    U2,
    U4,
    U6,
    U8,
    U13,
    U16,
    U20,
    U32,
    Auto4,
    Auto8,
    Auto16,
    Extra,
    Header,
    IPv4Addr,
    IPv6Addr,
)
from netweave.packet.l2 import ETH_P_IP, ETH_P_IPV6
from netweave.packet.registry import bind

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_GRE = 47
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

IPV4_HEADER_LEN = 20
IPV6_HEADER_LEN = 40


class IPv4(Header):
    """IPv4 (RFC 791). `ihl`, `total_length` and `checksum` are computed on build when None."""

    is_network_layer = True

    version: U4 = 4
    ihl: Auto4 = None
    dscp: U6 = 0
    ecn: U2 = 0
    total_length: Auto16 = None
    ident: U16 = 0
    reserved: U1 = 0
    df: U1 = 0
    mf: U1 = 0
    frag_offset: U13 = 0
    ttl: U8 = 64
    proto: U8 = 0
    checksum: Auto16 = None
    src: IPv4Addr = "0.0.0.0"
    dst: IPv4Addr = "0.0.0.0"
    options: Annotated[bytes, Extra()] = b""

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        assert self.ihl is not None and self.total_length is not None
        if self.version != 4:
            raise DecodeError(f"IPv4: version {self.version}")
        hlen = self.ihl * 4
        if hlen < IPV4_HEADER_LEN:
            raise DecodeError(f"IPv4: header length {hlen} < 20")
        if self.total_length < hlen:
            raise DecodeError(f"IPv4: total length {self.total_length} < header length {hlen}")
        if start + self.total_length > end:
            raise DecodeError(f"IPv4: total length {self.total_length} exceeds {end - start} bytes")
        self.options = bytes(buf[off : start + hlen])
        return start + hlen, start + self.total_length

    def _tail(self) -> bytes:
        if len(self.options) % 4:
            raise ValueError("IPv4 options must be padded to a multiple of 4 bytes")
        if len(self.options) > 40:
            raise ValueError("IPv4 options exceed 40 bytes")
        return self.options

    def _autos(self, tail: bytes, payload: bytes, ip: Header | None) -> Mapping[str, int]:
        hlen = IPV4_HEADER_LEN + len(tail)
        return {"ihl": hlen // 4, "total_length": hlen + len(payload)}

    def _fill_checksum(self, hdr: bytearray, payload: bytes, ip: Header | None) -> None:
        hdr[10:12] = internet_checksum(bytes(hdr)).to_bytes(2, "big")

    def next_layer(self) -> tuple[str, int] | None:
        if self.frag_offset:  # a non-first fragment carries no upper-layer header
            return None
        return ("ip_proto", self.proto)

    def checksum_ok(self) -> bool:
        """True when the header checksum in the decoded header verifies."""
        hdr = self.header_bytes()
        return internet_checksum(hdr) == 0


class IPv6(Header):
    """IPv6 fixed header (RFC 8200). `payload_length` is computed on build when None."""

    is_network_layer = True

    version: U4 = 6
    tclass: U8 = 0
    flow_label: U20 = 0
    payload_length: Auto16 = None
    next_header: U8 = IPPROTO_NONE
    hop_limit: U8 = 64
    src: IPv6Addr = "::"
    dst: IPv6Addr = "::"

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        assert self.payload_length is not None
        if self.version != 6:
            raise DecodeError(f"IPv6: version {self.version}")
        if off + self.payload_length > end:
            raise DecodeError(f"IPv6: payload length {self.payload_length} exceeds {end - off} bytes")
        return off, off + self.payload_length

    def _autos(self, tail: bytes, payload: bytes, ip: Header | None) -> Mapping[str, int]:
        return {"payload_length": len(payload)}

    def next_layer(self) -> tuple[str, int]:
        return ("ip_proto", self.next_header)


class IPv6ExtHeader(Header):
    """Hop-by-hop, routing and destination options headers: next header, length in 8-octet units
    beyond the first, and opaque data. Decoding walks through them to the upper layer."""

    next_header: U8 = IPPROTO_NONE
    hdr_ext_len: Auto8 = None
    data: Annotated[bytes, Extra()] = b"\x01\x04\x00\x00\x00\x00"  # PadN covering the 6 bytes

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        assert self.hdr_ext_len is not None
        hdr_end = start + (self.hdr_ext_len + 1) * 8
        if hdr_end > end:
            raise DecodeError(f"{type(self).__name__}: length {(self.hdr_ext_len + 1) * 8} exceeds packet")
        self.data = bytes(buf[off:hdr_end])
        return hdr_end, end

    def _tail(self) -> bytes:
        if (len(self.data) + 2) % 8:
            raise ValueError(f"{type(self).__name__}: data must make the header a multiple of 8 bytes")
        return self.data

    def _autos(self, tail: bytes, payload: bytes, ip: Header | None) -> Mapping[str, int]:
        return {"hdr_ext_len": (len(tail) + 2) // 8 - 1}

    def next_layer(self) -> tuple[str, int]:
        return ("ip_proto", self.next_header)


class IPv6HopByHop(IPv6ExtHeader):
    pass


class IPv6Routing(IPv6ExtHeader):
    """Routing header: `data` = routing type, segments left, type-specific data."""

    def final_destination(self) -> str | None:
        """The address upper-layer checksums must use while segments are left (RFC 8200 8.1):
        the last address of a type 0/2 header, segment list[0] of an SRH (type 4, RFC 8754)."""
        if len(self.data) < 2 or self.data[1] == 0:
            return None
        rtype = self.data[0]
        if rtype in (0, 2) and len(self.data) >= 22:
            return socket.inet_ntop(socket.AF_INET6, self.data[-16:])
        if rtype == 4 and len(self.data) >= 22:
            return socket.inet_ntop(socket.AF_INET6, self.data[6:22])
        return None


class IPv6DestOpts(IPv6ExtHeader):
    pass


class IPv6Fragment(Header):
    """IPv6 fragment header (RFC 8200 section 4.5)."""

    next_header: U8 = IPPROTO_NONE
    reserved: U8 = 0
    offset: U13 = 0
    res: U2 = 0
    m: U1 = 0
    ident: U32 = 0

    def next_layer(self) -> tuple[str, int] | None:
        return None if self.offset else ("ip_proto", self.next_header)


IPV6_EXTENSION_HEADERS = {IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS}


def ipv6_upper_layer(buf: bytes | memoryview, off: int) -> tuple[int, int, bool]:
    """Walk the extension headers of the IPv6 packet at `off`.

    Returns (upper-layer protocol, its offset, is-a-non-first-fragment). Used by the flow hash and the
    datapath, which need the transport ports without decoding every header into objects.
    """
    if off + IPV6_HEADER_LEN > len(buf):
        raise DecodeError("IPv6: truncated")
    nh = buf[off + 6]
    pos = off + IPV6_HEADER_LEN
    later_fragment = False
    for _ in range(16):
        if nh not in IPV6_EXTENSION_HEADERS:
            return nh, pos, later_fragment
        if pos + 8 > len(buf):
            raise DecodeError("IPv6: truncated extension header")
        if nh == IPPROTO_FRAGMENT:
            later_fragment = later_fragment or bool(int.from_bytes(buf[pos + 2 : pos + 4], "big") >> 3)
            nh, pos = buf[pos], pos + 8
        else:
            nh, pos = buf[pos], pos + (buf[pos + 1] + 1) * 8
    raise DecodeError("IPv6: too many extension headers")


bind("ethertype", ETH_P_IP, IPv4)
bind("ethertype", ETH_P_IPV6, IPv6)
bind("ip_proto", IPPROTO_HOPOPTS, IPv6HopByHop)
bind("ip_proto", IPPROTO_ROUTING, IPv6Routing)
bind("ip_proto", IPPROTO_DSTOPTS, IPv6DestOpts)
bind("ip_proto", IPPROTO_FRAGMENT, IPv6Fragment)
