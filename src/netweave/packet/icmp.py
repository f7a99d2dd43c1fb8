"""ICMPv4 (echo, destination unreachable incl. fragmentation-needed, time exceeded) and ICMPv6 (echo,
neighbour solicitation/advertisement, router solicitation/advertisement with link-layer address, prefix
information and MTU options, packet too big)."""

from collections.abc import Mapping
from typing import Annotated

from netweave.packet.addr import check_length, mac_to_bytes
from netweave.packet.checksum import internet_checksum
from netweave.packet.errors import DecodeError
from netweave.packet.header import U1, U2, U5, U8, U16, U32, Auto8, Auto16, Bits, Extra, Header, IPv6Addr
from netweave.packet.ip import IPPROTO_ICMP, IPPROTO_ICMPV6
from netweave.packet.l4 import l4_checksum
from netweave.packet.registry import bind

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
ICMP_FRAG_NEEDED = 4  # code under ICMP_DEST_UNREACH

ICMPV6_DEST_UNREACH = 1
ICMPV6_PACKET_TOO_BIG = 2
ICMPV6_TIME_EXCEEDED = 3
ICMPV6_ECHO_REQUEST = 128
ICMPV6_ECHO_REPLY = 129
ND_ROUTER_SOLICIT = 133
ND_ROUTER_ADVERT = 134
ND_NEIGHBOR_SOLICIT = 135
ND_NEIGHBOR_ADVERT = 136

ND_OPT_SOURCE_LLADDR = 1
ND_OPT_TARGET_LLADDR = 2
ND_OPT_PREFIX_INFO = 3
ND_OPT_MTU = 5


class _IcmpBase(Header):
    """The 4 bytes every ICMP message starts with. Subclasses add the rest of the 8-byte header."""

    type: U8 = 0
    code: U8 = 0
    checksum: Auto16 = None

    def _fill_checksum(self, hdr: bytearray, payload: bytes, ip: Header | None) -> None:
        hdr[2:4] = internet_checksum(bytes(hdr) + payload).to_bytes(2, "big")


class Icmp(_IcmpBase):
    """ICMPv4 message of a type without its own class: `rest` is the second header word."""

    rest: U32 = 0

    def next_layer(self) -> tuple[str, int] | None:
        return None


class IcmpEcho(_IcmpBase):
    type = ICMP_ECHO_REQUEST
    ident: U16 = 0
    seq: U16 = 0


class IcmpDestUnreach(_IcmpBase):
    """Destination unreachable; with code 4 (fragmentation needed) `next_hop_mtu` is RFC 1191's MTU.
    The payload is the offending IP header plus at least 8 bytes of its data."""

    type = ICMP_DEST_UNREACH
    unused: U16 = 0
    next_hop_mtu: U16 = 0


class IcmpTimeExceeded(_IcmpBase):
    type = ICMP_TIME_EXCEEDED
    unused: U32 = 0


_ICMPV4_TYPES: dict[int, type[Header]] = {
    ICMP_ECHO_REPLY: IcmpEcho,
    ICMP_ECHO_REQUEST: IcmpEcho,
    ICMP_DEST_UNREACH: IcmpDestUnreach,
    ICMP_TIME_EXCEEDED: IcmpTimeExceeded,
}


class _Icmpv6Base(_IcmpBase):
    def _fill_checksum(self, hdr: bytearray, payload: bytes, ip: Header | None) -> None:
        hdr[2:4] = l4_checksum(ip, IPPROTO_ICMPV6, bytes(hdr) + payload).to_bytes(2, "big")


class Icmpv6(_Icmpv6Base):
    rest: U32 = 0


class Icmpv6Echo(_Icmpv6Base):
    type = ICMPV6_ECHO_REQUEST
    ident: U16 = 0
    seq: U16 = 0


class Icmpv6DestUnreach(_Icmpv6Base):
    type = ICMPV6_DEST_UNREACH
    unused: U32 = 0


class Icmpv6PacketTooBig(_Icmpv6Base):
    type = ICMPV6_PACKET_TOO_BIG
    mtu: U32 = 1280


class Icmpv6TimeExceeded(_Icmpv6Base):
    type = ICMPV6_TIME_EXCEEDED
    unused: U32 = 0


