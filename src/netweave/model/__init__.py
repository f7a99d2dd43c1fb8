"""Immutable value types shared by every layer above `packet`: what a VTEP is told to do.

No logic beyond validation. The standalone VTEP's YAML, the control socket and (later) the controller's
per-chassis view all turn into these.
"""

import ipaddress
from dataclasses import dataclass
from typing import Literal

from netweave.packet.addr import ip_to_bytes, mac_to_bytes
from netweave.packet.encap import check_vni
from netweave.packet.tunnel import GeneveOption

Mode = Literal["flood-learn", "static"]
UnknownArp = Literal["flood", "drop"]
MODES = ("flood-learn", "static")
IRB_MODES = ("symmetric", "asymmetric")
IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")


def _check_mac(mac: str) -> str:
    mac_to_bytes(mac)  # ValueError with the offending text
    return mac.lower()


def _check_ip(ip: str) -> str:
    ip_to_bytes(ip)
    return ip


def _check_cidr(cidr: str) -> str:
    try:
        return str(ipaddress.ip_network(cidr, strict=False))
    except ValueError:
        raise ValueError(f"{cidr!r} is not a CIDR") from None


@dataclass(frozen=True)
class Subnet:
    """An IP subnet of a network, as a VTEP needs it to answer DHCP, DHCPv6 and router solicitations for
    its local ports (the addresses come from each port's `ips`; this is the rest of the lease)."""

    cidr: str
    gateway_ip: str | None = None
    dhcp: bool = False  # Neutron's enable_dhcp: answer DHCPv4 / DHCPv6 for ports with an address here
    dns: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()  # (destination CIDR, nexthop): option 121 / routes
    ipv6_address_mode: str | None = None  # slaac | dhcpv6-stateful | dhcpv6-stateless
    ipv6_ra_mode: str | None = None  # set: the VTEP answers router solicitations with this mode

    def __post_init__(self) -> None:
        object.__setattr__(self, "cidr", _check_cidr(self.cidr))
        net = ipaddress.ip_network(self.cidr)
        for ip in (self.gateway_ip, *self.dns, *(hop for _, hop in self.host_routes)):
            if ip is not None:
                _check_ip(ip)
        for dest, _ in self.host_routes:
            _check_cidr(dest)
        if self.gateway_ip is not None and ipaddress.ip_address(self.gateway_ip) not in net:
            raise ValueError(f"subnet {self.cidr}: gateway {self.gateway_ip} is outside it")
        for mode in (self.ipv6_address_mode, self.ipv6_ra_mode):
            if mode is not None and (net.version != 6 or mode not in IPV6_MODES):
                raise ValueError(f"subnet {self.cidr}: IPv6 mode {mode!r} is not one of "
                                 f"{', '.join(IPV6_MODES)} on an IPv6 subnet")

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.cidr).version


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
    subnets: tuple[Subnet, ...] = ()  # for native DHCP/RA; routing comes from `Router`

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
class RouterInterface:
    """A router's leg on one subnet: the anycast gateway. Every chassis answers for `gateway_ip` with
    `mac` (the interface port's MAC), so a VM's first hop is always its own host."""

    vni: int  # the subnet's network (L2 VNI)
    cidr: str
    gateway_ip: str
    mac: str
    encap: str = "vxlan"  # the network's encapsulation: asymmetric IRB tunnels routed frames on it

    def __post_init__(self) -> None:
        object.__setattr__(self, "cidr", _check_cidr(self.cidr))
        object.__setattr__(self, "mac", _check_mac(self.mac))
        if ipaddress.ip_address(self.gateway_ip) not in ipaddress.ip_network(self.cidr):
            raise ValueError(f"router interface {self.cidr}: gateway {self.gateway_ip} is outside it")


@dataclass(frozen=True)
class RouterHost:
    """A VM address the router can reach: on network `vni` with `mac`, behind VTEP `vtep` (this host's
    own VTEP IP for local VMs). `rmac` is that VTEP's router MAC, the inner destination of symmetric IRB."""

    ip: str
    vni: int
    mac: str
    vtep: str
    rmac: str

    def __post_init__(self) -> None:
        _check_ip(self.ip)
        _check_ip(self.vtep)
        object.__setattr__(self, "mac", _check_mac(self.mac))
        object.__setattr__(self, "rmac", _check_mac(self.rmac))


@dataclass(frozen=True)
class Route:
    """A router's static route (Neutron's extra route): `destination` via `nexthop`, which must be on one
    of the router's subnets."""

    destination: str
    nexthop: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "destination", _check_cidr(self.destination))
        _check_ip(self.nexthop)


@dataclass(frozen=True)
class Router:
    """A tenant routing domain (VRF) as one chassis holds it: its interfaces, the VMs it can reach and its
    static routes. `rmac` is this chassis' router MAC (symmetric IRB's inner MACs on the L3 VNI)."""

    name: str  # the router's id
    l3_vni: int
    rmac: str
    irb: str = "symmetric"  # symmetric | asymmetric
    interfaces: tuple[RouterInterface, ...] = ()
    hosts: tuple[RouterHost, ...] = ()
    routes: tuple[Route, ...] = ()

    def __post_init__(self) -> None:
        check_vni("vxlan", self.l3_vni)
        object.__setattr__(self, "rmac", _check_mac(self.rmac))
        if self.irb not in IRB_MODES:
            raise ValueError(f"router {self.name}: irb must be one of {', '.join(IRB_MODES)}")


@dataclass(frozen=True)
class DatapathState:
    """Everything a datapath is told to hold: the networks, the VM ports to wire, the remote MACs and the
    routers. A datapath's `apply` makes itself equal to one of these (and changes nothing when it already
    is)."""

    networks: tuple[Network, ...] = ()
    ports: tuple[Port, ...] = ()
    remotes: tuple[Remote, ...] = ()
    routers: tuple[Router, ...] = ()


@dataclass(frozen=True)
class VtepConfig:
    """The whole desired state of one standalone VTEP."""

    vtep_ip: str
    underlay_mtu: int = 1500
    networks: tuple[Network, ...] = ()
    ports: tuple[Port, ...] = ()
    remotes: tuple[Remote, ...] = ()
    aging_s: float = 300.0
