"""The compiler: logical model (networks, ports, chassis) -> one view per chassis, incrementally.

A chassis needs to know only about the networks that have ports bound to it. So a view is the union of
*sections*, one per (chassis, network): the network's settings with its flood set, the chassis' own ports
on it, and (control plane `controller`) every other port's MAC/IPs -> VTEP. A change to a port or network
dirties the sections of the chassis on that network only; a chassis change dirties the sections of the
networks it serves. Only dirty sections are recomputed, and only the chassis whose view really changed get
a new revision and a diff (OVN's incremental processing, with the same "desired state, then diff" shape).

Pure: no I/O, no clock. The controller feeds it rows it read after a commit; the simulator and tests feed
it directly.
"""

import hashlib
import ipaddress
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

from netweave.control import views
from netweave.control.views import Diff, View
from netweave.model import IRB_MODES, Subnet
from netweave.model.wire import subnet_to_json

HISTORY = 64  # diffs kept per chassis: an agent further behind than this gets a full view


@dataclass(frozen=True)
class LNetwork:
    id: str
    vni: int
    encap: str  # vxlan | geneve | gre | nvgre
    control_plane: str = "controller"  # controller | flood-learn | evpn
    replication: str = "ingress"  # ingress | multicast
    multicast_group: str | None = None
    arp_suppression: bool = True
    subnets: tuple[Subnet, ...] = ()


@dataclass(frozen=True)
class LRouter:
    """A tenant router: distributed, so it appears in the view of every chassis that has a port on one of
    its networks. Its interfaces are ports (`LPort.router`), as in Neutron."""

    id: str
    l3_vni: int
    irb: str = "symmetric"
    routes: tuple[tuple[str, str], ...] = ()  # (destination CIDR, nexthop)


@dataclass(frozen=True)
class LPort:
    id: str
    network_id: str
    mac: str
    host: str  # binding:host_id; "" = not bound: on no view
    ips: tuple[str, ...] = ()
    name: str = ""  # the API name: the agent's label for it
    netns: str | None = None  # binding:profile netns, where the VM's device goes
    router: str = ""  # a router interface port: the router's id (its IPs are the gateway addresses)


@dataclass(frozen=True)
class LChassis:
    name: str
    vtep_ip: str
    #: what its datapath can carry; empty = not reported (everything is tried)
    encaps: tuple[str, ...] = ()
    datapath: str = "userspace"
    #: the IRB modes its datapath can route with (as a distributed router); empty: it cannot route
    routing: tuple[str, ...] = IRB_MODES


def unsupported(net: "LNetwork", ch: LChassis, irbs: frozenset[str] = frozenset()) -> str | None:
    """Why `ch` cannot carry `net` (attached to routers with IRB modes `irbs`), or None when it can."""
    missing = sorted(irbs - set(ch.routing))
    if missing and not ch.routing:
        return (f"network {net.id} is attached to a router and chassis {ch.name}'s {ch.datapath} datapath "
                "cannot route (no VRF in this kernel); use the userspace datapath")
    if missing:
        return (f"network {net.id} is attached to a router with {missing[0]} IRB, which chassis {ch.name}'s "
                f"{ch.datapath} datapath cannot do (it routes with {', '.join(ch.routing)} IRB only)")
    if not ch.encaps or net.encap in ch.encaps:
        return None
    if ch.datapath == "kernel":
        return f"{net.encap} is not available in this host's kernel; use the userspace datapath"
    return f"{net.encap} is not supported by chassis {ch.name}'s {ch.datapath} datapath"


def router_mac(vtep_ip: str) -> str:
    """The chassis' router MAC (EVPN's RMAC): the inner MACs of symmetric IRB frames on a router's L3
    VNI. Derived from the VTEP IP, so every chassis computes every other's without asking; locally
    administered (0x0e...) so it never equals a Neutron-allocated MAC (fa:16:3e...)."""
    return "0e:" + ":".join(f"{b:02x}" for b in hashlib.blake2s(vtep_ip.encode(), digest_size=5).digest())


def device_name(port_id: str) -> str:
    """The VM port's device on the chassis (Neutron's convention: 'tap' + the id's first 11 chars)."""
    return f"tap{port_id[:11]}"


@dataclass
class ChassisState:
    revision: int
    view: View
    history: deque[tuple[int, int, Diff]]  # (from revision, to revision, diff)


