"""Agents and the controller's views end to end: ports wired from the API, status, restarts."""

import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from netweave.vtep.control import request

from .cluster import Cluster, wait_for
from .topo import Topology, sh


@pytest.fixture
def cluster(topo: Topology) -> Iterator[Cluster]:
    c = Cluster(topo)
    try:
        yield c
    finally:
        c.api.close()


def test_ports_from_the_api_are_wired_and_reach_each_other(cluster: Cluster) -> None:
    for i in (1, 2):
        cluster.add_host(f"h{i}", i)
    net = cluster.network("web", "10.1.0.0/24")
    a = cluster.vm("va", net, "h1", "10.1.0.11")
    b = cluster.vm("vb", net, "h2", "10.1.0.12")
    assert cluster.topo.ping(a["netns"], "10.1.0.12", count=2)
    assert cluster.topo.ping(b["netns"], "10.1.0.11", count=2)


def background_ping(topo: Topology, ns: str, dst: str, count: int, interval: float = 0.05) -> Any:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, "ping", "-n", "-c", str(count), "-i", str(interval), "-W", "1", dst],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    topo.procs.append(proc)  # type: ignore[arg-type]
    return proc


def lost(proc: Any) -> int:
    out, _ = proc.communicate(timeout=60)
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    assert m, out
    return int(m.group(1)) - int(m.group(2))


def datapath_state(cluster: Cluster, host: str) -> dict[str, Any]:
    state: dict[str, Any] = request(cluster.vteps[host][1], "state")
    return state


def tap_count(topo: Topology, ns: str) -> int:
    return sh("ip", "-n", ns, "-o", "link", "show", "type", "tun").stdout.count("tap")


