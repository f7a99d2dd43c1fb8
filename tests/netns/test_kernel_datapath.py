"""The kernel datapath in real namespaces: KernelDatapath runs for a host namespace (its `netns`
argument), the Linux kernel forwards. Ping, suppression seen on the underlay, reconcile by difference,
unsupported encapsulations, interop with the userspace VTEP."""

import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from netweave.datapath.kernel import RESYNC_S, KernelDatapath, bridge_name, port_device_name, vxlan_name
from netweave.model import DatapathState, Network, Port, Remote, Router, RouterHost, RouterInterface
from netweave.model.wire import state_to_json
from netweave.vtep.control import request

from .helpers import Capture, links, mac, wait_for
from .topo import NETWEAVE, Topology, sh

UL = ("198.18.0.1", "198.18.0.2")
VNI = 100
PREFIX = "nwt"
Make = Callable[..., KernelDatapath]


@pytest.fixture
def kernel(topo: Topology) -> Iterator[Make]:
    """KernelDatapath for a host of `topo` (h1 -> 198.18.0.1 ...); closed in a finalizer, and the
    namespaces (with every device in them) go with the topology."""
    made: list[KernelDatapath] = []

    def make(host: str, resync_s: float = RESYNC_S) -> KernelDatapath:
        dp = KernelDatapath(topo.underlay_ip(int(host[1:])), underlay_mtu=topo.mtu, netns=topo.hosts[host],
                            prefix=PREFIX, resync_s=resync_s)
        made.append(dp)
        return dp

    yield make
    for dp in made:
        dp.close()
    remove_router_namespaces(topo)


def remove_router_namespaces(topo: Topology) -> None:
    """The router namespaces the datapaths made for this topology's hosts (`<host ns>-<prefix>r<vni>`:
    they carry the run's prefix); the topology removes only the namespaces it made itself."""
    for name in [line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line.strip()]:
        if name.startswith(topo.prefix) and name not in topo.namespaces:
            sh("ip", "netns", "del", name, check=False)


def controller_net(flood: str) -> Network:
    """What the controller's view says for a network in controller mode."""
    return Network(vni=VNI, mode="static", flood=(flood,), unknown_arp="drop", unknown_unicast="drop")


def vm_port(i: int, vm_ns: str, vni: int = VNI) -> Port:
    return Port(name=f"tap{i}", vni=vni, mac=mac(i, 1), ips=(f"10.0.0.{i}", f"2001:db8:100::{i}"),
                netns=vm_ns, port_id=f"port-{i}")


def remote_of(i: int, ul: tuple[str, ...] = UL) -> Remote:
    return Remote(vni=VNI, mac=mac(i, 1), vtep=ul[i - 1], ips=(f"10.0.0.{i}", f"2001:db8:100::{i}"))


def host_state(i: int, vm_ns: str, ul: tuple[str, ...] = UL) -> DatapathState:
    other = 3 - i
    return DatapathState(networks=(controller_net(ul[other - 1]),), ports=(vm_port(i, vm_ns),),
                         remotes=(remote_of(other, ul),))


def address_vm(topo: Topology, vm_ns: str, i: int) -> None:
    topo.vm_addr(vm_ns, f"tap{i}", f"10.0.0.{i}/24", f"2001:db8:100::{i}/64")


def two_hosts(
    topo: Topology, kernel: Make, state: Callable[..., DatapathState] = host_state,
    address: Callable[[Topology, str, int], None] = address_vm, **want: Any,
) -> tuple[dict[int, KernelDatapath], dict[int, str], dict[int, DatapathState]]:
    """Two chassis on the kernel datapath, each with one VM: `state(i, vm namespace, underlay IPs)` applied
    (no errors, and `want`'s keys of the result as given), then `address` configures the VM."""
    dps, vms, states = {}, {}, {}
    ul = (topo.underlay_ip(1), topo.underlay_ip(2))
    for i in (1, 2):
        topo.add_host(f"h{i}", i)
        vms[i] = topo.ns(f"v{i}")
        dps[i] = kernel(f"h{i}")
        states[i] = state(i, vms[i], ul)
        out = dps[i].apply(states[i])
        assert out["errors"] == {} and all(out.get(k) == v for k, v in want.items()), out
        address(topo, vms[i], i)
    return dps, vms, states


