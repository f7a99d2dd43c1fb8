"""Tunnel headers: VXLAN (RFC 7348), Geneve (RFC 8926), GRE (RFC 2784/2890) incl. NVGRE's key layout
(RFC 7637), and STT's frame header (draft-davie-stt-08; the TCP-like header in front of it is `Tcp`)."""

from collections.abc import Mapping
from typing import Annotated

from netweave.packet.checksum import internet_checksum
from netweave.packet.errors import DecodeError
from netweave.packet.header import U1, U2, U3, U8, U12, U16, U24, U64, Auto6, Bits, Extra, Header
from netweave.packet.l2 import ETH_P_TEB, Ethernet
from netweave.packet.registry import bind

VXLAN_PORT = 4789  # IANA; Linux's historical default is 8472
GENEVE_PORT = 6081
STT_PORT = 7471

VXLAN_FLAG_I = 0x08
GENEVE_MAX_OPTION_DATA = 124  # 5-bit length in 4-byte words
GENEVE_MAX_OPTIONS_LEN = 252  # 6-bit opt_len in 4-byte words

Auto1 = Annotated[int | None, Bits(1)]
Auto5 = Annotated[int | None, Bits(5)]


class Vxlan(Header):
    """VXLAN header: flags (I bit = 0x08 says the VNI is valid), 24-bit VNI, reserved bits."""

    flags: U8 = VXLAN_FLAG_I
    reserved1: U24 = 0
    vni: U24 = 0
    reserved2: U8 = 0

    def next_layer(self) -> tuple[str, int]:
        return ("ethertype", ETH_P_TEB)


