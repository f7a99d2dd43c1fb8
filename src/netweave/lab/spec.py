"""The lab file: a topology as plain data (Mininet's `Topo`, containerlab's topology file).

Schema in pydantic with unknown keys rejected; the checks that span several places (names unique across
the lab, references, an address inside its network's subnets) run afterwards, so every error names
the one place to fix, e.g. `tenants[0].vms[1].host: no host named 'h9'`.

Names end up in kernel object names: namespaces are `<lab>-<host>` / `<lab>-<vm>` and a host's name is
its veth's name in the underlay namespace, so host and VM names fit an interface name (15 bytes). The lab
name has no `-`, which makes `<lab>-` a prefix no other lab can share: `down` sweeps by it.
"""

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from netweave.lab.errors import SpecError
from netweave.yamlfile import read_mapping, where

Datapath = Literal["userspace", "kernel"]
NetworkType = Literal["vxlan", "geneve", "gre", "nvgre"]
ControlPlane = Literal["controller", "flood-learn"]
Replication = Literal["ingress", "multicast"]
Shape = Literal["segment", "leaf-spine"]
Irb = Literal["symmetric", "asymmetric"]
Ipv6Mode = Literal["slaac", "dhcpv6-stateful", "dhcpv6-stateless"]

UNDERLAY_NS = "ul"  # suffix of the underlay namespace: no host or VM may take it
DEFAULT_NAME = "demo"
MAX_HOSTS = 254  # one /24 (or the ::1..::fe of a /64) of underlay addresses
MAX_HOSTS_PER_LEAF = 253  # 198.18.<leaf>.1..253; .254 is the leaf itself
MAX_LINKS = 128  # leaf-spine links: one /31 each in 198.18.255.0/24
FABRIC_NODE = re.compile(r"(spine|leaf)[0-9]+")  # leaf-spine namespace suffixes


def _pattern(regex: str, what: str) -> AfterValidator:
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {what} name ({regex})")
        return value

    return AfterValidator(check)


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network address with prefix length ({exc})") from None
    if net.num_addresses < (4 if net.version == 4 else 2):
        raise ValueError(f"{net} is too small for hosts")
    return str(net)


def _listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
        ok = bool(sep) and port.isdigit() and 0 < int(port) < 65536
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{value!r} is not IP:PORT (IPv6 as [::1]:9696)")
    return value


LabName = Annotated[str, _pattern(r"[a-z][a-z0-9]{0,11}", "lab")]
NodeName = Annotated[str, _pattern(r"[a-z][a-z0-9-]{0,14}", "host/VM")]
ObjectName = Annotated[str, _pattern(r"[a-z][a-z0-9_-]{0,31}", "tenant/network")]
IpText = Annotated[str, AfterValidator(_ip)]
CidrText = Annotated[str, AfterValidator(_cidr)]
ListenText = Annotated[str, AfterValidator(_listen)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Underlay(_Strict):
    shape: Shape = "segment"
    spines: int = Field(default=2, ge=1, le=16)  # leaf-spine only
    leaves: int = Field(default=2, ge=1, le=64)  # leaf-spine only
    ip_version: Literal[4, 6] = 4
    mtu: int = Field(default=1500, ge=576, le=65535)

    def address(self, index: int) -> str:
        """Host `index` (1-based) on the shared segment: 198.18.0.0/24 (RFC 2544) or 2001:db8::/64."""
        return f"198.18.0.{index}" if self.ip_version == 4 else f"2001:db8::{index:x}"

    @property
    def prefixlen(self) -> int:
        return 24 if self.ip_version == 4 else 64

    # -- leaf-spine (IPv4): leaf j has 198.18.j.0/24 (itself .254), links are /31s of 198.18.255.0/24 --

    @staticmethod
    def leaf_subnet(leaf: int) -> str:
        return f"198.18.{leaf}.0/24"

    @staticmethod
    def leaf_gateway(leaf: int) -> str:
        return f"198.18.{leaf}.254"

    def link_addresses(self, leaf: int, spine: int) -> tuple[str, str]:
        """(the leaf's end, the spine's end) of the /31 between leaf `leaf` and spine `spine` (1-based)."""
        base = 2 * ((leaf - 1) * self.spines + spine - 1)
        return f"198.18.255.{base + 1}", f"198.18.255.{base}"


class Api(_Strict):
    listen: ListenText = "127.0.0.1:9696"

    @property
    def url(self) -> str:
        return f"http://{self.listen}"


class Host(_Strict):
    name: NodeName
    datapath: Datapath | None = None  # None: the lab's default (`netweave lab up --datapath`, else userspace)
    leaf: int | None = Field(default=None, ge=1)  # leaf-spine: None = round-robin over the leaves
    fixed_source_port: int | None = Field(default=None, ge=1, le=65535)  # `netweave vtep --fixed-...`


class Subnet(_Strict):
    cidr: CidrText
    #: IPv6 only: how VMs get addresses (ipv6_address_mode and ipv6_ra_mode both): router advertisements
    #: with SLAAC, or DHCPv6; none = the lab sets the port's address itself
    ipv6_mode: Ipv6Mode | None = None

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)


