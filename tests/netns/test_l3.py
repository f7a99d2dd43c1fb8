"""Distributed routing in real labs (`netweave lab` with `routers:`): two tenants with identical CIDRs,
one router each (symmetric and asymmetric IRB), VMs on three hosts; the anycast gateway, one routed hop,
ICMP errors, the L3 VNI on the wire, and an interface removed live.

Each test's lab has its own name and API port and is removed in a finalizer (the `lab` fixture of
test_lab.py), also on failure.
"""

import re
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import Lab
from .test_lab import expected_pairs, lab_cli, matrix_json

pytestmark = pytest.mark.netns

ROUTED: dict[str, Any] = {
    "hosts": [{"name": "h1"}, {"name": "h2"}, {"name": "h3"}],
    "tenants": [
        {
            "name": "red",
            "networks": [
                {"name": "red-web", "subnets": [{"cidr": "10.1.0.0/24"}, {"cidr": "fd00:1::/64"}]},
                {"name": "red-db", "type": "geneve", "subnets": [{"cidr": "10.2.0.0/24"}]},
            ],
            "routers": [{"name": "r1", "networks": ["red-web", "red-db"], "irb": "symmetric"}],
            "vms": [
                {"name": "r1", "host": "h1", "network": "red-web", "ip": "10.1.0.11"},
                {"name": "r2", "host": "h2", "network": "red-web"},  # IPAM: 10.1.0.x and fd00:1::x
                {"name": "r3", "host": "h3", "network": "red-db", "ip": "10.2.0.13"},
            ],
        },
        {
            "name": "blue",
            "networks": [
                {"name": "blue-web", "subnets": [{"cidr": "10.1.0.0/24"}]},
                {"name": "blue-db", "subnets": [{"cidr": "10.2.0.0/24"}]},
            ],
            "routers": [{"name": "b1", "networks": ["blue-web", "blue-db"], "irb": "asymmetric"}],
            "vms": [
                {"name": "b1", "host": "h2", "network": "blue-web", "ip": "10.1.0.21"},
                {"name": "b2", "host": "h3", "network": "blue-db", "ip": "10.2.0.13"},
                {"name": "b3", "host": "h1", "network": "blue-db", "ip": "10.2.0.23"},
            ],
        },
    ],
}


def in_ns(ns: str, *cmd: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout,
                          check=False)


def vm_ipv4(name: str, vm: str) -> str:
    out = in_ns(f"{name}-{vm}", "ip", "-4", "-o", "addr", "show", "scope", "global").stdout
    return out.split()[3].split("/")[0]


def api_url(path: Path) -> str:
    return f"http://{yaml.safe_load(path.read_text())['api']['listen']}"