class NdOption(Header):
    """A neighbour discovery option TLV (RFC 4861 section 4.6): length in units of 8 octets."""

    type: U8 = ND_OPT_SOURCE_LLADDR
    length: Auto8 = None
    data: Annotated[bytes, Extra()] = b""

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        assert self.length is not None
        if self.length == 0:
            raise DecodeError("ND option: zero length")
        check_length(buf, start, self.length * 8, "ND option")
        self.data = bytes(buf[off : start + self.length * 8])
        return start + self.length * 8, end

    def _tail(self) -> bytes:
        if (len(self.data) + 2) % 8:
            raise ValueError("ND option data must make the option a multiple of 8 bytes")
        return self.data

    def _autos(self, tail: bytes, payload: bytes, ip: Header | None) -> Mapping[str, int]:
        return {"length": (len(tail) + 2) // 8}

    @classmethod
    def lladdr(cls, mac: str, *, target: bool = False) -> "NdOption":
        """Source (or target) link-layer address option for Ethernet."""
        return cls(type=ND_OPT_TARGET_LLADDR if target else ND_OPT_SOURCE_LLADDR, data=mac_to_bytes(mac))

    @property
    def mac(self) -> str | None:
        """The address of a link-layer address option, else None."""
        if self.type in (ND_OPT_SOURCE_LLADDR, ND_OPT_TARGET_LLADDR) and len(self.data) >= 6:
            return self.data[:6].hex(":")
        return None

    @classmethod
    def mtu_option(cls, mtu: int) -> "NdOption":
        """The MTU option (RFC 4861 4.6.4): 2 reserved bytes and the link MTU."""
        return cls(type=ND_OPT_MTU, data=bytes(2) + mtu.to_bytes(4, "big"))

    @property
    def mtu(self) -> int | None:
        """The link MTU of an MTU option, else None."""
        if self.type == ND_OPT_MTU and len(self.data) == 6:
            return int.from_bytes(self.data[2:], "big")
        return None

    @property
    def prefix_info(self) -> "NdPrefixInfo | None":
        """The decoded body of a prefix information option, else None (DecodeError if it is short)."""
        if self.type != ND_OPT_PREFIX_INFO:
            return None
        return NdPrefixInfo.from_bytes(self.data)


class NdPrefixInfo(Header):
    """The body of a prefix information option (RFC 4861 4.6.2; R flag RFC 6275): what follows the
    option's type and length. `option()` wraps it into the `NdOption` that goes on the wire."""

    prefix_length: U8 = 64
    onlink: U1 = 1
    autonomous: U1 = 1
    router_address: U1 = 0
    reserved1: U5 = 0
    valid_lifetime: U32 = 0
    preferred_lifetime: U32 = 0
    reserved2: U32 = 0
    prefix: IPv6Addr = "::"

    def option(self) -> NdOption:
        return NdOption(type=ND_OPT_PREFIX_INFO, data=self.build())


def _parse_nd_options(buf: bytes | memoryview, off: int, end: int) -> list[NdOption]:
    opts = []
    while off < end:
        opt, off, _ = NdOption.parse(buf[:end], off)
        opts.append(opt)
    return opts


class _NdMessage(_Icmpv6Base):
    """Common tail handling for NS/NA: the options run to the end of the ICMPv6 message."""

    options: Annotated[list[NdOption], Extra()] = []

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        self.options = _parse_nd_options(buf, off, end)
        return end, end

    def _tail(self) -> bytes:
        return b"".join(o.build() for o in self.options)

    def next_layer(self) -> tuple[str, int] | None:
        return None

    def lladdr(self) -> str | None:
        """The first source/target link-layer address option's MAC, if any."""
        for o in self.options:
            if o.mac is not None:
                return o.mac
        return None


class NeighborSolicit(_NdMessage):
    type = ND_NEIGHBOR_SOLICIT
    reserved: U32 = 0
    target: IPv6Addr = "::"


class NeighborAdvert(_NdMessage):
    type = ND_NEIGHBOR_ADVERT
    router: U1 = 0
    solicited: U1 = 0
    override: U1 = 0
    reserved: Annotated[int, Bits(29)] = 0
    target: IPv6Addr = "::"


class RouterSolicit(_NdMessage):
    """Router solicitation (RFC 4861 4.1): options are the source link-layer address at most."""

    type = ND_ROUTER_SOLICIT
    reserved: U32 = 0


class RouterAdvert(_NdMessage):
    """Router advertisement (RFC 4861 4.2) with RFC 4191's preference and RFC 4389's proxy bit.
    Options: source link-layer address, MTU, prefix information (`NdPrefixInfo.option()`)."""

    type = ND_ROUTER_ADVERT
    cur_hop_limit: U8 = 64
    managed: U1 = 0
    other: U1 = 0
    home_agent: U1 = 0
    preference: U2 = 0
    proxy: U1 = 0
    reserved: U2 = 0
    router_lifetime: U16 = 0
    reachable_time: U32 = 0
    retrans_timer: U32 = 0


# Router solicitation/advertisement are not in this table yet: decode() shows them as the generic Icmpv6,
# which tests/interop/test_scapy_equality.py's test_icmpv6_generic relies on for types 133/134. To decode
# them into their classes, add them here and 133/134 to that test's _ICMPV6_OWN_CLASSES.
_ICMPV6_TYPES: dict[int, type[Header]] = {
    ICMPV6_ECHO_REQUEST: Icmpv6Echo,
    ICMPV6_ECHO_REPLY: Icmpv6Echo,
    ICMPV6_DEST_UNREACH: Icmpv6DestUnreach,
    ICMPV6_PACKET_TOO_BIG: Icmpv6PacketTooBig,
    ICMPV6_TIME_EXCEEDED: Icmpv6TimeExceeded,
    ND_NEIGHBOR_SOLICIT: NeighborSolicit,
    ND_NEIGHBOR_ADVERT: NeighborAdvert,
}


def _icmp_class(buf: bytes | memoryview, offset: int, v6: bool) -> type[Header]:
    """The class for the ICMP type byte at `offset` (a registry keyed by type), else the generic one."""
    check_length(buf, offset, 1, "ICMPv6" if v6 else "ICMP")
    table = _ICMPV6_TYPES if v6 else _ICMPV4_TYPES
    return table.get(buf[offset], Icmpv6 if v6 else Icmp)


class IcmpAny(Icmp):
    """What the `ip_proto` 1 registry entry decodes with: the type's own class."""

    @classmethod
    def parse(cls, buf: bytes | memoryview, offset: int = 0) -> tuple[Header, int, int]:  # type: ignore[override]
        return _icmp_class(buf, offset, False).parse(buf, offset)


class Icmpv6Any(Icmpv6):
    """What the `ip_proto` 58 registry entry decodes with: the type's own class."""

    @classmethod
    def parse(cls, buf: bytes | memoryview, offset: int = 0) -> tuple[Header, int, int]:  # type: ignore[override]
        return _icmp_class(buf, offset, True).parse(buf, offset)


bind("ip_proto", IPPROTO_ICMP, IcmpAny)
bind("ip_proto", IPPROTO_ICMPV6, Icmpv6Any)