class Network(_Strict):
    name: ObjectName
    type: NetworkType = "vxlan"
    control_plane: ControlPlane = "controller"
    replication: Replication = "ingress"
    multicast_group: IpText | None = None
    subnets: list[Subnet] = Field(min_length=1)
    #: VMs get their addresses, gateway and MTU by DHCP (a real client in the VM's namespace) from the
    #: VTEP's native DHCP; false: the lab configures them itself
    dhcp: bool = False


class Router(_Strict):
    """A tenant router (distributed: every host of its VMs routes) joining some of the tenant's networks."""

    name: ObjectName
    networks: list[str] = Field(min_length=1)
    irb: Irb = "symmetric"


class Vm(_Strict):
    name: NodeName
    host: str
    network: str
    ip: IpText | None = None


class Tenant(_Strict):
    name: ObjectName
    networks: list[Network] = []
    routers: list[Router] = []
    vms: list[Vm] = []

    def router_of(self, network: str) -> Router | None:
        return next((r for r in self.routers if network in r.networks), None)


class Lab(_Strict):
    name: LabName
    underlay: Underlay = Underlay()
    api: Api = Api()
    hosts: list[Host] = Field(min_length=1)
    tenants: list[Tenant] = []

    def with_datapath(self, default: str | None) -> "Lab":
        """This lab with every host's datapath decided: its own, else `default`, else userspace."""
        hosts = [h.model_copy(update={"datapath": h.datapath or default or "userspace"}) for h in self.hosts]
        return self.model_copy(update={"hosts": hosts})

    def vm_network(self, vm_name: str) -> Network | None:
        """The network of the lab's VM `vm_name` (None for a port that is not one of the lab's VMs)."""
        for tenant in self.tenants:
            for vm in tenant.vms:
                if vm.name == vm_name:
                    return next((n for n in tenant.networks if n.name == vm.network), None)
        return None

    def netns(self, node: str) -> str:
        """The namespace of a host or VM (or `ul`, the underlay)."""
        return f"{self.name}-{node}"

    @property
    def prefix(self) -> str:
        """Every namespace this lab makes (and its agents make for foreign ports) starts with this."""
        return f"{self.name}-"

    @property
    def leaf_spine(self) -> bool:
        return self.underlay.shape == "leaf-spine"

    def leaf_of(self, index: int) -> int:
        """The leaf (1-based) of host `index` (1-based): its own `leaf`, else round-robin."""
        host = self.hosts[index - 1]
        return host.leaf or (index - 1) % self.underlay.leaves + 1

    def vtep_ip(self, index: int) -> str:
        """The underlay (VTEP) address of host `index` (1-based): 198.18.0.<i> on the segment,
        198.18.<leaf>.<k> (k-th host of that leaf) on a leaf-spine underlay."""
        if not self.leaf_spine:
            return self.underlay.address(index)
        leaf = self.leaf_of(index)
        k = sum(self.leaf_of(i) == leaf for i in range(1, index + 1))
        return f"198.18.{leaf}.{k}"


_MESSAGES = {"extra_forbidden": "unknown key", "missing": "required key missing"}


def _message(err: Any) -> str:
    if err["type"] in _MESSAGES:
        return _MESSAGES[err["type"]]
    return str(err["msg"]).removeprefix("Value error, ")


def parse(data: Any) -> Lab:
    """Validate a parsed document; SpecError (one line, with the place) on the first problem."""
    try:
        lab = Lab.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise SpecError(f"{where(tuple(errs[0]['loc']))}: {_message(errs[0])}{more}") from None
    check(lab)
    return lab