def two_hosts(
    cluster: Cluster, datapath: str = "userspace", **net_attrs: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    for i in (1, 2):
        cluster.add_host(f"h{i}", i, datapath)
    net = cluster.network("web", "10.1.0.0/24", **net_attrs)
    return net, cluster.vm("va", net, "h1", "10.1.0.11"), cluster.vm("vb", net, "h2", "10.1.0.12")


def kill_9_agent_under_ping(cluster: Cluster, ns: str, host: str) -> Any:
    """A 20/s ping from `ns` to 10.1.0.12 (returned, running), and meanwhile `host`'s agent killed with
    SIGKILL and started again a second later."""
    ping = background_ping(cluster.topo, ns, "10.1.0.12", count=80)
    time.sleep(0.5)
    cluster.topo.stop(cluster.agents[host], signal.SIGKILL)
    time.sleep(1)
    cluster.start_agent(host)
    return ping


def test_agent_kill_and_restart_loses_no_packets_and_adopts_the_datapath(cluster: Cluster) -> None:
    _net, a, b = two_hosts(cluster)
    before = datapath_state(cluster, "h2")
    ping = kill_9_agent_under_ping(cluster, a["netns"], "h2")
    # the restarted agent has applied its whole view: the port was re-reported (still ACTIVE) and the
    # datapath is exactly what it was, with one TAP, not two
    cluster.wait_active(b["id"])
    assert lost(ping) == 0
    assert datapath_state(cluster, "h2") == before
    assert tap_count(cluster.topo, b["netns"]) == 1
    applied = request(cluster.vteps["h2"][1], "apply", **before)
    assert applied["changes"] == 0, applied


def test_controller_down_keeps_forwarding_and_agents_resync(cluster: Cluster) -> None:
    net, a, b = two_hosts(cluster)
    ping = background_ping(cluster.topo, a["netns"], "10.1.0.12", count=60)
    assert cluster.controller is not None
    cluster.topo.stop(cluster.controller, signal.SIGKILL)
    with pytest.raises(httpx.TransportError):  # the API is down: nothing can be half-made
        cluster.api.post("/v2.0/ports", json={"port": {"network_id": net["id"]}})
    assert lost(ping) == 0  # the datapaths keep the last view
    cluster.start_controller()
    ports = cluster.api.get("/v2.0/ports").json()["ports"]
    assert sorted(p["name"] for p in ports) == ["va", "vb"]
    c = cluster.vm("vc", net, "h1", "10.1.0.13")  # agents resynced with the new controller
    assert cluster.topo.ping(c["netns"], "10.1.0.12", count=2)
    assert cluster.topo.ping(b["netns"], "10.1.0.13", count=2)


def test_port_added_and_removed_while_running(cluster: Cluster) -> None:
    net, a, _b = two_hosts(cluster)
    ping = background_ping(cluster.topo, a["netns"], "10.1.0.12", count=60)
    started = time.monotonic()
    c = cluster.vm("vc", net, "h2", "10.1.0.13")
    assert cluster.topo.ping(a["netns"], "10.1.0.13", count=1, timeout_s=1)
    assert time.monotonic() - started < 2 + 1.5, "reachable within 2 s (plus the ping itself)"
    r = cluster.api.delete(f"/v2.0/ports/{c['id']}")
    assert r.status_code == 204
    wait_for(lambda: tap_count(cluster.topo, c["netns"]) == 0, 2, what="the device to go")
    assert not cluster.topo.ping(a["netns"], "10.1.0.13", count=2, timeout_s=1)
    assert lost(ping) == 0, "the other VMs' traffic was not disturbed"


def test_controller_mode_suppresses_arp_and_drops_unknown_unicast(cluster: Cluster) -> None:
    net, a, _b = two_hosts(cluster)
    assert cluster.topo.ping(a["netns"], "10.1.0.12", count=2)
    s = request(cluster.vteps["h1"][1], "stats")
    vni = str(net["provider:segmentation_id"])
    assert s["vni"][vni]["suppressed_arp"] >= 1  # the VM's ARP was answered by its VTEP
    # a frame to a MAC nobody has: dropped at the ingress VTEP, not flooded
    sh("ip", "-n", a["netns"], "neigh", "replace", "10.1.0.99", "lladdr", "02:99:99:99:99:99",
       "dev", a["dev"], "nud", "permanent")
    assert not cluster.topo.ping(a["netns"], "10.1.0.99", count=2, timeout_s=1)
    s = request(cluster.vteps["h1"][1], "stats")
    assert s["drops"]["unknown_unicast"] >= 2


def test_openstack_style_port_without_namespace_gets_one_from_the_agent(cluster: Cluster) -> None:
    cluster.add_host("h1", 1)
    net = cluster.network("web", "10.1.0.0/24")
    port = cluster.create("ports", "port", network_id=net["id"], name="p9", **{"binding:host_id": "h1"})
    cluster.wait_active(port["id"])
    ns = f"{cluster.topo.prefix}pp9"
    cluster.topo.namespaces.append(ns)  # removed by the topology's finalizer, whatever happens
    assert tap_count(cluster.topo, ns) == 1
    cluster.api.delete(f"/v2.0/ports/{port['id']}")
    wait_for(lambda: ns not in sh("ip", "netns", "list").stdout, 5, what="the agent's namespace to go")


def test_kernel_datapath_agent_kill_and_restart_keeps_forwarding(cluster: Cluster) -> None:
    """With the kernel datapath the agent only programs Linux: killing it stops nothing, and the
    restarted agent adopts what the kernel holds (no device made twice)."""
    _net, a, b = two_hosts(cluster, "kernel")
    agents = {x["host"]: x for x in cluster.agents_list()}
    assert agents["h1"]["configurations"]["datapath"] == "kernel"
    assert agents["h1"]["configurations"]["tunnel_types"] == ["vxlan"]
    links = sh("ip", "-n", cluster.topo.hosts["h2"], "-o", "link").stdout.count("\n")
    ping = kill_9_agent_under_ping(cluster, a["netns"], "h2")
    cluster.wait_active(b["id"])
    assert lost(ping) <= 2, "the kernel kept forwarding while the agent was away"
    assert sh("ip", "-n", cluster.topo.hosts["h2"], "-o", "link").stdout.count("\n") == links
    assert sh("ip", "-n", b["netns"], "-o", "link").stdout.count(b["dev"]) == 1


def test_kernel_host_refuses_a_network_its_kernel_cannot_carry(cluster: Cluster) -> None:
    """geneve on a kernel-datapath chassis: the port is ERROR with the reason; the vxlan ports on the
    same host are unaffected."""
    _net, a, _b = two_hosts(cluster, "kernel")
    gen = cluster.network("gen", "10.7.0.0/24", **{"provider:network_type": "geneve"})
    port = cluster.create("ports", "port", network_id=gen["id"], name="g1", **{"binding:host_id": "h1"})
    def errored() -> dict[str, Any] | None:
        shown: dict[str, Any] = cluster.api.get(f"/v2.0/ports/{port['id']}").json()["port"]
        return shown if shown["status"] == "ERROR" else None

    shown = wait_for(errored, 10, what="the geneve port ERROR")
    assert shown["binding:vif_details"]["reason"] == (
        "geneve is not available in this host's kernel; use the userspace datapath")
    assert cluster.topo.ping(a["netns"], "10.1.0.12", count=2)


@pytest.mark.parametrize("datapath", ["userspace", "kernel"])
def test_vm_gone_turns_its_port_down_and_back_active(cluster: Cluster, datapath: str) -> None:
    """A VM's namespace deleted under the datapath: its port is reported lost (DOWN), nothing spins,
    the other ports keep working; when the namespace is back the port is wired again (ACTIVE)."""
    _net, a, b = two_hosts(cluster, datapath)
    sh("ip", "netns", "del", b["netns"])

    def status() -> str:
        shown: str = cluster.api.get(f"/v2.0/ports/{b['id']}").json()["port"]["status"]
        return shown

    wait_for(lambda: status() == "DOWN", 25, what="the lost port DOWN")
    if datapath == "userspace":
        pid = cluster.vteps["h2"][0].pid
        before = Path(f"/proc/{pid}/stat").read_text().split()[13:15]
        time.sleep(2)
        after = Path(f"/proc/{pid}/stat").read_text().split()[13:15]
        busy = sum(int(x) for x in after) - sum(int(x) for x in before)
        assert busy < 50, f"the VTEP daemon spins on the dead TAP ({busy} ticks in 2 s)"
    sh("ip", "netns", "add", b["netns"])
    wait_for(lambda: status() == "ACTIVE", 25, what="the port ACTIVE again")
    cluster.topo.vm_addr(b["netns"], b["dev"], "10.1.0.12/24")
    sh("ip", "-n", b["netns"], "link", "set", "lo", "up")
    assert cluster.topo.ping(a["netns"], "10.1.0.12", count=3)
