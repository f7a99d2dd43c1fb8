"""Encapsulation overhead and the largest tenant MTU, measured from the codecs rather than typed in.

The overhead is what the underlay's IP MTU must carry beyond the tenant's IP packet: outer IP header,
UDP/TCP-like header, tunnel header and the tenant's own Ethernet header (the tenant MTU, like a NIC MTU,
counts from the IP header). It is measured by encapsulating an inner frame that is only an Ethernet
header and counting what the underlay IP packet holds.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from netweave.packet.encap import ENCAPS, encapsulate
from netweave.packet.l2 import Ethernet
from netweave.packet.tunnel import GeneveOption

UNDERLAYS = {"ipv4": ("192.0.2.1", "192.0.2.2"), "ipv6": ("2001:db8::1", "2001:db8::2")}
MIN_IPV4_MTU = 68
MIN_IPV6_MTU = 1280


@dataclass(frozen=True)
class OverheadRow:
    encap: str
    underlay: str  # "ipv4" | "ipv6"
    overhead_bytes: int
    inner_mtu: int  # the largest tenant IP MTU that fits the underlay MTU (may be < 0: does not fit)


def overhead_bytes(encap: str, underlay: str = "ipv4", options: Sequence[GeneveOption] = ()) -> int:
    """Bytes an underlay IP packet carries in addition to the tenant's IP packet."""
    src, dst = UNDERLAYS[underlay]
    inner = bytes(Ethernet(dst="02:00:00:00:00:02", src="02:00:00:00:00:01", type=0x0800))
    frame = encapsulate(inner, encap=encap, vni=1, src_ip=src, dst_ip=dst, options=options)
    return len(frame) - Ethernet.size  # outer Ethernet is below the IP MTU; inner IP is empty


def inner_mtu(encap: str, underlay_mtu: int, underlay: str = "ipv4",
              options: Sequence[GeneveOption] = ()) -> int:
    return underlay_mtu - overhead_bytes(encap, underlay, options)


def overhead_table(underlay_mtu: int = 1500, options: Sequence[GeneveOption] = ()) -> list[OverheadRow]:
    """One row per encapsulation and underlay family; `options` are the Geneve options carried."""
    rows = []
    for underlay in UNDERLAYS:
        for encap in ENCAPS:
            ovh = overhead_bytes(encap, underlay, options if encap == "geneve" else ())
            rows.append(OverheadRow(encap, underlay, ovh, underlay_mtu - ovh))
    return rows
