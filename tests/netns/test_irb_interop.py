"""Symmetric IRB against an implementation nobody here wrote: host h1 runs our userspace VTEP with a
distributed router; host h2 is plain Linux, set up by the test with `ip` and `bridge` the way EVPN
symmetric IRB is built by hand on Linux: a VXLAN device for the router's L3 VNI whose MAC is h2's router
MAC, a host route, a permanent neighbour entry with h1's router MAC and an fdb entry to h1's VTEP, and
kernel IP forwarding to a VM on a veth. A ping each way proves that what we put on the L3 VNI is what the
kernel routes, and that what the kernel sends back we deliver."""

import subprocess

from netweave.model import DatapathState, Network, Port, Router, RouterHost, RouterInterface
from netweave.model.wire import state_to_json
from netweave.vtep.control import request

from .topo import Topology, sh

L3_VNI = 100001
RMAC1, RMAC2 = "0e:00:00:00:01:01", "0e:00:00:00:02:02"
GW1, GW2 = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"
VM1_MAC = "02:00:00:00:01:05"


def test_userspace_symmetric_irb_interoperates_with_linux(topo: Topology) -> None:
    topo.add_host("h1", 1)
    h2 = topo.add_host("h2", 2)
    ul1, ul2 = topo.underlay_ip(1), topo.underlay_ip(2)
    vm1, vm2 = topo.ns("vm1"), topo.ns("vm2")
    _, sock = topo.vtep("h1", {"vtep_ip": ul1})
    # h1: our VTEP. web 10.1.0.0/24 is local (vm1); db 10.2.0.0/24 lives on h2 only (symmetric IRB: h1
    # needs no db network, just the router's host route for vm2 behind h2)
    state = DatapathState(
        networks=(Network(vni=5001, mode="static", unknown_unicast="drop"),),
        ports=(Port("vm1", 5001, VM1_MAC, ("10.1.0.5",), netns=vm1),),
        routers=(Router("r1", L3_VNI, RMAC1, "symmetric", interfaces=(
            RouterInterface(5001, "10.1.0.0/24", "10.1.0.1", GW1),
            RouterInterface(5002, "10.2.0.0/24", "10.2.0.1", GW2)), hosts=(
            RouterHost("10.1.0.5", 5001, VM1_MAC, ul1, RMAC1),
            RouterHost("10.2.0.6", 5002, "02:00:00:00:02:06", ul2, RMAC2))),),
    )
    out = request(sock, "apply", **state_to_json(state))
    assert out["errors"] == {} and out["routers"]["added"] == ["r1"], out
    sh("ip", "-n", vm1, "addr", "add", "10.1.0.5/24", "dev", "vm1")
    sh("ip", "-n", vm1, "route", "add", "default", "via", "10.1.0.1")
    # h2: Linux. The L3 VNI's VXLAN device (its MAC is h2's router MAC), IP forwarding, vm2 on a veth
    sh("ip", "-n", h2, "link", "add", "l3vx", "type", "vxlan", "id", str(L3_VNI), "local", ul2,
       "dstport", "4789", "nolearning")
    sh("ip", "-n", h2, "link", "set", "l3vx", "address", RMAC2, "mtu", "1450", "up")
    sh("ip", "netns", "exec", h2, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    sh("ip", "-n", h2, "link", "add", "qr", "type", "veth", "peer", "name", "eth0", "netns", vm2)
    sh("ip", "-n", h2, "addr", "add", "10.2.0.1/24", "dev", "qr")
    sh("ip", "-n", h2, "link", "set", "qr", "up")
    sh("ip", "-n", vm2, "addr", "add", "10.2.0.6/24", "dev", "eth0")
    sh("ip", "-n", vm2, "link", "set", "eth0", "address", "02:00:00:00:02:06", "mtu", "1450", "up")
    sh("ip", "-n", vm2, "route", "add", "default", "via", "10.2.0.1")
    sh("ip", "-n", h2, "route", "add", "10.1.0.5/32", "dev", "l3vx")
    sh("ip", "-n", h2, "neigh", "add", "10.1.0.5", "lladdr", RMAC1, "dev", "l3vx", "nud", "permanent")
    sh("bridge", "-n", h2, "fdb", "append", RMAC1, "dev", "l3vx", "dst", ul1, "self", "permanent")
    for ns, dev in ((vm2, "eth0"), (h2, "qr")):  # partial checksums must not reach our VTEP
        sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off")

    assert topo.ping(vm1, "10.2.0.6", count=3), "ours -> L3 VNI -> Linux routes to vm2 -> back to us"
    assert topo.ping(vm2, "10.1.0.5", count=3), "Linux -> L3 VNI -> we deliver to vm1"
    # vm1's reply is routed twice: by us at the ingress (64 -> 63), and by Linux, which, unlike our egress,
    # decrements again when it routes what arrives on the L3 VNI (-> 62)
    r = subprocess.run(["ip", "netns", "exec", vm2, "ping", "-n", "-c", "1", "-W", "2", "10.1.0.5"],
                       capture_output=True, text=True, check=False)
    assert "ttl=62" in r.stdout, r.stdout
    stats = request(sock, "stats")
    assert stats["vni"]["5001"]["routed"] >= 3, stats["vni"]["5001"]