class Tcpdump:
    """tcpdump on the lab's underlay bridge (every tunnelled packet crosses it), decoded by tshark."""

    def __init__(self, name: str, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", f"{name}-ul", "tcpdump", "-U", "-n", "-i", "br0", "-w", str(path),
             "udp port 4789 or udp port 6081"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert self.proc.stderr is not None
        self.proc.stderr.readline()  # "listening on br0 ..." once the socket is open

    def stop(self) -> list[list[str]]:
        time.sleep(0.5)
        self.proc.terminate()
        self.proc.wait(10)
        r = subprocess.run(
            ["tshark", "-n", "-r", str(self.path), "-T", "fields", "-E", "separator=|", "-E", "occurrence=l",
             "-e", "vxlan.vni", "-e", "geneve.vni", "-e", "eth.src", "-e", "eth.dst", "-e", "ip.dst",
             "-Y", "icmp.type == 8"],
            capture_output=True, text=True, timeout=60, check=True)
        return [line.split("|") for line in r.stdout.splitlines() if line.strip()]


@pytest.mark.timeout(180)
def test_two_tenants_routed_isolated_one_hop_and_irb_on_the_wire(
        lab: Lab, tmp_path: Path) -> None:
    name, path = lab(ROUTED)
    r = lab_cli("up", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "30 pairs: 12 reachable and 18 isolated as expected, 0 mismatches" in r.stdout, r.stdout
    result = matrix_json(path)
    reached = {(p["src"], p["dst"]) for p in result["pairs"] if p["measured"]}
    assert result["mismatches"] == 0 and reached == expected_pairs(ROUTED)

    # the anycast gateway answers on every host; traceroute shows exactly one routed hop (both IRB modes)
    for vm, gw in (("r1", "10.1.0.1"), ("r2", "10.1.0.1"), ("r3", "10.2.0.1"), ("b2", "10.2.0.1")):
        assert in_ns(f"{name}-{vm}", "ping", "-c", "1", "-W", "2", gw).returncode == 0, (vm, gw)
    for vm, dst, gw in (("r1", "10.2.0.13", "10.1.0.1"), ("b1", "10.2.0.13", "10.1.0.1"),
                        ("r3", vm_ipv4(name, "r2"), "10.2.0.1")):
        tr = in_ns(f"{name}-{vm}", "traceroute", "-n", "-w", "2", "-q", "1", "-m", "5", dst)
        hops = [line.split()[1] for line in tr.stdout.splitlines()[1:]]
        assert hops == [gw, dst], tr.stdout
    # IPv6 on red-web through the same router: the gateway's neighbour advertisement and echo
    v6 = in_ns(f"{name}-r2", "ip", "-6", "-o", "addr", "show", "scope", "global")
    assert "fd00:1::" in v6.stdout, v6.stdout
    assert in_ns(f"{name}-r2", "ping", "-6", "-c", "1", "-W", "2", "fd00:1::1").returncode == 0
    assert "default via fd00:1::1" in in_ns(f"{name}-r2", "ip", "-6", "route").stdout

    # ICMP errors from the gateway: time exceeded (TTL 1) and destination unreachable (no such VM)
    ttl = in_ns(f"{name}-r1", "ping", "-n", "-c", "1", "-W", "2", "-t", "1", "10.2.0.13")
    assert "From 10.1.0.1" in ttl.stdout and "Time to live exceeded" in ttl.stdout, ttl.stdout
    gone = in_ns(f"{name}-r1", "ping", "-n", "-c", "1", "-W", "2", "10.2.0.99")
    assert "From 10.1.0.1" in gone.stdout and "Destination Host Unreachable" in gone.stdout, gone.stdout
    nowhere = in_ns(f"{name}-r1", "ping", "-n", "-c", "1", "-W", "2", "192.0.2.1")
    assert "Destination Net Unreachable" in nowhere.stdout, nowhere.stdout

    # on the wire: red (symmetric) routes on its L3 VNI with router MACs, bridges on the L2 VNI; blue
    # (asymmetric) routes on the destination subnet's L2 VNI
    with httpx.Client(base_url=api_url(path)) as api:
        routers = {x["name"]: x for x in api.get("/v2.0/routers").json()["routers"]}
        nets = {n["name"]: n for n in api.get("/v2.0/networks").json()["networks"]}
    l3_vni = routers["r1"]["netweave:l3_vni"]
    vni = {n: nets[n]["provider:segmentation_id"] for n in nets}
    cap = Tcpdump(name, tmp_path / "irb.pcap")
    r2 = vm_ipv4(name, "r2")
    for vm, dst in (("r1", "10.2.0.13"), ("r1", r2), ("b1", "10.2.0.13")):
        assert in_ns(f"{name}-{vm}", "ping", "-c", "2", "-i", "0.2", "-W", "2", dst).returncode == 0
    rows = cap.stop()
    seen = {(row[0] or row[1], row[4]) for row in rows}
    assert (str(l3_vni), "10.2.0.13") in seen, rows  # red routed: L3 VNI
    assert (str(vni["red-web"]), r2) in seen, rows  # red bridged: L2 VNI
    assert (str(vni["blue-db"]), "10.2.0.13") in seen, rows  # blue routed, asymmetric: destination's L2 VNI
    red_routed = [row for row in rows if row[0] == str(l3_vni)]
    assert all(re.fullmatch(r"0e(:[0-9a-f]{2}){5}", m) for row in red_routed for m in row[2:4]), red_routed
    assert not any(row[0] == str(vni["red-db"]) or row[1] == str(vni["red-db"]) for row in rows), (
        "symmetric IRB: routed red traffic never uses the destination's L2 VNI")


@pytest.mark.timeout(120)
def test_router_interface_removed_cuts_the_subnet_within_2_s(lab: Lab) -> None:
    doc = {"hosts": ROUTED["hosts"], "tenants": [ROUTED["tenants"][0]]}
    name, path = lab(doc)
    r = lab_cli("up", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    with httpx.Client(base_url=api_url(path), headers={"X-Project-Id": "red"}) as api:
        router = next(x for x in api.get("/v2.0/routers").json()["routers"] if x["name"] == "r1")
        db = next(n for n in api.get("/v2.0/networks").json()["networks"] if n["name"] == "red-db")
        subnet = db["subnets"][0]
        ping = subprocess.Popen(
            ["ip", "netns", "exec", f"{name}-r1", "ping", "-n", "-D", "-i", "0.05", "-W", "1", "-c", "120",
             "10.2.0.13"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            time.sleep(1.5)
            removed_at = time.time()
            resp = api.put(f"/v2.0/routers/{router['id']}/remove_router_interface",
                           json={"subnet_id": subnet})
            assert resp.status_code == 200, resp.text
            out, _ = ping.communicate(timeout=30)
        finally:
            ping.kill()
    stamps = [float(m) for m in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from", out, re.M)]
    assert stamps and stamps[0] < removed_at, out[-500:]
    last = max(stamps)
    assert last - removed_at < 2.0, f"replies went on {last - removed_at:.2f} s after the removal"
    assert len(stamps) < 110, "most pings after the removal went unanswered"
    # bridging on red-web is untouched
    assert in_ns(f"{name}-r1", "ping", "-c", "1", "-W", "2", vm_ipv4(name, "r2")).returncode == 0


DHCP_LAB: dict[str, Any] = {
    "hosts": [{"name": "h1"}, {"name": "h2"}],
    "tenants": [{
        "name": "red",
        "networks": [
            {"name": "web", "dhcp": True,
             "subnets": [{"cidr": "10.5.0.0/24"}, {"cidr": "fd00:5::/64", "ipv6_mode": "slaac"}]},
            {"name": "db", "dhcp": True,
             "subnets": [{"cidr": "10.6.0.0/24"}, {"cidr": "fd00:6::/64", "ipv6_mode": "dhcpv6-stateful"}]},
        ],
        "routers": [{"name": "r1", "networks": ["web", "db"]}],
        "vms": [{"name": "w1", "host": "h1", "network": "web"},
                {"name": "w2", "host": "h2", "network": "web"},
                {"name": "d1", "host": "h2", "network": "db"}],
    }],
}


def addr_of(ns: str) -> set[str]:
    out = in_ns(ns, "ip", "-o", "addr", "show", "scope", "global").stdout
    return {line.split()[3] for line in out.splitlines()}


@pytest.mark.timeout(180)
def test_dhcp_slaac_and_dhcpv6_give_the_ports_addresses_gateway_and_mtu(lab: Lab) -> None:
    """dhclient (-4, and -6 for the stateful subnet) and the kernel's SLAAC in the VMs, answered by the
    VTEPs' native DHCP and router advertisements: every VM ends up with exactly its port's fixed IPs, a
    default route via its router (IPv6: the router advertisement's), and the network's MTU."""
    name, path = lab(DHCP_LAB)
    r = lab_cli("up", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "6 pairs: 6 reachable and 0 isolated as expected, 0 mismatches" in r.stdout, r.stdout
    with httpx.Client(base_url=api_url(path), headers={"X-Project-Id": "red"}) as api:
        ports = {p["name"]: p for p in api.get("/v2.0/ports").json()["ports"] if p["name"]}
        subnets = {s["cidr"]: s for s in api.get("/v2.0/subnets").json()["subnets"]}
        for vm in ("w1", "w2", "d1"):
            ns = f"{name}-{vm}"
            fixed = {f["ip_address"] for f in ports[vm]["fixed_ips"]}
            assert len(fixed) == 2
            got = {a.split("/")[0] for a in addr_of(ns)}
            assert got == fixed, (vm, got, fixed)
            gw4 = "10.5.0.1" if vm != "d1" else "10.6.0.1"
            assert f"default via {gw4} " in in_ns(ns, "ip", "-4", "route").stdout
            assert re.search(r"default via fe80::\S+ .*proto ra", in_ns(ns, "ip", "-6", "route").stdout)
            assert "mtu 1450 " in in_ns(ns, "ip", "link", "show").stdout
        assert any(a.endswith("/128") for a in addr_of(f"{name}-d1")), "DHCPv6 gives a /128, the RA the /64"
        # a lease with DNS and host routes, and an MTU to correct: w1's client starts again from scratch
        web4 = subnets["10.5.0.0/24"]["id"]
        w2 = next(f["ip_address"] for f in ports["w2"]["fixed_ips"] if "." in f["ip_address"])
        resp = api.put(f"/v2.0/subnets/{web4}", json={"subnet": {
            "dns_nameservers": ["192.0.2.53"],
            "host_routes": [{"destination": "172.16.0.0/16", "nexthop": w2}]}})
        assert resp.status_code == 200, resp.text
    rundir = Path(f"/run/netweave/lab/{name}")
    pid = int((rundir / "dhclient4-w1.pid").read_text())
    subprocess.run(["kill", str(pid)], check=True)
    ns = f"{name}-w1"
    tap = "tap" + ports["w1"]["id"][:11]
    for cmd in (("ip", "-4", "addr", "flush", "dev", tap), ("ip", "link", "set", tap, "mtu", "1500")):
        assert in_ns(ns, *cmd).returncode == 0
    again = lab_cli("test", str(path))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "mtu 1450 " in in_ns(ns, "ip", "link", "show").stdout, "option 26 sets the MTU"
    routes = in_ns(ns, "ip", "-4", "route").stdout
    assert f"172.16.0.0/16 via {w2} " in routes and "default via 10.5.0.1 " in routes, routes
    assert "nameserver 192.0.2.53" in (rundir / "dhclient4-w1.resolv").read_text()


def kernel_and_userspace_lab(irb: str) -> dict[str, Any]:
    return {
        "hosts": [{"name": "h1", "datapath": "kernel"}, {"name": "h2"}],
        "tenants": [{
            "name": "t",
            "networks": [{"name": "a", "subnets": [{"cidr": "10.5.0.0/24"}]},
                         {"name": "b", "subnets": [{"cidr": "10.6.0.0/24"}]}],
            "routers": [{"name": "r", "networks": ["a", "b"], "irb": irb}],
            "vms": [{"name": "k1", "host": "h1", "network": "a"},
                    {"name": "u1", "host": "h2", "network": "b"}],
        }],
    }


@pytest.mark.timeout(240)
def test_kernel_chassis_reports_that_it_cannot_route(lab: Lab) -> None:
    """The kernel datapath routes with symmetric IRB (a namespace per router, docs/routing.md): with a
    kernel host and a userspace host on one symmetric router the tenant is reachable end to end. An
    asymmetric router it cannot do: the kernel host's port goes to ERROR with the reason, the userspace
    host's port is unaffected."""
    doc = kernel_and_userspace_lab("symmetric")
    name, path = lab(doc)
    r = lab_cli("up", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 pairs: 2 reachable and 0 isolated as expected, 0 mismatches" in r.stdout, r.stdout
    result = matrix_json(path)
    assert result["mismatches"] == 0
    assert {(p["src"], p["dst"]) for p in result["pairs"] if p["measured"]} == expected_pairs(doc)
    assert in_ns(f"{name}-k1", "ping", "-c", "1", "-W", "2", "10.5.0.1").returncode == 0, "kernel gateway"
    with httpx.Client(base_url=api_url(path)) as api:
        status = {p["name"]: p["status"] for p in api.get("/v2.0/ports").json()["ports"] if p["name"]}
        agents = {a["host"]: a for a in api.get("/v2.0/agents").json()["agents"]}
    assert status == {"k1": "ACTIVE", "u1": "ACTIVE"}
    assert agents["h1"]["configurations"]["capabilities"]["routing"] == ["symmetric"]
    down = lab_cli("down", str(path))
    assert down.returncode == 0, down.stdout + down.stderr
    leftover = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"{name}-" not in leftover, "lab down removes the router namespaces too"

    _name, path = lab(kernel_and_userspace_lab("asymmetric"))
    r = lab_cli("up", str(path))
    assert r.returncode == 1
    assert "ports in ERROR: k1: network " in r.stderr and "asymmetric IRB" in r.stderr, r.stderr
    with httpx.Client(base_url=api_url(path)) as api:
        status = {p["name"]: p["status"] for p in api.get("/v2.0/ports").json()["ports"] if p["name"]}
    assert status == {"k1": "ERROR", "u1": "ACTIVE"}