def check(lab: Lab) -> None:
    """The rules that span places: unique names, references, addresses inside their subnets."""
    if lab.underlay.ip_version == 6 and lab.underlay.mtu < 1280:
        raise SpecError(f"underlay.mtu: IPv6 needs at least 1280, not {lab.underlay.mtu}")
    if len(lab.hosts) > MAX_HOSTS:
        raise SpecError(f"hosts: at most {MAX_HOSTS} hosts fit the underlay segment")
    _check_fabric(lab)
    nodes: dict[str, str] = {}  # host/VM name -> "host"/"VM": they share the namespace prefix

    def claim(name: str, kind: str, where: str) -> None:
        if name == UNDERLAY_NS:
            raise SpecError(f"{where}: {name!r} is reserved for the underlay namespace")
        if lab.leaf_spine and FABRIC_NODE.fullmatch(name):
            raise SpecError(f"{where}: {name!r} is reserved for the leaf-spine namespaces")
        if name in nodes:
            raise SpecError(f"{where}: {name!r} is already a {nodes[name]} name")
        nodes[name] = kind

    for i, host in enumerate(lab.hosts):
        claim(host.name, "host", f"hosts[{i}].name")
    tenants: set[str] = set()
    networks: set[str] = set()
    for t, tenant in enumerate(lab.tenants):
        where_t = f"tenants[{t}]"
        if tenant.name in tenants:
            raise SpecError(f"{where_t}.name: tenant {tenant.name!r} appears twice")
        tenants.add(tenant.name)
        by_name: dict[str, Network] = {}
        for n, net in enumerate(tenant.networks):
            where_n = f"{where_t}.networks[{n}]"
            if net.name in networks:
                raise SpecError(f"{where_n}.name: network {net.name!r} appears twice in the lab")
            networks.add(net.name)
            by_name[net.name] = net
            _check_network(lab, net, where_n)
        _check_routers(tenant, by_name, where_t)
        used: dict[tuple[str, str], str] = {}  # (network, ip) -> VM
        for v, vm in enumerate(tenant.vms):
            where_v = f"{where_t}.vms[{v}]"
            claim(vm.name, "VM", f"{where_v}.name")
            if vm.host not in {h.name for h in lab.hosts}:
                raise SpecError(f"{where_v}.host: no host named {vm.host!r}")
            vm_net = by_name.get(vm.network)
            if vm_net is None:
                raise SpecError(
                    f"{where_v}.network: no network named {vm.network!r} in tenant {tenant.name!r}"
                )
            if vm.ip is not None:
                routed = tenant.router_of(vm_net.name) is not None
                _check_vm_ip(vm.ip, vm_net, f"{where_v}.ip", gateway=routed)
                if (vm_net.name, vm.ip) in used:
                    raise SpecError(
                        f"{where_v}.ip: {vm.ip} is already used by VM {used[vm_net.name, vm.ip]!r}"
                    )
                used[vm_net.name, vm.ip] = vm.name


def _check_fabric(lab: Lab) -> None:
    u = lab.underlay
    for i, host in enumerate(lab.hosts):
        if host.leaf is not None and not lab.leaf_spine:
            raise SpecError(f"hosts[{i}].leaf: only with underlay shape leaf-spine")
        if host.leaf is not None and host.leaf > u.leaves:
            raise SpecError(f"hosts[{i}].leaf: no leaf {host.leaf} (underlay has {u.leaves} leaves)")
        if host.fixed_source_port is not None and host.datapath == "kernel":
            raise SpecError(f"hosts[{i}].fixed_source_port: only with datapath userspace")
    if not lab.leaf_spine:
        return  # spines and leaves are ignored (model_dump writes their defaults: state.json round-trips)
    if u.ip_version != 4:
        raise SpecError("underlay.ip_version: the leaf-spine underlay is IPv4 only")
    if u.spines * u.leaves > MAX_LINKS:
        raise SpecError(
            f"underlay: {u.spines} spines x {u.leaves} leaves: more than {MAX_LINKS} links (198.18.255.0/24)"
        )
    for leaf in range(1, u.leaves + 1):
        count = sum(lab.leaf_of(i) == leaf for i in range(1, len(lab.hosts) + 1))
        if count > MAX_HOSTS_PER_LEAF:
            raise SpecError(f"hosts: at most {MAX_HOSTS_PER_LEAF} hosts fit under leaf {leaf}")