class Compiler:
    def __init__(self, epoch: str = "") -> None:
        self.epoch = epoch  # changes whenever the history restarts (a new controller process)
        self.networks: dict[str, LNetwork] = {}
        self.ports: dict[str, LPort] = {}
        self.chassis: dict[str, LChassis] = {}
        self.routers: dict[str, LRouter] = {}
        #: router id -> its interface ports; network id -> routers attached to it (by interface count)
        self.interfaces_by_router: dict[str, dict[str, str]] = {}  # router -> {port id: network id}
        self.routers_by_network: dict[str, Counter[str]] = {}
        self.ports_by_network: dict[str, set[str]] = {}
        self.hosts_by_network: dict[str, Counter[str]] = {}
        self.networks_by_host: dict[str, Counter[str]] = {}
        self.sections: dict[tuple[str, str], View] = {}
        self.states: dict[str, ChassisState] = {}
        self._remote_json: dict[str, dict[str, Any]] = {}
        #: ports bound to a chassis that cannot carry their network -> why (the controller shows them
        #: as status ERROR); `binding_changes` collects what changed in it since the last take
        self.binding_errors: dict[str, str] = {}
        self.binding_changes: dict[str, str | None] = {}
        self.revision = 0
        self.sections_computed = 0  # for tests and the benchmark: the work incremental updates avoid

    # ------------------------------------------------------------------ input
    def update(
        self,
        *,
        revision: int,
        networks: dict[str, LNetwork | None] | None = None,
        ports: dict[str, LPort | None] | None = None,
        chassis: dict[str, LChassis | None] | None = None,
        routers: dict[str, LRouter | None] | None = None,
    ) -> dict[str, Diff]:
        """Apply changed rows (None = deleted) at model revision `revision`; returns the chassis whose
        view changed, with the diff each got."""
        self.revision = max(self.revision, revision)
        dirty: set[tuple[str, str]] = set()
        for rid, router in (routers or {}).items():
            dirty |= self._router_sections(rid)
            for nid in self._router_networks(rid):  # its IRB mode decides where its networks may go
                dirty |= {(host, nid) for host in self.hosts_by_network.get(nid, ())}
            if router is None:
                self.routers.pop(rid, None)
            else:
                self.routers[rid] = router
        touched_chassis: set[str] = set()
        for cid, ch in (chassis or {}).items():
            touched_chassis.add(cid)
            if ch is None:
                self.chassis.pop(cid, None)
            else:
                self.chassis[cid] = ch
            for nid in self.networks_by_host.get(cid, ()):
                dirty |= self._network_sections(nid)
            self._remote_json = {
                k: v for k, v in self._remote_json.items() if self.ports.get(k, _NO_PORT).host != cid
            }
        for nid, net in (networks or {}).items():
            if net is None:
                self.networks.pop(nid, None)
                for pid in list(self.ports_by_network.get(nid, ())):
                    dirty |= self._unindex(pid)
            else:
                old = self.networks.get(nid)
                self.networks[nid] = net
                if old is not None and old.vni != net.vni:
                    for pid in self.ports_by_network.get(nid, ()):
                        self._remote_json.pop(pid, None)
            dirty |= self._network_sections(nid)
        for pid, port in (ports or {}).items():
            dirty |= self._unindex(pid)
            if port is not None:
                self._index(port)
                dirty |= self._network_sections(port.network_id)
        return self._recompute(dirty, touched_chassis, revision)

    def load(
        self, *, revision: int, networks: list[LNetwork], ports: list[LPort], chassis: list[LChassis],
        routers: list[LRouter] | None = None,
    ) -> None:
        """Start from a whole model (the controller's start): every view computed once."""
        self.update(
            revision=revision,
            networks={n.id: n for n in networks},
            ports={p.id: p for p in ports},
            chassis={c.name: c for c in chassis},
            routers={r.id: r for r in routers or ()},
        )

    def _index(self, port: LPort) -> None:
        self.ports[port.id] = port
        if port.router:
            self.interfaces_by_router.setdefault(port.router, {})[port.id] = port.network_id
            self.routers_by_network.setdefault(port.network_id, Counter())[port.router] += 1
            return
        if not port.host:
            return
        self.ports_by_network.setdefault(port.network_id, set()).add(port.id)
        self.hosts_by_network.setdefault(port.network_id, Counter())[port.host] += 1
        self.networks_by_host.setdefault(port.host, Counter())[port.network_id] += 1

    def _unindex(self, pid: str) -> set[tuple[str, str]]:
        old = self.ports.pop(pid, None)
        self._remote_json.pop(pid, None)
        if pid in self.binding_errors:
            self._binding_error(pid, None)
        if old is not None and old.router:
            dirty = self._network_sections(old.network_id)
            self.interfaces_by_router[old.router].pop(pid, None)
            attached = self.routers_by_network[old.network_id]
            attached[old.router] -= 1
            if attached[old.router] <= 0:
                del attached[old.router]
            return dirty
        if old is None or not old.host:
            return set()
        dirty = self._network_sections(old.network_id)
        self.ports_by_network[old.network_id].discard(pid)
        for counter, key in ((self.hosts_by_network[old.network_id], old.host),
                             (self.networks_by_host[old.host], old.network_id)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
        return dirty

    def _network_sections(self, nid: str) -> set[tuple[str, str]]:
        """The sections that read network `nid`: its own on every chassis with a port on it, and those of
        the routers attached to it (their interfaces and host routes come from it)."""
        out = {(host, nid) for host in self.hosts_by_network.get(nid, ())}
        for rid in self.routers_by_network.get(nid, ()):
            out |= self._router_sections(rid)
        return out

    def _irbs(self, nid: str) -> frozenset[str]:
        """The IRB modes of the routers attached to network `nid`."""
        return frozenset(r.irb for rid in self.routers_by_network.get(nid, ())
                         if (r := self.routers.get(rid)) is not None)

    def _router_networks(self, rid: str) -> set[str]:
        return set(self.interfaces_by_router.get(rid, {}).values())

    def _router_sections(self, rid: str) -> set[tuple[str, str]]:
        """A router's section on every chassis with a port on any of its networks (its whole span: a
        distributed router exists wherever one of its VMs is)."""
        key = ROUTER_KEY + rid
        return {(host, key) for nid in self._router_networks(rid)
                for host in self.hosts_by_network.get(nid, ())}

    # ------------------------------------------------------------------ compile
    def _section(self, host: str, nid: str) -> View | None:
        if nid.startswith(ROUTER_KEY):
            return self._router_section(host, nid[len(ROUTER_KEY):])
        net = self.networks.get(nid)
        hosts = self.hosts_by_network.get(nid)
        if net is None or not hosts or host not in hosts:
            return None
        me = self.chassis.get(host)
        reason = unsupported(net, me, self._irbs(nid)) if me is not None else None
        for pid in self.ports_by_network.get(nid, ()):
            if self.ports[pid].host == host:
                self._binding_error(pid, reason)
        if reason is not None:
            return None  # never scheduled there: no network, no devices, and the ports show why
        controller = net.control_plane != "flood-learn"
        entry: dict[str, Any] = {
            "vni": net.vni,
            "encap": net.encap,
            "mode": "static" if controller else "flood-learn",
            "arp_suppression": net.arp_suppression,
            "unknown_arp": "drop" if controller else "flood",
            "unknown_unicast": "drop" if controller else "flood",
            "flood": [],
            "multicast_group": None,
            "geneve_options": [],
            "subnets": [subnet_to_json(sub) for sub in net.subnets],
        }
        if net.replication == "multicast" and net.multicast_group:
            entry["multicast_group"] = net.multicast_group
        else:
            entry["flood"] = sorted({
                ch.vtep_ip for h in hosts if h != host and (ch := self.chassis.get(h)) is not None
                and (me is None or ch.vtep_ip != me.vtep_ip) and not unsupported(net, ch)
            })
        ports: dict[str, Any] = {}
        remotes: dict[str, Any] = {}
        for pid in self.ports_by_network.get(nid, ()):
            p = self.ports[pid]
            if p.host == host:
                ports[pid] = {
                    "name": device_name(pid), "vni": net.vni, "mac": p.mac, "ips": list(p.ips),
                    "netns": p.netns, "port_id": pid, "label": p.name or pid[:8],
                }
            elif controller:
                remote = self._remote(p, net)
                if remote is not None:
                    remotes[f"{net.vni}/{p.mac}"] = remote
        self.sections_computed += 1
        return {"networks": {str(net.vni): entry}, "ports": ports, "remotes": remotes}

    def _router_section(self, host: str, rid: str) -> View | None:
        """Router `rid` as chassis `host` holds it: the anycast gateway of each attached subnet, a host
        route per VM address on those subnets (with the VTEP and router MAC behind it) and the static
        routes. Absent where the chassis cannot route (its ports show why, see `_section`)."""
        router = self.routers.get(rid)
        me = self.chassis.get(host)
        if router is None or me is None or router.irb not in me.routing:
            return None
        interfaces: list[dict[str, Any]] = []
        attached: dict[str, list[ipaddress.IPv4Network | ipaddress.IPv6Network]] = {}
        for pid in sorted(self.interfaces_by_router.get(rid, ())):
            port = self.ports[pid]
            net = self.networks.get(port.network_id)
            if net is None:
                continue
            for ip in port.ips:
                addr = ipaddress.ip_address(ip)
                sub = next((s for s in net.subnets if addr in ipaddress.ip_network(s.cidr)), None)
                if sub is None:
                    continue
                interfaces.append({"vni": net.vni, "cidr": sub.cidr, "gateway_ip": ip, "mac": port.mac,
                                   "encap": net.encap})
                attached.setdefault(net.id, []).append(ipaddress.ip_network(sub.cidr))
        if not interfaces or not any(host in self.hosts_by_network.get(nid, ()) for nid in attached):
            return None
        hosts: list[dict[str, Any]] = []
        for nid, cidrs in sorted(attached.items()):
            net = self.networks[nid]
            for pid in sorted(self.ports_by_network.get(nid, ())):
                port = self.ports[pid]
                ch = self.chassis.get(port.host)
                if ch is None or unsupported(net, ch, frozenset((router.irb,))):
                    continue  # not reachable: no VTEP yet, or it cannot route (its port is in ERROR)
                for ip in port.ips:
                    if any(ipaddress.ip_address(ip) in c for c in cidrs):
                        hosts.append({"ip": ip, "vni": net.vni, "mac": port.mac, "vtep": ch.vtep_ip,
                                      "rmac": router_mac(ch.vtep_ip)})
        self.sections_computed += 1
        entry = {"name": rid, "l3_vni": router.l3_vni, "rmac": router_mac(me.vtep_ip), "irb": router.irb,
                 "interfaces": interfaces, "hosts": hosts,
                 "routes": [{"destination": d, "nexthop": h} for d, h in router.routes]}
        return {"routers": {rid: entry}}

    def _binding_error(self, pid: str, reason: str | None) -> None:
        if self.binding_errors.get(pid) == reason:
            return
        if reason is None:
            del self.binding_errors[pid]
        else:
            self.binding_errors[pid] = reason
        self.binding_changes[pid] = reason

    def take_binding_changes(self) -> dict[str, str | None]:
        out, self.binding_changes = self.binding_changes, {}
        return out

    def _remote(self, p: LPort, net: LNetwork) -> dict[str, Any] | None:
        cached = self._remote_json.get(p.id)
        if cached is None:
            ch = self.chassis.get(p.host)
            if ch is None or unsupported(net, ch):
                return None  # its chassis has not registered (no VTEP yet) or cannot carry the network
            cached = self._remote_json[p.id] = {"vni": net.vni, "mac": p.mac, "vtep": ch.vtep_ip,
                                                "ips": list(p.ips)}
        return cached

    def _recompute(self, dirty: set[tuple[str, str]], touched: set[str], revision: int) -> dict[str, Diff]:
        hosts: set[str] = set()
        for host, nid in dirty:
            old = self.sections.get((host, nid))
            section = self._section(host, nid)
            if section is None:
                self.sections.pop((host, nid), None)
            else:
                self.sections[(host, nid)] = section
            if section != old:
                hosts.add(host)
        changes: dict[str, Diff] = {}
        for host in touched | hosts:
            state = self.states.get(host)
            if state is None:
                state = self.states[host] = ChassisState(0, views.empty(), deque(maxlen=HISTORY))
            if host not in hosts:
                continue
            change = views.diff(state.view, self._assemble(host))
            if not change:
                continue
            changes[host] = change
            state.history.append((state.revision, revision, change))
            state.view = views.patch(state.view, change)
            state.revision = revision
        return {h: d for h, d in changes.items() if d}

    def _assemble(self, host: str) -> View:
        """A chassis' view: the union of its sections, in network-id order, so the same model always
        gives the same view however it was reached (two networks sharing a VNI, which the API prevents,
        still resolve the same way)."""
        view = views.empty()
        nids = sorted(self.networks_by_host.get(host, ()))
        rids = sorted({ROUTER_KEY + r for nid in nids for r in self.routers_by_network.get(nid, ())})
        for key in nids + rids:
            section = self.sections.get((host, key))
            if section is not None:
                for table, entries in section.items():
                    view[table].update(entries)
        return view

    # ------------------------------------------------------------------ output
    def view(self, host: str) -> tuple[int, View]:
        state = self.states.get(host)
        return (0, views.empty()) if state is None else (state.revision, state.view)

    def since(self, host: str, revision: int, epoch: str) -> dict[str, Any] | None:
        """What an agent at `revision` of this compiler's `epoch` needs: None when it is up to date, the
        diffs since then when we still have them all, else the full view (a resync)."""
        state = self.states.get(host)
        current = state.revision if state else 0
        if epoch == self.epoch and revision == current:
            return None
        if state is not None and epoch == self.epoch and revision < current:
            chain = list(state.history)
            for i, (start, _, _) in enumerate(chain):
                if start == revision:
                    return {"revision": current, "epoch": self.epoch, "diffs": [d for _, _, d in chain[i:]]}
        rev, view = self.view(host)
        return {"revision": rev, "epoch": self.epoch, "full": view}


_NO_PORT = LPort(id="", network_id="", mac="", host="")
ROUTER_KEY = "router/"  # a router's sections are keyed (host, ROUTER_KEY + router id)
