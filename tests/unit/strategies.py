"""Hypothesis strategies derived from the header declarations themselves.

Every wire field gets its full range from its declared width, so a new header is covered by adding one
line to HEADERS (plus its variable parts in EXTRAS and its receive-side constraints in FIXED).
"""

from typing import Any

from hypothesis import strategies as st

from netweave.packet import (
    Arp,
    Dot1Q,
    Ethernet,
    Geneve,
    GeneveOption,
    Gre,
    Header,
    Icmp,
    IcmpDestUnreach,
    IcmpEcho,
    IcmpTimeExceeded,
    Icmpv6,
    Icmpv6DestUnreach,
    Icmpv6Echo,
    Icmpv6PacketTooBig,
    Icmpv6TimeExceeded,
    IPv4,
    IPv6,
    IPv6DestOpts,
    IPv6Fragment,
    IPv6HopByHop,
    IPv6Routing,
    Lacpdu,
    NdOption,
    NeighborAdvert,
    NeighborSolicit,
    Stt,
    Tcp,
    Udp,
    Vxlan,
)
from netweave.packet.pcap import PcapFileHeader, PcapRecordHeader

macs = st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))
ipv4s = st.binary(min_size=4, max_size=4).map(lambda b: ".".join(str(x) for x in b))
ipv6s = st.binary(min_size=16, max_size=16).map(
    lambda b: __import__("socket").inet_ntop(__import__("socket").AF_INET6, b)
)


def padded(multiple: int, offset: int = 0, max_units: int = 4) -> st.SearchStrategy[bytes]:
    """Bytes whose length + offset is a multiple of `multiple` (options that must fill whole words)."""
    return st.integers(0, max_units).flatmap(
        lambda n: st.binary(min_size=max(n * multiple - offset, 0), max_size=max(n * multiple - offset, 0))
    )


geneve_options = st.builds(
    lambda c, t, r, d: GeneveOption(option_class=c, type=t, reserved=r, data=d),
    st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 7), padded(4, max_units=8),
)
nd_options = st.builds(
    lambda t, d: NdOption(type=t, data=d),
    st.integers(0, 255),
    padded(8, offset=2, max_units=3).filter(lambda d: len(d) >= 6),
)

EXTRAS: dict[type[Header], dict[str, st.SearchStrategy[Any]]] = {
    IPv4: {"options": padded(4, max_units=10)},
    Tcp: {"options": padded(4, max_units=10)},
    IPv6HopByHop: {"data": padded(8, offset=2, max_units=4).filter(bool)},
    IPv6Routing: {"data": padded(8, offset=2, max_units=4).filter(bool)},
    IPv6DestOpts: {"data": padded(8, offset=2, max_units=4).filter(bool)},
    Geneve: {"options": st.lists(geneve_options, max_size=3)},
    GeneveOption: {"data": padded(4, max_units=31)},
    NdOption: {"data": padded(8, offset=2, max_units=3).filter(bool)},
    NeighborSolicit: {"options": st.lists(nd_options, max_size=2)},
    NeighborAdvert: {"options": st.lists(nd_options, max_size=2)},
    Gre: {
        "checksum": st.none() | st.integers(0, 0xFFFF),
        "key": st.none() | st.integers(0, 0xFFFFFFFF),
        "sequence": st.none() | st.integers(0, 0xFFFFFFFF),
    },
}

#: values the decoder insists on (it rejects anything else, by design)
FIXED: dict[type[Header], dict[str, Any]] = {
    IPv4: {"version": 4, "ihl": None, "total_length": None, "checksum": None},
    IPv6: {"version": 6, "payload_length": None},
    Udp: {"length": None, "checksum": 0},
    Tcp: {"dataofs": None},
    Arp: {"hwlen": 6, "plen": 4},
    Geneve: {"ver": 0, "opt_len": None},
    GeneveOption: {"length": None},
    Gre: {"version": 0, "r": 0, "c": None, "k": None, "s": None},
    Stt: {"version": 0},
    Lacpdu: {"subtype": 1, "actor_length": 20, "partner_length": 20, "collector_length": 16,
             "terminator_length": 0},
    IPv6HopByHop: {"hdr_ext_len": None},
    IPv6Routing: {"hdr_ext_len": None},
    IPv6DestOpts: {"hdr_ext_len": None},
    NdOption: {"length": None},
    IcmpEcho: {"type": 8}, IcmpDestUnreach: {"type": 3}, IcmpTimeExceeded: {"type": 11},
    Icmpv6Echo: {"type": 128}, Icmpv6DestUnreach: {"type": 1}, Icmpv6PacketTooBig: {"type": 2},
    Icmpv6TimeExceeded: {"type": 3}, NeighborSolicit: {"type": 135}, NeighborAdvert: {"type": 136},
}

HEADERS: list[type[Header]] = [
    Ethernet, Dot1Q, Arp, IPv4, IPv6, IPv6HopByHop, IPv6Routing, IPv6DestOpts, IPv6Fragment,
    Icmp, IcmpEcho, IcmpDestUnreach, IcmpTimeExceeded, Icmpv6, Icmpv6Echo, Icmpv6DestUnreach,
    Icmpv6PacketTooBig, Icmpv6TimeExceeded, NeighborSolicit, NeighborAdvert, NdOption, Udp, Tcp,
    Vxlan, Geneve, GeneveOption, Gre, Stt, Lacpdu, PcapFileHeader, PcapRecordHeader,
]


def _field_strategy(spec: Any) -> st.SearchStrategy[Any]:
    if spec.kind == "bits":
        return st.integers(0, (1 << spec.width) - 1)
    if spec.kind == "mac":
        return macs
    if spec.kind == "ipv4":
        return ipv4s
    if spec.kind == "ipv6":
        return ipv6s
    return st.binary(min_size=spec.width, max_size=spec.width)


def headers(cls: type[Header]) -> st.SearchStrategy[Header]:
    """Random instances of `cls` that its own decoder must accept."""
    fixed = FIXED.get(cls, {})
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for spec in cls._specs:
        fields[spec.name] = st.just(fixed[spec.name]) if spec.name in fixed else _field_strategy(spec)
    fields.update(EXTRAS.get(cls, {}))
    return st.fixed_dictionaries(fields).map(lambda kw: cls(**kw))
