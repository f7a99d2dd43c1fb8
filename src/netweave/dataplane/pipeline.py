"""The VTEP's forwarding logic: (ingress, frame) -> where the frame goes. Pure: no sockets, no clock.

Two entry points: `from_port` (a frame a local VM sent) and `from_tunnel` (a decapsulated frame from a
remote VTEP). Each returns `(targets, frame)`: the frame to send (the original, or a reply the VTEP
built itself) and a tuple of targets `(kind, name)` with kind PORT (a local port), VTEP (unicast to a
remote VTEP IP) or GROUP (the VNI's multicast group).

The flow cache is the fast path. For frames whose decision depends only on the Ethernet header (all but
ARP, IPv6 neighbour discovery and IP multicast/broadcast, which can be DHCP, DHCPv6 or router
solicitations: those are inspected every time), the decision is stored under the exact key (ingress,
Ethernet header) and reused until any table changes: every table bumps a revision, and a changed revision
empties the cache. A hit costs a dict lookup, a timestamp refresh of the source's learned FIB entry and the
counters.

Routing (`netweave.dataplane.routing`): a frame a VM sends to its gateway's MAC is routed by the
distributed router of its network; the flow cache only says "route it" (the Ethernet header cannot tell
where), the router's own cache keyed by destination address does the rest. Routed frames leave as PORT
targets or as TUNNEL targets `"<vni> <vtep>"`, which carry their own VNI (the router's L3 VNI, or another
network's), unlike VTEP targets that use the ingress network's. The VTEP answers ARP/ND and pings for
gateway addresses itself, and DHCP / DHCPv6 / router solicitations for its local ports
(`netweave.dataplane.dhcp`).
"""

import dataclasses
from dataclasses import dataclass, field

from netweave.dataplane import dhcp
from netweave.dataplane.counters import Counters
from netweave.dataplane.fib import FibEntry, L2Fib
from netweave.dataplane.replies import arp_reply, echo_reply, frag_needed, icmp_error, neighbor_advert
from netweave.dataplane.routing import LOCAL, NO_ROUTE, TUNNEL, RouterTable, routed
from netweave.model import Network, Port, Remote, Router, RouterInterface
from netweave.packet import Arp, DecodeError, IPv6, NeighborAdvert, NeighborSolicit
from netweave.packet.addr import ip_to_bytes, ip_version, mac_from_bytes, mac_to_bytes
from netweave.packet.icmp import ND_NEIGHBOR_ADVERT, ND_NEIGHBOR_SOLICIT
from netweave.packet.ip import IPPROTO_ICMPV6
from netweave.packet.overhead import overhead_bytes

#: target kinds; ROUTE is internal (a cached "the router decides"), the datapath never sees it
PORT, VTEP, GROUP, TUNNEL_TARGET, ROUTE = 0, 1, 2, 3, 4
Target = tuple[int, str]
Result = tuple[tuple[Target, ...], bytes]
NOTHING: Result = ((), b"")

ETH_ARP = b"\x08\x06"
ETH_IPV4 = b"\x08\x00"
ETH_IPV6 = b"\x86\xdd"
ETH_LEN = 14


@dataclass
class Binding:
    mac: str
    origin: str  # "static" | "control" | "learned"


#: targets, learned source, flooded, max frame length; no targets and not flooded: split horizon, or an
#: unknown unicast dropped (then max length is UNKNOWN_DROPPED)
Decision = tuple[tuple[Target, ...], FibEntry | None, bool, int]
UNKNOWN_DROPPED = -1
ROUTED = -2  # max length of a routed decision: every frame "exceeds" it, which leads off the L2 fast path


@dataclass
class _Net:
    spec: Network
    inner_mtu: int
    ports: list[str] = field(default_factory=list)
    flood_remote: tuple[Target, ...] = ()
    counters: dict[str, int] = field(default_factory=dict)
    #: flow cache of frames from the underlay: remote VTEP -> Ethernet header -> decision
    tunnel_cache: dict[str, dict[bytes, Decision]] = field(default_factory=dict)
    #: the anycast gateways on this network: gateway MAC -> router, gateway address (incl. the IPv6
    #: link-local of its MAC) -> (router, interface)
    gateway_macs: dict[bytes, RouterTable] = field(default_factory=dict)
    gateway_ips: dict[bytes, tuple[RouterTable, RouterInterface]] = field(default_factory=dict)