def normalized(state: DatapathState) -> DatapathState:
    """Order does not matter in a state: sorted tables, sorted addresses."""
    def ips(values: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(values))
    return DatapathState(
        networks=tuple(sorted((dataclasses.replace(n, flood=ips(n.flood)) for n in state.networks),
                              key=lambda n: n.vni)),
        ports=tuple(sorted((dataclasses.replace(p, ips=ips(p.ips)) for p in state.ports),
                           key=lambda p: p.name)),
        remotes=tuple(sorted((dataclasses.replace(r, ips=ips(r.ips)) for r in state.remotes),
                             key=lambda r: (r.vni, r.mac))))


def kernel_objects(ns: str) -> tuple[set[str], set[str], set[str]]:
    """(links, configured fdb entries, neighbour entries) of the datapath in a host namespace."""
    fdb = {line.strip() for line in sh("bridge", "-n", ns, "fdb", "show").stdout.splitlines()
           if PREFIX in line and ("permanent" in line or "static" in line)}
    neigh = {line.strip() for line in sh("ip", "-n", ns, "neigh", "show", "dev", bridge_name(PREFIX, VNI))
             .stdout.splitlines()}
    return set(links(ns)), fdb, neigh


def test_ping_both_ways_and_no_arp_nd_or_unknown_unicast_in_the_tunnel(topo: Topology, kernel: Make) -> None:
    _, vms, _ = two_hosts(topo, kernel)
    cap = Capture(topo, topo.ul, "br0", "udp port 4789")
    assert topo.ping(vms[1], "10.0.0.2"), "h1 -> h2"
    assert topo.ping(vms[2], "10.0.0.1"), "h2 -> h1"
    assert topo.ping(vms[1], "2001:db8:100::2"), "IPv6 h1 -> h2"
    # unicast to a MAC nobody announced: the vxlan port has `flood off`, so it stays on the host
    sh("ip", "-n", vms[1], "neigh", "add", "10.0.0.99", "lladdr", "02:99:00:00:00:99", "dev", "tap1")
    assert not topo.ping(vms[1], "10.0.0.99", count=2, timeout_s=1)
    cap.stop()
    assert len(cap.fields("frame.number", display_filter="icmp.type == 8")) >= 6, "pings crossed the tunnel"
    assert not cap.fields("frame.number", display_filter="arp"), "ARP was answered by the bridges"
    ns_for_known = "icmpv6.type == 135 && icmpv6.nd.ns.target_address == 2001:db8:100::2"
    assert not cap.fields("frame.number", display_filter=ns_for_known), "NS was answered by the bridges"
    assert not cap.fields("frame.number", display_filter="eth.dst == 02:99:00:00:00:99"), "no unknown unicast"
    # the VMs learned each other's MAC anyway: from their host's bridge
    assert mac(2, 1) in sh("ip", "-n", vms[1], "neigh", "show", "10.0.0.2").stdout


def test_second_apply_writes_nothing_and_state_reads_back(topo: Topology, kernel: Make) -> None:
    dps, vms, states = two_hosts(topo, kernel)
    before = dps[1].state()
    assert normalized(before) == normalized(states[1]), "the kernel holds what was asked"
    out = dps[1].apply(states[1])
    assert (out["writes"], out["changes"]) == (0, 0), out
    assert dps[1].state() == before
    # the MTU the underlay leaves (1500 - 50), on both ends of the veth and the vxlan device
    for ns, dev in ((vms[1], "tap1"), (topo.hosts["h1"], port_device_name(PREFIX, "tap1")),
                    (topo.hosts["h1"], vxlan_name(PREFIX, VNI))):
        assert "mtu 1450 " in sh("ip", "-n", ns, "link", "show", dev).stdout, dev
    # an agent restart: a new datapath over the same kernel reads it and writes nothing either
    out = kernel("h1").apply(states[1])
    assert out["writes"] == 0, out
    assert topo.ping(vms[1], "10.0.0.2")


