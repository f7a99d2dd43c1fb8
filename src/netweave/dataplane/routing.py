"""A distributed router as one VTEP holds it: anycast gateways, the routing table and its decisions.

Every chassis with a port on a router's subnet holds the whole router (NSX's and OVN's distributed
router): a VM's first hop is always its own host, and routed traffic never hairpins through a central
box. `RouterTable.decide(dst)` is longest-prefix match over the connected subnets (the interfaces) and
the static routes, then the host route of the destination (or of the static route's nexthop) gives the
VM's MAC and VTEP. The result depends on the router alone, so it is cached per destination address for
the table's life (a changed router is a new `RouterTable`); the cache is bounded, since a VM chooses the
destinations.

Forwarding modes (`Router.irb`):
- symmetric: the ingress VTEP routes, then tunnels on the router's L3 VNI with inner MACs router MAC ->
  the egress chassis' router MAC; the egress VTEP looks the destination up in the same router and
  delivers to its local VM. A chassis needs only its own subnets.
- asymmetric: the ingress VTEP routes and rewrites the frame for the destination subnet, then tunnels it
  on that subnet's L2 VNI; the egress VTEP only bridges.

Either way the router is one logical hop: the TTL is decremented once, at the ingress (the egress of
symmetric IRB delivers without a second decrement), so traceroute shows one routed hop.
"""

import ipaddress
from dataclasses import dataclass
from functools import cached_property

from netweave.model import Router, RouterHost, RouterInterface
from netweave.packet.addr import ip_to_bytes, mac_to_bytes

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DECISION_CACHE_MAX = 65536  # destinations remembered per router

#: decision kinds
LOCAL, TUNNEL, NO_ROUTE, UNREACHABLE = 0, 1, 2, 3


@dataclass(frozen=True)
class Decision:
    """Where a routed packet goes: LOCAL (`where` = the local VM's VNI and MAC: the pipeline finds the
    port in its FIB) or TUNNEL (`where` = (VNI to tunnel on, remote VTEP IP)), with the MACs the routed
    frame gets; NO_ROUTE / UNREACHABLE (no host on a connected subnet) produce ICMP errors."""

    kind: int
    vni: int = 0
    vtep: str = ""
    dst_mac: bytes = b""
    src_mac: bytes = b""
    encap_vni: int = 0  # TUNNEL: the VNI on the wire (the L3 VNI, or the destination's L2 VNI)
    encap: str = "vxlan"

    @cached_property
    def target(self) -> str:
        """The pipeline's TUNNEL target name: "<vni> <vtep>"."""
        return f"{self.encap_vni} {self.vtep}"


class RouterTable:
    def __init__(self, spec: Router, vtep_ip: str) -> None:
        self.spec = spec
        self.vtep_ip = vtep_ip
        self.rmac = mac_to_bytes(spec.rmac)
        #: (L2 VNI, gateway address bytes) -> interface: whose ARP/ND/ping the VTEP answers
        self.gateways: dict[tuple[int, bytes], RouterInterface] = {}
        #: L2 VNI -> its interfaces, the gateway MAC first matched by the pipeline
        self.by_vni: dict[int, list[RouterInterface]] = {}
        self.gateway_ips: set[bytes] = set()
        for iface in spec.interfaces:
            raw = ip_to_bytes(iface.gateway_ip)
            self.gateways[(iface.vni, raw)] = iface
            self.gateway_ips.add(raw)
            self.by_vni.setdefault(iface.vni, []).append(iface)
        self.hosts: dict[bytes, RouterHost] = {ip_to_bytes(h.ip): h for h in spec.hosts}
        #: longest prefix first: (prefix, nexthop bytes or None for a connected subnet, interface)
        table: list[tuple[IPNetwork, bytes | None]] = [
            (ipaddress.ip_network(i.cidr), None) for i in spec.interfaces]
        table += [(ipaddress.ip_network(r.destination), ip_to_bytes(r.nexthop)) for r in spec.routes]
        table.sort(key=lambda entry: -entry[0].prefixlen)
        self.table = table
        self.cache: dict[bytes, Decision] = {}

    def interface(self, vni: int, version: int) -> RouterInterface | None:
        """The router's interface on network `vni` for IP version `version` (ICMP errors' source)."""
        for iface in self.by_vni.get(vni, ()):
            if (":" in iface.gateway_ip) == (version == 6):
                return iface
        return None

    def decide(self, dst: bytes) -> Decision:
        hit = self.cache.get(dst)
        if hit is None:
            if len(self.cache) >= DECISION_CACHE_MAX:
                self.cache.clear()
            hit = self.cache[dst] = self._lookup(dst)
        return hit

    def _lookup(self, dst: bytes) -> Decision:
        addr = ipaddress.ip_address(dst)
        for prefix, nexthop in self.table:
            if addr.version == prefix.version and addr in prefix:
                host = self.hosts.get(nexthop if nexthop is not None else dst)
                if host is None:
                    return Decision(UNREACHABLE)
                return self._to_host(host)
        return Decision(NO_ROUTE)

    def _to_host(self, host: RouterHost) -> Decision:
        out = self.interface(host.vni, 6 if ":" in host.ip else 4)
        if out is None:
            return Decision(UNREACHABLE)  # its subnet is not (or no longer) on this router
        gw_mac, vm_mac = mac_to_bytes(out.mac), mac_to_bytes(host.mac)
        if host.vtep == self.vtep_ip:
            return Decision(LOCAL, host.vni, "", vm_mac, gw_mac)
        if self.spec.irb == "symmetric":
            return Decision(TUNNEL, host.vni, host.vtep, mac_to_bytes(host.rmac), self.rmac,
                            self.spec.l3_vni, "vxlan")
        return Decision(TUNNEL, host.vni, host.vtep, vm_mac, gw_mac, host.vni, out.encap)


def routed(frame: bytes, dst_mac: bytes, src_mac: bytes) -> bytes:
    """`frame` as a router forwards it: new MACs and the TTL / hop limit one less, in one copy; the IPv4
    header checksum is updated incrementally (RFC 1624 eqn. 3), never recomputed."""
    if frame[12:14] == b"\x08\x00":
        ttl, proto = frame[22], frame[23]
        old_word, new_word = (ttl << 8) | proto, ((ttl - 1) << 8) | proto
        hc = int.from_bytes(frame[24:26], "big")
        s = (~hc & 0xFFFF) + (~old_word & 0xFFFF) + new_word
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        checksum = (~s & 0xFFFF).to_bytes(2, "big")
        return b"".join((dst_mac, src_mac, frame[12:22], bytes((ttl - 1, proto)), checksum, frame[26:]))
    return b"".join((dst_mac, src_mac, frame[12:21], bytes((frame[21] - 1,)), frame[22:]))