def _check_network(lab: Lab, net: Network, where: str) -> None:
    if net.replication == "multicast" and lab.leaf_spine:
        raise SpecError(f"{where}.replication: multicast replication needs the segment underlay")
    if net.replication == "multicast" and net.control_plane != "flood-learn":
        raise SpecError(f"{where}.replication: multicast replication needs control_plane flood-learn")
    if net.replication == "multicast" and net.multicast_group is None:
        raise SpecError(f"{where}.multicast_group: required with replication multicast")
    if net.multicast_group is not None:
        group = ipaddress.ip_address(net.multicast_group)
        if net.replication != "multicast":
            raise SpecError(f"{where}.multicast_group: only used with replication multicast")
        if not group.is_multicast:
            raise SpecError(f"{where}.multicast_group: {group} is not a multicast address")
        if group.version != lab.underlay.ip_version:
            raise SpecError(
                f"{where}.multicast_group: {group} is IPv{group.version}, the underlay is "
                f"IPv{lab.underlay.ip_version}"
            )
    seen: list[tuple[int, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
    for s, subnet in enumerate(net.subnets):
        if subnet.ipv6_mode is not None and subnet.network.version != 6:
            raise SpecError(f"{where}.subnets[{s}].ipv6_mode: only for IPv6 subnets")
        if subnet.ipv6_mode in ("slaac", "dhcpv6-stateless") and subnet.network.prefixlen != 64:
            raise SpecError(f"{where}.subnets[{s}].ipv6_mode: {subnet.ipv6_mode} needs a /64")
        for other_index, other in seen:
            if subnet.network.overlaps(other):
                raise SpecError(
                    f"{where}.subnets[{s}].cidr: {subnet.cidr} overlaps subnets[{other_index}] ({other})"
                )
        seen.append((s, subnet.network))


def _check_routers(tenant: Tenant, by_name: dict[str, Network], where: str) -> None:
    names: set[str] = set()
    owner: dict[str, str] = {}  # network -> router
    for r, router in enumerate(tenant.routers):
        where_r = f"{where}.routers[{r}]"
        if router.name in names:
            raise SpecError(f"{where_r}.name: router {router.name!r} appears twice in tenant {tenant.name!r}")
        names.add(router.name)
        cidrs: list[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
        for n, name in enumerate(router.networks):
            net = by_name.get(name)
            if net is None:
                raise SpecError(f"{where_r}.networks[{n}]: no network named {name!r} in tenant "
                                f"{tenant.name!r}")
            if name in owner:
                raise SpecError(f"{where_r}.networks[{n}]: network {name!r} is already on router "
                                f"{owner[name]!r}")
            owner[name] = router.name
            for subnet in net.subnets:
                for other_net, other in cidrs:
                    if subnet.network.overlaps(other):
                        raise SpecError(f"{where_r}.networks[{n}]: {subnet.cidr} overlaps {other} of network "
                                        f"{other_net!r} on the same router")
                cidrs.append((name, subnet.network))


def _check_vm_ip(ip_text: str, net: Network, where: str, *, gateway: bool = False) -> None:
    ip = ipaddress.ip_address(ip_text)
    for subnet in net.subnets:
        cidr = subnet.network
        if ip.version == cidr.version and ip in cidr:
            # the controller's IPAM hands out the host range only: network/broadcast (v4) and the
            # subnet-router anycast address (v6) are not VM addresses
            if ip == cidr.network_address or (ip.version == 4 and ip == cidr.broadcast_address):
                raise SpecError(f"{where}: {ip} is not a host address of {cidr}")
            if gateway and ip == cidr.network_address + 1:
                raise SpecError(f"{where}: {ip} is the gateway address of {cidr} (the network has a router)")
            return
    cidrs = ", ".join(s.cidr for s in net.subnets)
    raise SpecError(f"{where}: {ip} is outside the subnets of network {net.name!r} ({cidrs})")


def default_lab() -> Lab:
    """Three hosts; tenants red and blue with the same address plan, so a reply from the right address
    proves nothing by itself: the matrix checks the MAC that answered. Both on VXLAN, the one
    encapsulation every datapath here carries (`netweave lab up --datapath kernel` works too; the kernel
    of this machine kind has no Geneve)."""
    tenants = []
    placement = {"red": ("h1", "h2", "h3"), "blue": ("h2", "h3", "h1")}
    for tenant, ntype in (("red", "vxlan"), ("blue", "vxlan")):
        first, second, third = placement[tenant]
        v = tenant[0]
        tenants.append(
            {
                "name": tenant,
                "networks": [
                    {"name": f"{tenant}-web", "type": ntype, "subnets": [{"cidr": "10.1.0.0/24"}]},
                    {"name": f"{tenant}-db", "type": ntype, "subnets": [{"cidr": "10.2.0.0/24"}]},
                ],
                "vms": [
                    {"name": f"{v}1", "host": first, "network": f"{tenant}-web", "ip": "10.1.0.11"},
                    {"name": f"{v}2", "host": second, "network": f"{tenant}-web", "ip": "10.1.0.12"},
                    {"name": f"{v}3", "host": third, "network": f"{tenant}-db"},  # IPAM picks
                ],
            }
        )
    return parse(
        {
            "name": DEFAULT_NAME,
            "hosts": [{"name": "h1"}, {"name": "h2"}, {"name": "h3"}],
            "tenants": tenants,
        }
    )


def load(path: str | Path | None) -> Lab:
    """The lab in `path`, or the built-in default lab when no file is given."""
    if path is None:
        return default_lab()
    data = read_mapping(path, SpecError)
    try:
        return parse(data)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from None