def test_removing_one_port_or_one_remote_touches_only_its_objects(topo: Topology, kernel: Make) -> None:
    hns = topo.add_host("h1", 1)
    va, vb = topo.ns("va"), topo.ns("vb")
    dp = kernel("h1")
    pa = Port(name="tapa", vni=VNI, mac=mac(1, 0xA), ips=("10.0.0.10",), netns=va)
    pb = Port(name="tapb", vni=VNI, mac=mac(1, 0xB), ips=("10.0.0.11", "2001:db8:100::11"), netns=vb)
    r1 = Remote(vni=VNI, mac=mac(2, 1), vtep=UL[1], ips=("10.0.0.20",))
    r2 = Remote(vni=VNI, mac=mac(2, 2), vtep=UL[1], ips=("10.0.0.21", "2001:db8:100::21"))
    net = controller_net(UL[1])
    assert dp.apply(DatapathState(networks=(net,), ports=(pa, pb), remotes=(r1, r2)))["errors"] == {}
    links0, fdb0, neigh0 = kernel_objects(hns)
    assert "tapb" in links(vb)

    out = dp.apply(DatapathState(networks=(net,), ports=(pa,), remotes=(r1, r2)))
    assert out["ports"] == {"removed": ["tapb"]} and out["changes"] == 1, out
    assert out["writes"] == 3, out  # the veth, and the neighbour entries of its two addresses
    links1, fdb1, neigh1 = kernel_objects(hns)
    hb = port_device_name(PREFIX, "tapb")
    assert links0 - links1 == {hb} and links1 <= links0
    assert "tapb" not in links(vb) and "tapa" in links(va)
    assert fdb1 <= fdb0 and all(hb in line for line in fdb0 - fdb1), fdb0 - fdb1
    assert {line.split()[0] for line in neigh0 - neigh1} == {"10.0.0.11", "2001:db8:100::11"}
    assert neigh1 <= neigh0

    out = dp.apply(DatapathState(networks=(net,), ports=(pa,), remotes=(r1,)))
    assert out["remotes"] == {"removed": [f"{VNI}/{r2.mac}"]}, out
    assert out["writes"] == 4, out  # vxlan fdb + bridge fdb + two neighbour entries
    links2, fdb2, neigh2 = kernel_objects(hns)
    assert links2 == links1
    assert {line.split()[0] for line in fdb1 - fdb2} == {r2.mac} and len(fdb1 - fdb2) == 2 and fdb2 <= fdb1
    assert {line.split()[0] for line in neigh1 - neigh2} == {"10.0.0.21", "2001:db8:100::21"}
    assert neigh2 <= neigh1


def test_geneve_network_is_reported_and_the_rest_works(topo: Topology, kernel: Make) -> None:
    dps, vms, states = two_hosts(topo, kernel)
    vg = topo.ns("vg")
    geneve = Network(vni=200, encap="geneve", mode="static", flood=(UL[1],))
    tapg = Port(name="tapg", vni=200, mac=mac(1, 0x20), netns=vg)
    want = dataclasses.replace(states[1], networks=(*states[1].networks, geneve),
                               ports=(*states[1].ports, tapg))
    out = dps[1].apply(want)
    assert set(out["errors"]) == {"tapg"}, out
    msg = out["errors"]["tapg"]
    assert "geneve" in msg and "use the userspace datapath" in msg, msg
    if not dps[1].capabilities()["features"]["geneve"]:
        assert msg == "geneve is not available in this host's kernel; use the userspace datapath"
    assert "tapg" not in links(vg)
    assert not any(name.endswith("200") for name in links(topo.hosts["h1"]))
    assert out["writes"] == 0, "nothing else changed"
    assert topo.ping(vms[1], "10.0.0.2") and topo.ping(vms[2], "10.0.0.1")


