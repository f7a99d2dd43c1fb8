"""Network types (Neutron ML2's type drivers): which segmentation IDs each owns and its MTU overhead.

Overlay types get their overhead from the codecs (`netweave.packet.overhead_bytes`); provider types
(vlan, flat) use the physical network's MTU as is.
"""

from dataclasses import dataclass, field

from netweave.packet import overhead_bytes

OVERLAY_TYPES = ("vxlan", "geneve", "gre", "nvgre")
PROVIDER_TYPES = ("vlan", "flat")
NETWORK_TYPES = OVERLAY_TYPES + PROVIDER_TYPES
TYPE_LIMITS = {
    "vxlan": (1, 2**24 - 1),
    "geneve": (1, 2**24 - 1),
    "nvgre": (1, 2**24 - 1),
    "gre": (1, 2**32 - 1),
    "vlan": (1, 4094),
}


@dataclass
class TypeConfig:
    """The controller's network-type settings (what Neutron's ml2_conf.ini holds)."""

    default_type: str = "vxlan"
    underlay_mtu: int = 1500
    physical_mtu: int = 1500
    ranges: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {
            "vxlan": (1000, 99999),
            "geneve": (1000, 99999),
            "nvgre": (1000, 99999),
            "gre": (1000, 99999),
            "vlan": (100, 4094),
        }
    )
    physical_networks: tuple[str, ...] = ("physnet1",)
    #: routers' L3 VNIs (symmetric IRB); kept apart from the network VNI ranges above
    l3_vni_range: tuple[int, int] = (100000, 199999)

    def set_range(self, spec: str) -> None:
        """Apply "TYPE:MIN:MAX" (command-line form); ValueError when it is not a valid range of that type."""
        parts = spec.split(":")
        if len(parts) != 3 or parts[0] not in TYPE_LIMITS or not parts[1].isdigit() or not parts[2].isdigit():
            raise ValueError(f"expected TYPE:MIN:MAX with TYPE one of {', '.join(TYPE_LIMITS)}")
        low, high = int(parts[1]), int(parts[2])
        limit_low, limit_high = TYPE_LIMITS[parts[0]]
        if not limit_low <= low <= high <= limit_high:
            raise ValueError(f"{parts[0]} IDs must satisfy {limit_low} <= MIN <= MAX <= {limit_high}")
        self.ranges[parts[0]] = (low, high)

    def mtu(self, network_type: str) -> int:
        if network_type in OVERLAY_TYPES:
            return self.underlay_mtu - overhead_bytes(network_type, "ipv4")
        return self.physical_mtu
