"""Immutable value types shared by every layer above `packet`: what a VTEP is told to do.

No logic beyond validation. The standalone VTEP's YAML, the control socket and (later) the controller's
per-chassis view all turn into these.
"""

from dataclasses import dataclass
from typing import Literal

from netweave.packet.addr import ip_to_bytes, mac_to_bytes
from netweave.packet.encap import check_vni
from netweave.packet.tunnel import GeneveOption

Mode = Literal["flood-learn", "static"]
UnknownArp = Literal["flood", "drop"]
MODES = ("flood-learn", "static")


def _check_mac(mac: str) -> str:
    mac_to_bytes(mac)  # ValueError with the offending text
    return mac.lower()


def _check_ip(ip: str) -> str:
    ip_to_bytes(ip)
    return ip


@dataclass(frozen=True)
class Network:
    """One tenant L2 segment on this VTEP."""

    vni: int
    encap: str = "vxlan"
    mode: Mode = "flood-learn"
    flood: tuple[str, ...] = ()  # ingress replication: VTEP IPs
    multicast_group: str | None = None  # or one IP multicast group per VNI
    arp_suppression: bool = True
    unknown_arp: UnknownArp = "flood"
    #: unicast to a MAC the FIB does not know: flooded (classic bridging) or dropped (controller mode,
    #: where the control plane knows every MAC and a miss means "not here")
    unknown_unicast: UnknownArp = "flood"
    geneve_options: tuple[GeneveOption, ...] = ()  # sent with every Geneve packet of this network

    def __post_init__(self) -> None:
        check_vni(self.encap, self.vni)
        if self.geneve_options and self.encap != "geneve":
            raise ValueError(f"vni {self.vni}: geneve_options need encap geneve")
        for opt in self.geneve_options:
            opt.build()  # ValueError for data that is not a whole number of 4-byte words
        if self.encap not in ("vxlan", "geneve", "nvgre", "gre"):
            raise ValueError(f"vni {self.vni}: encap {self.encap!r} has no VTEP datapath "
                             "(use vxlan, geneve, nvgre or gre)")
        if self.mode not in MODES:
            raise ValueError(f"vni {self.vni}: mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.unknown_arp not in ("flood", "drop"):
            raise ValueError(f"vni {self.vni}: unknown_arp must be flood or drop")
        if self.unknown_unicast not in ("flood", "drop"):
            raise ValueError(f"vni {self.vni}: unknown_unicast must be flood or drop")
        for ip in self.flood:
            _check_ip(ip)
        if self.multicast_group is not None:
            raw = ip_to_bytes(self.multicast_group)
            if not (raw[0] & 0xF0 == 0xE0 if len(raw) == 4 else raw[0] == 0xFF):
                raise ValueError(f"vni {self.vni}: {self.multicast_group} is not a multicast address")
            if self.flood:
                raise ValueError(
                    f"vni {self.vni}: give flood (ingress replication) or multicast_group, not both")


@dataclass(frozen=True)
class Port:
    """A VM port: a device on this host whose frames belong to one VNI."""

    name: str
    vni: int
    mac: str
    ips: tuple[str, ...] = ()  # bindings for ARP/ND suppression; never configured inside the VM
    netns: str | None = None
    port_id: str = ""  # the controller's port id, when the port comes from a chassis view

    def __post_init__(self) -> None:
        if not self.name or len(self.name) > 15 or "/" in self.name or " " in self.name:
            raise ValueError(f"port name {self.name!r} is not a valid interface name (1-15 chars)")
        object.__setattr__(self, "mac", _check_mac(self.mac))
        for ip in self.ips:
            _check_ip(ip)


@dataclass(frozen=True)
class Remote:
    """A MAC (and optionally its IPs) behind a remote VTEP: a static or control-plane FIB entry."""

    vni: int
    mac: str
    vtep: str
    ips: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", _check_mac(self.mac))
        _check_ip(self.vtep)
        for ip in self.ips:
            _check_ip(ip)


@dataclass(frozen=True)
class DatapathState:
    """Everything a datapath is told to hold: the networks, the VM ports to wire and the remote MACs.
    A datapath's `apply` makes itself equal to one of these (and changes nothing when it already is)."""

    networks: tuple[Network, ...] = ()
    ports: tuple[Port, ...] = ()
    remotes: tuple[Remote, ...] = ()


@dataclass(frozen=True)
class VtepConfig:
    """The whole desired state of one standalone VTEP."""

    vtep_ip: str
    underlay_mtu: int = 1500
    networks: tuple[Network, ...] = ()
    ports: tuple[Port, ...] = ()
    remotes: tuple[Remote, ...] = ()
    aging_s: float = 300.0