def test_missing_namespace_is_a_lost_port_only(topo: Topology, kernel: Make) -> None:
    """A port whose VM namespace does not exist is reported lost (the agent shows it DOWN), not as an
    error, and nothing else changes."""
    dps, vms, states = two_hosts(topo, kernel)
    lost = Port(name="taplost", vni=VNI, mac=mac(1, 0x30), netns=f"{topo.prefix}nosuchns")
    out = dps[1].apply(dataclasses.replace(states[1], ports=(*states[1].ports, lost)))
    assert not out["errors"], out
    assert set(out["lost"]) == {"taplost"} and "does not exist" in out["lost"]["taplost"], out
    assert out["writes"] == 0
    assert f"{topo.prefix}nosuchns" not in sh("ip", "netns", "list").stdout, "and it was not created"
    assert topo.ping(vms[1], "10.0.0.2")


def test_repairs_what_others_changed(topo: Topology, kernel: Make) -> None:
    """A deleted veth is seen through link events at the next apply; a deleted fdb entry at the next
    full read of the kernel (resync_s=0: every apply)."""
    dps, vms, states = two_hosts(topo, kernel)
    hns = topo.hosts["h1"]
    sh("ip", "-n", hns, "link", "del", port_device_name(PREFIX, "tap1"))
    wait_for(lambda: "tap1" not in links(vms[1]))
    out = dps[1].apply(states[1])
    assert out["ports"] == {"added": ["tap1"]}, out
    address_vm(topo, vms[1], 1)
    assert topo.ping(vms[1], "10.0.0.2")

    careful = kernel("h1", resync_s=0.0)
    sh("bridge", "-n", hns, "fdb", "del", mac(2, 1), "dev", vxlan_name(PREFIX, VNI), "dst", UL[1], "self")
    out = careful.apply(states[1])
    assert list(out["remotes"].values()) == [[f"{VNI}/{mac(2, 1)}"]] and out["writes"] == 1, out
    assert topo.ping(vms[1], "10.0.0.2")


def test_flood_and_learn_over_a_multicast_group(topo: Topology, kernel: Make) -> None:
    vms = {}
    for i in (1, 2):
        topo.add_host(f"h{i}", i)
        vms[i] = topo.ns(f"v{i}")
        net = Network(vni=VNI, mode="flood-learn", multicast_group="239.1.1.100")
        out = kernel(f"h{i}").apply(DatapathState(networks=(net,), ports=(vm_port(i, vms[i]),)))
        assert out["errors"] == {}, out
        address_vm(topo, vms[i], i)
        vx = sh("ip", "-d", "-n", topo.hosts[f"h{i}"], "link", "show", vxlan_name(PREFIX, VNI)).stdout
        assert "group 239.1.1.100 " in vx and " dev eth0 " in vx and "nolearning" not in vx, vx
    assert topo.ping(vms[1], "10.0.0.2") and topo.ping(vms[2], "10.0.0.1")
    learned = sh("bridge", "-n", topo.hosts["h1"], "fdb", "show", "dev", vxlan_name(PREFIX, VNI)).stdout
    assert f"{mac(2, 1)} dst {UL[1]} self" in learned, learned


