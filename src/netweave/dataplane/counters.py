"""Counters per VNI and per port, and drops by reason: what `netweave vtep stats` shows.

Per VNI, rx/tx count the underlay side (frames received from / sent to remote VTEPs on that VNI); per
port, rx/tx count what the VM sent / was given. So a VNI's rx_frames rising on a host proves that
traffic of that VNI reached this VTEP over the tunnel.

Plain dicts of ints, so the hot path pays one dict increment per counter it touches.
"""

from collections import Counter

VNI_COUNTERS = ("rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "flooded", "suppressed_arp",
                "suppressed_nd", "learned", "moved", "aged", "routed", "gateway_replies", "dhcp_replies",
                "drops")
PORT_COUNTERS = ("rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "drops")
DROP_REASONS = ("no_such_vni", "no_such_port", "bad_header", "mtu", "unknown_arp", "unknown_nd",
                "split_horizon", "no_flood_target", "loop", "malformed", "ttl_exceeded", "no_route",
                "not_routable")


class Counters:
    def __init__(self) -> None:
        self.vni: dict[int, dict[str, int]] = {}
        self.port: dict[str, dict[str, int]] = {}
        self.drops: Counter[str] = Counter()

    def add_vni(self, vni: int) -> dict[str, int]:
        return self.vni.setdefault(vni, dict.fromkeys(VNI_COUNTERS, 0))

    def add_port(self, name: str) -> dict[str, int]:
        return self.port.setdefault(name, dict.fromkeys(PORT_COUNTERS, 0))

    def drop(self, reason: str, vni: int | None = None, port: str | None = None) -> None:
        self.drops[reason] += 1
        if vni is not None and vni in self.vni:
            self.vni[vni]["drops"] += 1
        if port is not None and port in self.port:
            self.port[port]["drops"] += 1

    def snapshot(self) -> dict[str, object]:
        return {
            "vni": {str(k): dict(v) for k, v in sorted(self.vni.items())},
            "port": {k: dict(v) for k, v in sorted(self.port.items())},
            "drops": dict(sorted(self.drops.items())),
        }