class Dataplane:
    """All tables of one VTEP and the pipeline over them. Owned by one datapath (one writer)."""

    def __init__(self, vtep_ip: str, *, underlay_mtu: int = 1500, aging_s: float = 300.0) -> None:
        ip_version(vtep_ip)
        self.vtep_ip = vtep_ip
        self.underlay = "ipv6" if ip_version(vtep_ip) == 6 else "ipv4"
        self.underlay_mtu = underlay_mtu
        self.fib = L2Fib(aging_s)
        self.counters = Counters()
        self.networks: dict[int, _Net] = {}
        self.ports: dict[str, Port] = {}
        self.bindings: dict[tuple[int, str], Binding] = {}
        self.routers: dict[str, RouterTable] = {}
        self.l3_vnis: dict[int, RouterTable] = {}
        self._tunnel_mtu: dict[str, int] = {}  # encapsulation -> tenant MTU through it (routed frames)
        self._rev = 0
        self._cache_rev = -1
        #: per port (spec, its counters, its network, its flow cache: Ethernet header -> decision), so a
        #: frame costs one lookup of its port and one of its header
        self._port_state: dict[str, tuple[Port, dict[str, int], _Net, dict[bytes, Decision]]] = {}
        self.cache_hits = 0
        self.cache_misses = 0

    # ------------------------------------------------------------------ configuration
    @property
    def revision(self) -> int:
        return self._rev + self.fib.revision

    def _changed(self) -> None:
        """Any configuration change: bump the revision (empties the flow cache) and re-derive the
        per-port state the packet path reads."""
        self._rev += 1
        self._port_state = {name: (p, self.counters.add_port(name), self.networks[p.vni], {})
                            for name, p in self.ports.items() if p.vni in self.networks}
        for state in self.networks.values():
            state.gateway_macs, state.gateway_ips = {}, {}
        for router in self.routers.values():
            for iface in router.spec.interfaces:
                served = self.networks.get(iface.vni)
                if served is None:
                    continue  # symmetric IRB: a subnet with no local port is reached over the L3 VNI
                served.gateway_macs[mac_to_bytes(iface.mac)] = router
                served.gateway_ips[ip_to_bytes(iface.gateway_ip)] = (router, iface)
                if ":" in iface.gateway_ip:
                    served.gateway_ips[ip_to_bytes(dhcp.link_local(iface.mac))] = (router, iface)
        self._flush_flow_cache()

    def inner_mtu(self, vni: int) -> int:
        return self.networks[vni].inner_mtu

    def add_network(self, net: Network) -> None:
        """Add or update a network; its ports and FIB entries stay."""
        old = self.networks.get(net.vni)
        mtu = self.underlay_mtu - overhead_bytes(net.encap, self.underlay, net.geneve_options)
        state = _Net(net, mtu, old.ports if old else [], counters=self.counters.add_vni(net.vni))
        if net.multicast_group:
            state.flood_remote = ((GROUP, net.multicast_group),)
        else:
            state.flood_remote = tuple((VTEP, ip) for ip in net.flood if ip != self.vtep_ip)
        self.networks[net.vni] = state
        if old is not None and old.spec.mode == "flood-learn" and net.mode == "static":
            self.fib.flush(net.vni, origin="learned")
        self._changed()

    def remove_network(self, vni: int) -> None:
        net = self.networks.pop(vni, None)
        if net is None:
            raise KeyError(f"no network with vni {vni}")
        for name in net.ports:
            self.ports.pop(name, None)
        self.fib.flush(vni)
        for key in [k for k in self.bindings if k[0] == vni]:
            del self.bindings[key]
        self._changed()

    def set_flood(self, vni: int, *, vteps: tuple[str, ...] = (), group: str | None = None) -> None:
        net = self._net(vni)
        self.add_network(dataclasses.replace(net.spec, flood=tuple(vteps), multicast_group=group))

    def add_port(self, port: Port) -> None:
        net = self._net(port.vni)
        old = self.ports.get(port.name)
        if old is not None:
            self.remove_port(port.name)
        self.ports[port.name] = port
        net.ports.append(port.name)
        self.counters.add_port(port.name)
        self.fib.set(port.vni, mac_to_bytes(port.mac), port=port.name, origin="static")
        for ip in port.ips:
            self.bindings[(port.vni, ip)] = Binding(port.mac, "static")
        self._changed()

    def remove_port(self, name: str) -> None:
        port = self.ports.pop(name, None)
        if port is None:
            raise KeyError(f"no port named {name!r}")
        net = self.networks.get(port.vni)
        if net is not None and name in net.ports:
            net.ports.remove(name)
        self.fib.flush(port=name)
        for ip in port.ips:
            b = self.bindings.get((port.vni, ip))
            if b is not None and b.mac == port.mac:
                del self.bindings[(port.vni, ip)]
        self._changed()

    def add_remote(self, remote: Remote, origin: str = "static") -> None:
        self._net(remote.vni)
        self.fib.set(remote.vni, mac_to_bytes(remote.mac), vtep=remote.vtep,
                     origin="control" if origin == "control" else "static")
        for ip in remote.ips:
            self.bindings[(remote.vni, ip)] = Binding(remote.mac, origin)
        self._changed()

    def remove_remote(self, vni: int, mac: str) -> None:
        entry = self.fib.lookup(vni, mac_to_bytes(mac))
        if entry is None or entry.vtep is None:
            raise KeyError(f"no remote {mac} in vni {vni}")
        self.fib.remove(vni, mac_to_bytes(mac))
        for key in [k for k, b in self.bindings.items() if k[0] == vni and b.mac == mac.lower()]:
            del self.bindings[key]
        self._changed()

    def add_binding(self, vni: int, ip: str, mac: str, origin: str = "static") -> None:
        self._net(vni)
        ip_version(ip)
        self.bindings[(vni, ip)] = Binding(mac_from_bytes(mac_to_bytes(mac)), origin)
        self._changed()

    def remove_binding(self, vni: int, ip: str) -> None:
        if self.bindings.pop((vni, ip), None) is None:
            raise KeyError(f"no binding for {ip} in vni {vni}")
        self._changed()

    def add_router(self, router: Router) -> None:
        """Add or replace a router (its whole table: the routes it decided are forgotten)."""
        old = self.routers.get(router.name)
        if old is not None:
            self.l3_vnis.pop(old.spec.l3_vni, None)
        table = RouterTable(router, self.vtep_ip)
        self.routers[router.name] = table
        self.l3_vnis[router.l3_vni] = table
        self._changed()

    def remove_router(self, name: str) -> None:
        table = self.routers.pop(name, None)
        if table is None:
            raise KeyError(f"no router {name!r}")
        self.l3_vnis.pop(table.spec.l3_vni, None)
        self._changed()

    def age(self, now: float) -> int:
        """Expire learned FIB entries; returns how many went."""
        gone = self.fib.age(now)
        for vni, _ in gone:
            if vni in self.networks:
                self.networks[vni].counters["aged"] += 1
        return len(gone)

    def _net(self, vni: int) -> _Net:
        net = self.networks.get(vni)
        if net is None:
            raise KeyError(f"no network with vni {vni}")
        return net

    # ------------------------------------------------------------------ packets
    def _flush_flow_cache(self) -> None:
        """Forget every cached decision: some table changed (the revision moved)."""
        for state in self._port_state.values():
            state[3].clear()
        for net in self.networks.values():
            net.tunnel_cache.clear()
        self._cache_rev = self._rev + self.fib.revision  # both only grow: the sum moves iff either does

    def flow_cache_entries(self) -> int:
        return sum(len(s[3]) for s in self._port_state.values()) + sum(
            len(c) for n in self.networks.values() for c in n.tunnel_cache.values())

    def _learn(self, net: _Net, mac: bytes, now: float, *, port: str | None = None,
               vtep: str | None = None) -> FibEntry | None:
        result = self.fib.learn(net.spec.vni, mac, now, port=port, vtep=vtep)
        if result == "new":
            net.counters["learned"] += 1
        elif result == "moved":
            net.counters["moved"] += 1
        entry = self.fib.lookup(net.spec.vni, mac)
        return entry if entry is not None and entry.origin == "learned" else None

    def from_port(self, name: str, frame: bytes, now: float) -> Result:
        """A frame sent by the VM on local port `name`."""
        state = self._port_state.get(name)
        if state is None:
            self.counters.drop("no_such_port")
            return NOTHING
        port, pc, net, cache = state
        pc["rx_frames"] += 1
        pc["rx_bytes"] += len(frame)
        nc = net.counters
        if len(frame) < ETH_LEN:
            self.counters.drop("bad_header", port.vni, name)
            return NOTHING
        if self._rev + self.fib.revision != self._cache_rev:
            self._flush_flow_cache()
        key = frame[:ETH_LEN]
        hit = cache.get(key)
        if hit is None:
            self.cache_misses += 1
            special = self._port_special(net, name, frame, now)
            if special is not None:
                return special
            hit = self._port_decision(net, name, frame, now)
            if not frame[0] & 1 or frame[12:14] not in (ETH_IPV4, ETH_IPV6):
                cache[key] = hit  # IP multicast/broadcast may be DHCP or an RS: looked at every time
        else:
            self.cache_hits += 1
            if hit[1] is not None:
                hit[1].last_seen = now
        targets, _, flooded, max_frame = hit
        if not targets:
            reason = "no_flood_target" if flooded else "split_horizon"
            self.counters.drop("unknown_unicast" if max_frame == UNKNOWN_DROPPED else reason, port.vni, name)
            if flooded:
                nc["flooded"] += 1
            return targets, frame
        if len(frame) > max_frame:
            if max_frame == ROUTED:
                return self._route(net, name, frame)
            return self._too_big(net, name, frame)
        if flooded:
            nc["flooded"] += 1
        return targets, frame

    def _port_decision(self, net: _Net, name: str, frame: bytes,
                       now: float) -> Decision:
        vni = net.spec.vni
        src_entry = self._learn(net, frame[6:12], now, port=name)
        no_limit = 1 << 30
        if frame[0] & 1:
            return self._flood_from_port(net, name), src_entry, True, ETH_LEN + net.inner_mtu
        router = net.gateway_macs.get(frame[:6])
        if router is not None:
            return ((ROUTE, router.spec.name),), src_entry, False, ROUTED
        entry = self.fib.lookup(vni, frame[:6])
        if entry is None:
            if net.spec.unknown_unicast == "drop":
                return (), src_entry, False, UNKNOWN_DROPPED
            return self._flood_from_port(net, name), src_entry, True, ETH_LEN + net.inner_mtu
        if entry.port is not None:
            if entry.port == name:
                return (), src_entry, False, no_limit  # hairpin: the destination is on the ingress port
            return ((PORT, entry.port),), src_entry, False, no_limit
        assert entry.vtep is not None
        return ((VTEP, entry.vtep),), src_entry, False, ETH_LEN + net.inner_mtu

    def _flood_from_port(self, net: _Net, name: str) -> tuple[Target, ...]:
        return tuple((PORT, p) for p in net.ports if p != name) + net.flood_remote

    def _too_big(self, net: _Net, name: str, frame: bytes, mtu: int | None = None) -> Result:
        self.counters.drop("mtu", net.spec.vni, name)
        try:
            reply = frag_needed(frame, net.inner_mtu if mtu is None else mtu)
        except DecodeError:
            reply = None
        if reply is None:
            return NOTHING
        return ((PORT, name),), reply

    def _port_special(self, net: _Net, name: str, frame: bytes, now: float) -> Result | None:
        """ARP and neighbour discovery: suppression, the gateway's answers and binding learning; DHCP,
        DHCPv6 and router solicitations answered by the native DHCP. None = forward normally."""
        etype = frame[12:14]
        if etype == ETH_ARP:
            return self._arp(net, frame, now, ingress_port=name)
        if etype == ETH_IPV6 and len(frame) >= 62 and frame[20] == IPPROTO_ICMPV6 and frame[54] in (
                ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT):
            return self._nd(net, frame, now, ingress_port=name)
        if frame[0] & 1 and net.spec.subnets:
            return self._dhcp(net, name, frame)
        return None

    def _server_mac(self, net: _Net, version: int) -> str:
        """The MAC the native DHCP answers from: the network's gateway (so a unicast renewal to the
        server identifier, the gateway address, reaches the router that answers it), else a MAC of the
        VNI's own (locally administered)."""
        for _, iface in net.gateway_ips.values():
            if (":" in iface.gateway_ip) == (version == 6):
                return iface.mac
        return "0e:00:" + ":".join(f"{b:02x}" for b in net.spec.vni.to_bytes(4, "big"))

    def _dhcp(self, net: _Net, name: str, frame: bytes) -> Result | None:
        port = self.ports[name]
        subnets = net.spec.subnets
        try:
            if dhcp.is_dhcp4(frame):
                reply = dhcp.dhcp4_reply(frame, port, subnets, server_mac=self._server_mac(net, 4),
                                         mtu=net.inner_mtu)
            elif dhcp.is_dhcp6(frame):
                reply = dhcp.dhcp6_reply(frame, port, subnets, server_mac=self._server_mac(net, 6))
            elif dhcp.is_router_solicit(frame):
                reply = dhcp.router_advert(frame, port, subnets, router_mac=self._server_mac(net, 6),
                                           mtu=net.inner_mtu)
            else:
                return None
        except DecodeError:
            self.counters.drop("malformed", net.spec.vni, name)
            return NOTHING
        if reply is None:
            return None  # not ours to answer (no DHCP on its subnet): bridged like any frame
        net.counters["dhcp_replies"] += 1
        return ((PORT, name),), reply

    # ------------------------------------------------------------------ routing
    def _route(self, net: _Net, name: str, frame: bytes) -> Result:
        """A frame a local VM sent to its gateway's MAC: answered (to the gateway itself), or routed
        with one TTL decrement to a local VM or through a tunnel; ICMP errors back to the VM."""
        router = net.gateway_macs.get(frame[:6])
        vni = net.spec.vni
        etype = frame[12:14]
        if router is None or etype not in (ETH_IPV4, ETH_IPV6):
            self.counters.drop("not_routable", vni, name)
            return NOTHING
        v4 = etype == ETH_IPV4
        if len(frame) < (34 if v4 else 54) or frame[14] >> 4 != (4 if v4 else 6):
            self.counters.drop("malformed", vni, name)
            return NOTHING
        dst = frame[30:34] if v4 else frame[38:54]
        ttl = frame[22] if v4 else frame[21]
        try:
            if dst in router.gateway_ips:
                return self._to_gateway(net, name, frame)
            if ttl <= 1:
                self.counters.drop("ttl_exceeded", vni, name)
                return self._icmp(router, vni, name, frame, time_exceeded=True)
            d = router.decide(dst)
            if d.kind == LOCAL:
                entry = self.fib.lookup(d.vni, d.dst_mac)
                if entry is None or entry.port is None:
                    self.counters.drop("no_route", vni, name)
                    return self._icmp(router, vni, name, frame, code=1 if v4 else 3)
                net.counters["routed"] += 1
                return ((PORT, entry.port),), routed(frame, d.dst_mac, d.src_mac)
            if d.kind == TUNNEL:
                mtu = self._tunnel_mtu.get(d.encap)
                if mtu is None:
                    mtu = self.underlay_mtu - overhead_bytes(d.encap, self.underlay)
                    self._tunnel_mtu[d.encap] = mtu
                if len(frame) > ETH_LEN + mtu:
                    return self._too_big(net, name, frame, mtu)
                net.counters["routed"] += 1
                return ((TUNNEL_TARGET, d.target),), routed(frame, d.dst_mac, d.src_mac)
            self.counters.drop("no_route", vni, name)
            return self._icmp(router, vni, name, frame, code=0 if d.kind == NO_ROUTE else (1 if v4 else 3))
        except DecodeError:
            self.counters.drop("malformed", vni, name)
            return NOTHING

    def _icmp(self, router: RouterTable, vni: int, name: str, frame: bytes, *, time_exceeded: bool = False,
              code: int = 0) -> Result:
        """An ICMP error for `frame` from the router's address on the sender's subnet."""
        ingress = router.interface(vni, 6 if frame[12:14] == ETH_IPV6 else 4)
        if ingress is None:
            return NOTHING  # no address of the sender's family on this router to answer from
        reply = icmp_error(frame, ingress.gateway_ip, ingress.mac, time_exceeded=time_exceeded, code=code)
        return (((PORT, name),), reply) if reply is not None else NOTHING

    def _to_gateway(self, net: _Net, name: str, frame: bytes) -> Result:
        """Traffic for a gateway address: pings are answered, unicast DHCP renewals go to the native
        DHCP; the rest is dropped (the router runs no services)."""
        reply = echo_reply(frame)
        if reply is not None:
            net.counters["gateway_replies"] += 1
            return ((PORT, name),), reply
        answer = self._dhcp(net, name, frame) if net.spec.subnets else None
        if answer is not None:
            return answer
        self.counters.drop("not_routable", net.spec.vni, name)
        return NOTHING

    def _from_l3_vni(self, router: RouterTable, frame: bytes) -> Result:
        """Symmetric IRB, egress: a frame routed by another chassis, for one of our VMs. Delivered with
        its MACs rewritten and no second TTL decrement (the router is one logical hop)."""
        etype = frame[12:14]
        if frame[:6] != router.rmac or etype not in (ETH_IPV4, ETH_IPV6) or len(frame) < (
                34 if etype == ETH_IPV4 else 54):
            self.counters.drop("not_routable", router.spec.l3_vni)
            return NOTHING
        d = router.decide(frame[30:34] if etype == ETH_IPV4 else frame[38:54])
        entry = self.fib.lookup(d.vni, d.dst_mac) if d.kind == LOCAL else None
        if entry is None or entry.port is None:
            self.counters.drop("no_route", router.spec.l3_vni)
            return NOTHING
        net = self.networks.get(d.vni)
        if net is not None:
            net.counters["routed"] += 1
        return ((PORT, entry.port),), b"".join((d.dst_mac, d.src_mac, frame[12:]))

    def _flood_result(self, net: _Net, name: str | None, frame: bytes) -> Result:
        net.counters["flooded"] += 1
        if name is None:
            return tuple((PORT, p) for p in net.ports), frame
        return self._flood_from_port(net, name), frame

    def _learn_binding(self, net: _Net, ip: str, mac: str) -> None:
        if net.spec.mode != "flood-learn" or ip in ("0.0.0.0", "::"):
            return
        old = self.bindings.get((net.spec.vni, ip))
        if old is None or (old.origin == "learned" and old.mac != mac):
            self.bindings[(net.spec.vni, ip)] = Binding(mac, "learned")
            self._changed()

    def _arp(self, net: _Net, frame: bytes, now: float, ingress_port: str) -> Result | None:
        try:
            arp, _, _ = Arp.parse(frame, ETH_LEN)
        except DecodeError:
            self.counters.drop("malformed", net.spec.vni, ingress_port)
            return NOTHING
        if arp.spa == arp.tpa or arp.op == Arp.REPLY:  # gratuitous ARP / replies announce a binding
            self._learn_binding(net, arp.spa, arp.sha)
        gateway = net.gateway_ips.get(ip_to_bytes(arp.tpa)) if arp.op == Arp.REQUEST else None
        if gateway is not None and arp.spa != arp.tpa:
            net.counters["gateway_replies"] += 1
            return ((PORT, ingress_port),), arp_reply(arp, mac_from_bytes(frame[6:12]), gateway[1].mac)
        if arp.op != Arp.REQUEST or not net.spec.arp_suppression or arp.spa == arp.tpa:
            return None
        self._learn(net, frame[6:12], now, port=ingress_port)
        b = self.bindings.get((net.spec.vni, arp.tpa))
        if b is not None and b.mac != arp.sha:
            net.counters["suppressed_arp"] += 1
            return ((PORT, ingress_port),), arp_reply(arp, mac_from_bytes(frame[6:12]), b.mac)
        if net.spec.unknown_arp == "drop":
            self.counters.drop("unknown_arp", net.spec.vni, ingress_port)
            return NOTHING
        return self._flood_result(net, ingress_port, frame)

    def _nd(self, net: _Net, frame: bytes, now: float, ingress_port: str) -> Result | None:
        try:
            ip6, off, end = IPv6.parse(frame, ETH_LEN)
            if frame[off] == ND_NEIGHBOR_SOLICIT:
                ns, _, _ = NeighborSolicit.parse(frame[:end], off)
            else:
                na, _, _ = NeighborAdvert.parse(frame[:end], off)
                lla = na.lladdr()
                if na.override and lla:
                    self._learn_binding(net, na.target, lla)
                return None
        except DecodeError:
            self.counters.drop("malformed", net.spec.vni, ingress_port)
            return NOTHING
        gateway = net.gateway_ips.get(ip_to_bytes(ns.target))
        if gateway is not None and ip6.src != "::":
            net.counters["gateway_replies"] += 1
            answer = neighbor_advert(ip6, ns, mac_from_bytes(frame[6:12]), gateway[1].mac, router=True)
            return ((PORT, ingress_port),), answer
        if not net.spec.arp_suppression:
            return None
        self._learn(net, frame[6:12], now, port=ingress_port)
        b = self.bindings.get((net.spec.vni, ns.target))
        asker = ns.lladdr() or mac_from_bytes(frame[6:12])  # a DAD probe (from ::) carries no lladdr option
        if b is not None and b.mac != asker:
            net.counters["suppressed_nd"] += 1
            return ((PORT, ingress_port),), neighbor_advert(ip6, ns, mac_from_bytes(frame[6:12]), b.mac)
        if net.spec.unknown_arp == "drop":
            self.counters.drop("unknown_nd", net.spec.vni, ingress_port)
            return NOTHING
        return self._flood_result(net, ingress_port, frame)

    def from_tunnel(self, vtep: str, vni: int, frame: bytes, now: float) -> Result:
        """A frame decapsulated from remote VTEP `vtep` on `vni`: delivered to local ports only
        (split horizon: a VTEP never sends what came from the underlay back into it)."""
        net = self.networks.get(vni)
        if net is None:
            router = self.l3_vnis.get(vni)
            if router is not None and len(frame) >= ETH_LEN:
                return self._from_l3_vni(router, frame)
            self.counters.drop("no_such_vni")
            return NOTHING
        nc = net.counters
        nc["rx_frames"] += 1
        nc["rx_bytes"] += len(frame)
        if len(frame) < ETH_LEN:
            self.counters.drop("bad_header", vni)
            return NOTHING
        if vtep == self.vtep_ip:
            self.counters.drop("loop", vni)
            return NOTHING
        if self._rev + self.fib.revision != self._cache_rev:
            self._flush_flow_cache()
        cache = net.tunnel_cache.get(vtep)
        if cache is None:
            cache = net.tunnel_cache[vtep] = {}
        key = frame[:ETH_LEN]
        hit = cache.get(key)
        if hit is None:
            self.cache_misses += 1
            learn = net.spec.mode == "flood-learn"
            src_entry = self._learn(net, frame[6:12], now, vtep=vtep) if learn else None
            if learn and frame[12:14] == ETH_ARP:
                try:
                    arp, _, _ = Arp.parse(frame, ETH_LEN)
                    if arp.spa == arp.tpa or arp.op == Arp.REPLY:
                        self._learn_binding(net, arp.spa, arp.sha)
                except DecodeError:
                    pass
            if frame[0] & 1:
                hit = (tuple((PORT, p) for p in net.ports), src_entry, True, 0)
            else:
                entry = self.fib.lookup(vni, frame[:6])
                if entry is None and net.spec.unknown_unicast == "drop":
                    hit = ((), src_entry, False, UNKNOWN_DROPPED)
                elif entry is None:
                    hit = (tuple((PORT, p) for p in net.ports), src_entry, True, 0)
                elif entry.port is not None:
                    hit = (((PORT, entry.port),), src_entry, False, 0)
                else:
                    hit = ((), src_entry, False, 0)
            if frame[12:14] != ETH_ARP:
                cache[key] = hit
        else:
            self.cache_hits += 1
            if hit[1] is not None:
                hit[1].last_seen = now
        targets, _, flooded, max_frame = hit
        if flooded:
            nc["flooded"] += 1
        if not targets:
            reason = "split_horizon" if not flooded else "no_flood_target"
            self.counters.drop("unknown_unicast" if max_frame == UNKNOWN_DROPPED else reason, vni)
        return targets, frame

    def port_vni(self, name: str) -> int:
        return self.ports[name].vni

    def snapshot(self) -> dict[str, object]:
        """Counters plus table sizes, for `netweave vtep stats`."""
        out = self.counters.snapshot()
        out["fib_entries"] = len(self.fib)
        out["bindings"] = len(self.bindings)
        out["flow_cache"] = {"entries": self.flow_cache_entries(), "hits": self.cache_hits,
                             "misses": self.cache_misses}
        return out