def test_interop_with_the_userspace_vtep(topo: Topology, kernel: Make) -> None:
    topo.add_host("h1", 1)
    h2 = topo.add_host("h2", 2)
    v1, v2 = topo.ns("v1"), topo.ns("v2")
    sock = str(topo.tmp / "h2.vtep.sock")
    proc = subprocess.Popen(["ip", "netns", "exec", h2, NETWEAVE, "vtep", "--vtep-ip", UL[1],
                             "--control-socket", sock], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    topo.procs.append(proc)
    topo.wait_ready(proc)
    result = request(sock, "apply", **state_to_json(host_state(2, v2)))
    assert result["errors"] == {}, result
    out = kernel("h1").apply(host_state(1, v1))
    assert out["errors"] == {}, out
    address_vm(topo, v1, 1)
    address_vm(topo, v2, 2)
    assert topo.ping(v1, "10.0.0.2"), "kernel -> userspace"
    assert topo.ping(v2, "10.0.0.1"), "userspace -> kernel"
    assert topo.ping(v1, "2001:db8:100::2"), "IPv6 kernel -> userspace"


@pytest.fixture
def kernel6(topo6: Topology) -> Iterator[Make]:
    made: list[KernelDatapath] = []

    def make(host: str) -> KernelDatapath:
        dp = KernelDatapath(topo6.underlay_ip(int(host[1:])), netns=topo6.hosts[host], prefix=PREFIX)
        made.append(dp)
        return dp

    yield make
    for dp in made:
        dp.close()


def test_ipv6_underlay(topo6: Topology, kernel6: Make) -> None:
    dps, vms, states = two_hosts(topo6, kernel6)
    assert topo6.ping(vms[1], "10.0.0.2") and topo6.ping(vms[2], "2001:db8:100::1")
    assert "mtu 1430 " in sh("ip", "-n", vms[1], "link", "show", "tap1").stdout, "1500 - 70"
    assert normalized(dps[1].state()) == normalized(states[1])
    assert dps[1].apply(states[1])["writes"] == 0


IN_NAMESPACE = """
import json, sys
from netweave.datapath.kernel import KernelDatapath
from netweave.model.wire import state_from_json, state_to_json
dp = KernelDatapath(sys.argv[1], prefix=sys.argv[2])
out = [dp.apply(state_from_json(json.loads(sys.argv[3]))) for _ in range(2)]
print(json.dumps({"first": out[0], "second": out[1], "state": state_to_json(dp.state())}))
dp.close()
"""


def test_in_process_in_the_host_namespace(topo: Topology, kernel: Make) -> None:
    """As the agent runs it: no `netns` argument, the process itself in the host namespace."""
    vms, states = {}, {}
    for i in (1, 2):
        topo.add_host(f"h{i}", i)
        vms[i] = topo.ns(f"v{i}")
        states[i] = host_state(i, vms[i])
    r = sh("nsenter", f"--net=/run/netns/{topo.hosts['h1']}", sys.executable, "-c", IN_NAMESPACE,
           UL[0], PREFIX, json.dumps(state_to_json(states[1])), timeout=60)
    got = json.loads(r.stdout)
    assert got["first"]["errors"] == {} and got["first"]["writes"] > 0, got["first"]
    assert got["second"]["writes"] == 0, got["second"]
    assert kernel("h2").apply(states[2])["errors"] == {}
    address_vm(topo, vms[1], 1)
    address_vm(topo, vms[2], 2)
    assert topo.ping(vms[1], "10.0.0.2") and topo.ping(vms[2], "10.0.0.1")
    assert normalized(kernel("h1").state()) == normalized(states[1])


# ---------------------------------------------------------------- symmetric IRB (one namespace per router)

L3_VNI = 100001
RMAC = {1: "0e:00:00:00:01:01", 2: "0e:00:00:00:02:02"}
GW_MAC = {1: "fa:16:3e:00:00:01", 2: "fa:16:3e:00:00:02"}


def routed_net(vni: int) -> Network:
    return Network(vni=vni, mode="static", unknown_unicast="drop")


def routed_vm(i: int, vm_ns: str) -> Port:
    """VM i on network 500i: 10.i.0.5 and 2001:db8:i::5."""
    return Port(name=f"vm{i}", vni=5000 + i, mac=mac(i, 5), ips=(f"10.{i}.0.5", f"2001:db8:{i}::5"),
                netns=vm_ns, port_id=f"port-vm{i}")


def router_on(i: int, ul: tuple[str, str], *, hosts: tuple[int, ...] = (1, 2)) -> Router:
    """Router r1 as chassis i holds it: both subnets (v4 and v6), the host routes of VMs `hosts`."""
    ifaces = tuple(RouterInterface(5000 + k, cidr, gw, GW_MAC[k])
                   for k in (1, 2) for cidr, gw in ((f"10.{k}.0.0/24", f"10.{k}.0.1"),
                                                    (f"2001:db8:{k}::/64", f"2001:db8:{k}::1")))
    rhosts = tuple(RouterHost(ip, 5000 + k, mac(k, 5), ul[k - 1], RMAC[k])
                   for k in hosts for ip in (f"10.{k}.0.5", f"2001:db8:{k}::5"))
    return Router("r1", L3_VNI, RMAC[i], "symmetric", interfaces=ifaces, hosts=rhosts)


def routed_state(i: int, vm_ns: str, ul: tuple[str, str], **kw: tuple[int, ...]) -> DatapathState:
    return DatapathState(networks=(routed_net(5000 + i),), ports=(routed_vm(i, vm_ns),),
                         routers=(router_on(i, ul, **kw),))


def address_routed_vm(topo: Topology, vm_ns: str, i: int) -> None:
    topo.vm_addr(vm_ns, f"vm{i}", f"10.{i}.0.5/24", f"2001:db8:{i}::5/64")
    sh("ip", "-n", vm_ns, "route", "add", "default", "via", f"10.{i}.0.1")
    sh("ip", "-n", vm_ns, "-6", "route", "add", "default", "via", f"2001:db8:{i}::1")


def router_ns(topo: Topology, host: str) -> str:
    return f"{topo.hosts[host]}-{PREFIX}r{L3_VNI}"


def netns_names() -> set[str]:
    return {line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line.strip()}


def ping_ttl(vm_ns: str, dst: str) -> str:
    r = subprocess.run(["ip", "netns", "exec", vm_ns, "ping", "-n", "-c", "1", "-W", "2", dst],
                       capture_output=True, text=True, check=False)
    return r.stdout


def test_symmetric_irb_between_two_kernel_chassis(topo: Topology, kernel: Make) -> None:
    dps, vms, states = two_hosts(topo, kernel, routed_state, address_routed_vm,
                                 routers={"added": ["r1"]}, router_errors=None)
    ul = (topo.underlay_ip(1), topo.underlay_ip(2))
    rns = router_ns(topo, "h1")
    assert rns in netns_names()
    # what was built: the leg (gateway MAC and addresses), the L3 VNI device (router MAC), the host routes
    leg = sh("ip", "-n", rns, "addr", "show", "qr5001").stdout
    assert GW_MAC[1] in leg and "10.1.0.1/24" in leg and "2001:db8:1::1/64" in leg, leg
    vx = sh("ip", "-d", "-n", rns, "link", "show", f"vx{L3_VNI}").stdout
    assert RMAC[1] in vx and f"vxlan id {L3_VNI} local {ul[0]} " in vx and "nolearning" in vx, vx
    assert "mtu 1450 " in vx, vx
    routes = sh("ip", "-n", rns, "route", "show").stdout
    assert f"10.2.0.5 dev vx{L3_VNI} proto static scope link" in routes, routes
    assert "10.1.0.5" not in routes, "a local VM needs no host route"
    assert RMAC[2] in sh("ip", "-n", rns, "neigh", "show", "10.2.0.5").stdout
    fdb = sh("bridge", "-n", rns, "fdb", "show", "dev", f"vx{L3_VNI}").stdout
    assert re.search(rf"{RMAC[2]} dst {ul[1]} .*self permanent", fdb) and fdb.count(RMAC[2]) == 1, fdb
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        assert sh("ip", "netns", "exec", rns, "sysctl", "-n", key).stdout.strip() == "1"

    assert topo.ping(vms[1], "10.1.0.1"), "the gateway answers"
    assert topo.ping(vms[2], "10.2.0.1")
    assert topo.ping(vms[1], "10.2.0.5"), "h1 -> L3 VNI -> h2"
    assert topo.ping(vms[2], "10.1.0.5"), "h2 -> L3 VNI -> h1"
    assert topo.ping(vms[1], "2001:db8:2::5"), "IPv6 h1 -> h2"
    assert topo.ping(vms[2], "2001:db8:1::5"), "IPv6 h2 -> h1"
    # the kernel routes at both ends of symmetric IRB: two decrements (64 -> 62)
    assert "ttl=62" in ping_ttl(vms[1], "10.2.0.5")

    for i in (1, 2):
        out = dps[i].apply(states[i])
        assert (out["changes"], out["writes"]) == (0, 0), out
    # an agent restart: a new datapath reads the kernel (the router namespace too) and writes nothing
    out = kernel("h1").apply(states[1])
    assert (out["changes"], out["writes"]) == (0, 0), out

    # a host route removed: only its entries go, and that VM is unreachable from h1
    links_before = set(links(rns))
    out = dps[1].apply(routed_state(1, vms[1], ul, hosts=(1,)))
    assert out["routers"] == {"updated": ["r1"]} and out["changes"] == 1, out
    assert out["writes"] == 5, out  # two routes, two neighbour entries, one fdb entry
    assert set(links(rns)) == links_before
    assert not topo.ping(vms[1], "10.2.0.5", count=2, timeout_s=1)
    assert topo.ping(vms[1], "10.1.0.1"), "the rest of the router is untouched"
    out = dps[1].apply(states[1])
    assert out["writes"] == 5, out
    assert topo.ping(vms[1], "10.2.0.5")

    # the router removed: its namespace, legs and entries go; bridging stays
    out = dps[1].apply(dataclasses.replace(states[1], routers=()))
    assert out["routers"] == {"removed": ["r1"]}, out
    assert rns not in netns_names()
    assert not [n for n in links(topo.hosts["h1"]) if n.startswith(f"{PREFIX}q")]
    assert "10.1.0.1" not in sh("ip", "-n", topo.hosts["h1"], "neigh", "show").stdout
    assert dps[1].apply(dataclasses.replace(states[1], routers=()))["writes"] == 0


def test_kernel_symmetric_irb_interoperates_with_the_userspace_router(topo: Topology, kernel: Make) -> None:
    """h1: our userspace VTEP with its distributed router; h2: the kernel datapath's router namespace.
    The same DatapathState semantics on both: pings cross the L3 VNI both ways."""
    topo.add_host("h1", 1)
    topo.add_host("h2", 2)
    ul = (topo.underlay_ip(1), topo.underlay_ip(2))
    vms = {1: topo.ns("v1"), 2: topo.ns("v2")}
    _, sock = topo.vtep("h1", {"vtep_ip": ul[0]})
    out = request(sock, "apply", **state_to_json(routed_state(1, vms[1], ul)))
    assert out["errors"] == {} and out["routers"]["added"] == ["r1"], out
    out = kernel("h2").apply(routed_state(2, vms[2], ul))
    assert out["errors"] == {} and out["routers"] == {"added": ["r1"]}, out
    for i in (1, 2):
        address_routed_vm(topo, vms[i], i)
    assert topo.ping(vms[1], "10.1.0.1") and topo.ping(vms[2], "10.2.0.1"), "both gateways answer"
    assert topo.ping(vms[1], "10.2.0.5"), "userspace router -> L3 VNI -> kernel router namespace"
    assert topo.ping(vms[2], "10.1.0.5"), "kernel router namespace -> L3 VNI -> userspace router"
    assert topo.ping(vms[1], "2001:db8:2::5") and topo.ping(vms[2], "2001:db8:1::5"), "IPv6"
    stats = request(sock, "stats")
    assert stats["vni"]["5001"]["routed"] >= 3, stats["vni"]["5001"]
