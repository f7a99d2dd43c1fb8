"""UDP and TCP headers, with checksums over the IPv4/IPv6 pseudo-header."""

from collections.abc import Mapping
from typing import Annotated

from netweave.packet.checksum import internet_checksum, pseudo_header
from netweave.packet.errors import DecodeError
from netweave.packet.header import U3, U16, U32, Auto4, Auto16, Bits, Extra, Header
from netweave.packet.ip import IPPROTO_TCP, IPPROTO_UDP, IPv4, IPv6
from netweave.packet.registry import bind

UDP_HEADER_LEN = 8
TCP_HEADER_LEN = 20


def l4_checksum(ip: Header | None, proto: int, segment: bytes) -> int:
    """Checksum of an upper-layer segment under `ip`'s pseudo-header."""
    if not isinstance(ip, IPv4 | IPv6):
        raise ValueError("an L4 checksum needs the enclosing IPv4/IPv6 header (pass ip=...)")
    return internet_checksum(pseudo_header(ip.src, ip.dst, proto, len(segment)) + segment)


class Udp(Header):
    """UDP (RFC 768). On build, None `length`/`checksum` are computed; a computed 0 is sent as 0xffff."""

    sport: U16 = 0
    dport: U16 = 0
    length: Auto16 = None
    checksum: Auto16 = None

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        assert self.length is not None
        if self.length < UDP_HEADER_LEN or start + self.length > end:
            raise DecodeError(f"UDP: length {self.length} does not fit the {end - start} bytes present")
        return off, start + self.length

    def _autos(self, tail: bytes, payload: bytes, ip: Header | None) -> Mapping[str, int]:
        return {"length": UDP_HEADER_LEN + len(payload)}

    def _fill_checksum(self, hdr: bytearray, payload: bytes, ip: Header | None) -> None:
        ck = l4_checksum(ip, IPPROTO_UDP, bytes(hdr) + payload) or 0xFFFF
        hdr[6:8] = ck.to_bytes(2, "big")

    def next_layer(self) -> tuple[str, int] | None:
        return ("udp_port", self.dport)


class Tcp(Header):
    """TCP header (RFC 9293) with options; the 9 flag bits NS..FIN are one field."""

    sport: U16 = 0
    dport: U16 = 0
    seq: U32 = 0
    ack: U32 = 0
    dataofs: Auto4 = None
    reserved: U3 = 0
    flags: Annotated[int, Bits(9)] = 0x002
    window: U16 = 8192
    checksum: Auto16 = None
    urgptr: U16 = 0
    options: Annotated[bytes, Extra()] = b""

    FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, NS = (1 << i for i in range(9))

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        assert self.dataofs is not None
        hlen = self.dataofs * 4
        if hlen < TCP_HEADER_LEN or start + hlen > end:
            raise DecodeError(f"TCP: data offset {hlen} invalid for the {end - start} bytes present")
        self.options = bytes(buf[off : start + hlen])
        return start + hlen, end

    def _tail(self) -> bytes:
        if len(self.options) % 4 or len(self.options) > 40:
            raise ValueError("TCP options must be padded to a multiple of 4 bytes, at most 40")
        return self.options

    def _autos(self, tail: bytes, payload: bytes, ip: Header | None) -> Mapping[str, int]:
        return {"dataofs": (TCP_HEADER_LEN + len(tail)) // 4}

    def _fill_checksum(self, hdr: bytearray, payload: bytes, ip: Header | None) -> None:
        hdr[16:18] = l4_checksum(ip, IPPROTO_TCP, bytes(hdr) + payload).to_bytes(2, "big")

    def next_layer(self) -> tuple[str, int] | None:
        return ("tcp_port", self.dport)


bind("ip_proto", IPPROTO_UDP, Udp)
bind("ip_proto", IPPROTO_TCP, Tcp)