class GeneveOption(Header):
    """One Geneve option TLV: class, type (high bit = critical), 5-bit length of data in 4-byte words."""

    option_class: U16 = 0
    type: U8 = 0
    reserved: U3 = 0
    length: Auto5 = None
    data: Annotated[bytes, Extra()] = b""

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        assert self.length is not None
        data_end = off + self.length * 4
        if data_end > end:
            raise DecodeError(f"Geneve option: {self.length * 4} data bytes exceed the options area")
        self.data = bytes(buf[off:data_end])
        return data_end, end

    def _tail(self) -> bytes:
        if len(self.data) % 4 or len(self.data) > GENEVE_MAX_OPTION_DATA:
            raise ValueError("Geneve option data must be a multiple of 4 bytes, at most 124")
        return self.data

    def _autos(self, tail: bytes, payload: bytes, ip: Header | None) -> Mapping[str, int]:
        return {"length": len(tail) // 4}

    @property
    def critical(self) -> bool:
        return bool(self.type & 0x80)


class Geneve(Header):
    """Geneve base header plus option TLVs. `opt_len` (4-byte words of options) is computed when None."""

    ver: U2 = 0
    opt_len: Auto6 = None
    o: U1 = 0
    c: U1 = 0
    reserved: Annotated[int, Bits(6)] = 0
    protocol: U16 = ETH_P_TEB
    vni: U24 = 0
    reserved2: U8 = 0
    options: Annotated[list[GeneveOption], Extra()] = []

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        assert self.opt_len is not None
        if self.ver != 0:
            raise DecodeError(f"Geneve: unknown version {self.ver}")
        opts_end = off + self.opt_len * 4
        if opts_end > end:
            raise DecodeError(f"Geneve: {self.opt_len * 4} option bytes exceed the packet")
        area = buf[:opts_end]
        opts = []
        while off < opts_end:
            opt, off, _ = GeneveOption.parse(area, off)
            opts.append(opt)
        self.options = opts
        return opts_end, end

    def _tail(self) -> bytes:
        tail = b"".join(o.build() for o in self.options)
        if len(tail) > GENEVE_MAX_OPTIONS_LEN:
            raise ValueError(f"Geneve options take {len(tail)} bytes, at most {GENEVE_MAX_OPTIONS_LEN}")
        return tail

    def _autos(self, tail: bytes, payload: bytes, ip: Header | None) -> Mapping[str, int]:
        return {"opt_len": len(tail) // 4}

    def next_layer(self) -> tuple[str, int]:
        return ("ethertype", self.protocol)


class Gre(Header):
    """GRE (RFC 2784) with RFC 2890's key and sequence number. The C/K/S bits, when None, follow
    whether `checksum`/`key`/`sequence` are set; set c=1 with checksum None to have it computed.

    NVGRE (RFC 7637) is GRE with K=1, protocol 0x6558 and key = VSID << 8 | FlowID (`vsid`, `flow_id`).
    """

    c: Auto1 = None
    r: U1 = 0
    k: Auto1 = None
    s: Auto1 = None
    reserved0: Annotated[int, Bits(9)] = 0
    version: U3 = 0
    protocol: U16 = ETH_P_TEB
    checksum: Annotated[int | None, Extra()] = None
    reserved1: Annotated[int, Extra()] = 0
    key: Annotated[int | None, Extra()] = None
    sequence: Annotated[int | None, Extra()] = None

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        if self.version != 0:
            raise DecodeError(f"GRE: version {self.version} is not GRE (1 is PPTP)")
        if self.r:
            raise DecodeError("GRE: RFC 1701 source routing is not supported")
        need = 4 * (self.c or 0) + 4 * (self.k or 0) + 4 * (self.s or 0)
        if off + need > end:
            raise DecodeError("GRE: truncated optional fields")
        if self.c:
            self.checksum = int.from_bytes(buf[off : off + 2], "big")
            self.reserved1 = int.from_bytes(buf[off + 2 : off + 4], "big")
            off += 4
        if self.k:
            self.key = int.from_bytes(buf[off : off + 4], "big")
            off += 4
        if self.s:
            self.sequence = int.from_bytes(buf[off : off + 4], "big")
            off += 4
        return off, end

    def _flag(self, explicit: int | None, value: int | None) -> int:
        return explicit if explicit is not None else int(value is not None)

    def _tail(self) -> bytes:
        out = b""
        if self._flag(self.c, self.checksum):
            out += (self.checksum or 0).to_bytes(2, "big") + self.reserved1.to_bytes(2, "big")
        if self._flag(self.k, self.key):
            out += (self.key or 0).to_bytes(4, "big")
        if self._flag(self.s, self.sequence):
            out += (self.sequence or 0).to_bytes(4, "big")
        return out

    def _autos(self, tail: bytes, payload: bytes, ip: Header | None) -> Mapping[str, int]:
        return {
            "c": self._flag(self.c, self.checksum),
            "k": self._flag(self.k, self.key),
            "s": self._flag(self.s, self.sequence),
        }

    def header_bytes(self, payload: bytes = b"", *, ip: Header | None = None) -> bytes:
        hdr = super().header_bytes(payload, ip=ip)
        if self._flag(self.c, self.checksum) and self.checksum is None:
            ck = internet_checksum(hdr + payload)
            hdr = hdr[:4] + ck.to_bytes(2, "big") + hdr[6:]
        return hdr

    @property
    def vsid(self) -> int | None:
        """NVGRE Virtual Subnet ID: the key's upper 24 bits."""
        return None if self.key is None else self.key >> 8

    @property
    def flow_id(self) -> int | None:
        """NVGRE FlowID: the key's low 8 bits (per-flow entropy)."""
        return None if self.key is None else self.key & 0xFF

    def next_layer(self) -> tuple[str, int]:
        return ("ethertype", self.protocol)


def nvgre_key(vsid: int, flow_id: int = 0) -> int:
    """The 32-bit GRE key NVGRE sends for a 24-bit VSID and an 8-bit FlowID."""
    if not 0 <= vsid < 1 << 24 or not 0 <= flow_id < 1 << 8:
        raise ValueError("NVGRE: VSID is 24 bits, FlowID 8 bits")
    return vsid << 8 | flow_id


STT_FLAG_CSUM_VERIFIED = 0x01
STT_FLAG_CSUM_PARTIAL = 0x02
STT_FLAG_IPV4 = 0x04
STT_FLAG_TCP = 0x08
STT_HEADER_LEN = 18


class Stt(Header):
    """STT frame header (18 bytes incl. 2 bytes of padding) that follows STT's TCP-like header.

    In that TCP-like header the sequence number carries (STT frame length << 16 | fragment offset) and
    the acknowledgement number a fragment ID; the destination port is 7471.
    """

    version: U8 = 0
    flags: U8 = 0
    l4_offset: U8 = 0
    reserved: U8 = 0
    mss: U16 = 0
    pcp: U3 = 0
    v: U1 = 0
    vlan_id: U12 = 0
    context_id: U64 = 0
    padding: U16 = 0

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        if self.version != 0:
            raise DecodeError(f"STT: unknown version {self.version}")
        return off, end

    def next_layer(self) -> tuple[str, int]:
        return ("ethertype", ETH_P_TEB)


bind("ethertype", ETH_P_TEB, Ethernet)
bind("udp_port", VXLAN_PORT, Vxlan)
bind("udp_port", GENEVE_PORT, Geneve)
bind("ip_proto", 47, Gre)
bind("tcp_port", STT_PORT, Stt)
