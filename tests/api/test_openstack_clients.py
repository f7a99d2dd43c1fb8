"""The real clients against a running controller: python-openstackclient (the `openstack` CLI) and
openstacksdk, with `auth_type: none` as ../shared/neutron-api-notes.md describes."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

OPENSTACK = shutil.which("openstack", path=str(Path(sys.executable).parent)) or shutil.which("openstack")
NETWEAVE = str(Path(sys.executable).parent / "netweave")

pytestmark = pytest.mark.skipif(OPENSTACK is None, reason="python-openstackclient is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [NETWEAVE, "controller", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"controller exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc.stderr:
            proc.stderr.close()


def osc(endpoint: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    assert OPENSTACK is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    r = subprocess.run(
        [OPENSTACK, "--os-auth-type", "none", "--os-endpoint", endpoint, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    if ok:
        assert r.returncode == 0, f"openstack {' '.join(args)}: {r.stderr}"
    return r


def osc_json(endpoint: str, *args: str) -> Any:
    return json.loads(osc(endpoint, *args, "-f", "json").stdout)


def test_openstack_cli_networks(endpoint: str) -> None:
    net = osc_json(endpoint, "network", "create", "--tag", "blue", "demo")
    assert net["tags"] == ["blue"]
    assert net["name"] == "demo" and net["mtu"] == 1450 and net["provider:network_type"] == "vxlan"
    vlan = osc_json(
        endpoint,
        "network",
        "create",
        "--provider-network-type",
        "vlan",
        "--provider-physical-network",
        "physnet1",
        "--provider-segment",
        "100",
        "v100",
    )
    assert vlan["provider:segmentation_id"] == 100 and vlan["provider:physical_network"] == "physnet1"
    names = {n["Name"] for n in osc_json(endpoint, "network", "list")}
    assert names == {"demo", "v100"}
    assert [n["Name"] for n in osc_json(endpoint, "network", "list", "--tags", "blue")] == ["demo"]
    shown = osc_json(
        endpoint, "network", "show", "demo"
    )  # lookup by name: GET /networks/demo -> 404 -> ?name=
    assert shown["id"] == net["id"]
    osc(endpoint, "network", "set", "--name", "demo2", "demo")
    assert osc_json(endpoint, "network", "show", net["id"])["name"] == "demo2"
    dup = osc(
        endpoint,
        "network",
        "create",
        "--provider-network-type",
        "vlan",
        "--provider-physical-network",
        "physnet1",
        "--provider-segment",
        "100",
        "again",
        ok=False,
    )
    assert dup.returncode != 0 and "in use" in dup.stderr
    osc(endpoint, "network", "delete", "demo2", "v100")
    assert osc_json(endpoint, "network", "list") == []


def test_openstack_cli_subnets_ports_and_network_in_use(endpoint: str) -> None:
    net = osc_json(endpoint, "network", "create", "tenant-net")
    sub = osc_json(
        endpoint,
        "subnet",
        "create",
        "--network",
        "tenant-net",
        "--subnet-range",
        "192.0.2.0/24",
        "--dns-nameserver",
        "192.0.2.53",
        "s1",
    )
    assert sub["cidr"] == "192.0.2.0/24" and sub["gateway_ip"] == "192.0.2.1"
    assert sub["network_id"] == net["id"]
    p = osc_json(
        endpoint, "port", "create", "--network", "tenant-net", "--fixed-ip", "ip-address=192.0.2.10", "p1"
    )
    assert p["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "192.0.2.10"}]
    assert p["status"] == "DOWN" and p["mac_address"].startswith("fa:16:3e")
    listed = osc_json(endpoint, "port", "list")
    assert [x["Name"] for x in listed] == ["p1"]
    busy = osc(endpoint, "network", "delete", "tenant-net", ok=False)
    assert busy.returncode != 0 and "ports still in use" in busy.stderr
    osc(endpoint, "port", "delete", "p1")
    osc(endpoint, "subnet", "delete", "s1")
    osc(endpoint, "network", "delete", "tenant-net")


def test_openstack_cli_security_groups(endpoint: str) -> None:
    sg = osc_json(endpoint, "security", "group", "create", "sg1")
    assert sg["name"] == "sg1" and len(sg["rules"]) == 2
    rule = osc_json(
        endpoint,
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "22",
        "--remote-ip",
        "198.51.100.0/24",
        "sg1",
    )
    assert (rule["port_range_min"], rule["port_range_max"], rule["protocol"]) == (22, 22, "tcp")
    dup = osc(
        endpoint,
        "security",
        "group",
        "rule",
        "create",
        "--protocol",
        "tcp",
        "--dst-port",
        "22",
        "--remote-ip",
        "198.51.100.0/24",
        "sg1",
        ok=False,
    )
    assert dup.returncode != 0 and "already exists" in dup.stderr
    rules = osc_json(endpoint, "security", "group", "rule", "list", "sg1")
    assert len(rules) == 3
    names = {g["Name"] for g in osc_json(endpoint, "security", "group", "list")}
    assert names == {"default", "sg1"}
    osc(endpoint, "security", "group", "rule", "delete", rule["id"])
    osc(endpoint, "security", "group", "delete", "sg1")


def test_openstack_cli_qos(endpoint: str) -> None:
    q = osc_json(endpoint, "network", "qos", "policy", "create", "q1")
    assert q["name"] == "q1"
    rule = osc_json(
        endpoint,
        "network",
        "qos",
        "rule",
        "create",
        "--type",
        "bandwidth-limit",
        "--max-kbps",
        "1000",
        "--max-burst-kbits",
        "100",
        "q1",
    )
    assert rule["max_kbps"] == 1000 and rule["max_burst_kbps"] == 100
    osc_json(
        endpoint, "network", "qos", "rule", "create", "--type", "dscp-marking", "--dscp-mark", "26", "q1"
    )
    shown = osc_json(endpoint, "network", "qos", "policy", "show", "q1")
    assert sorted(r["type"] for r in shown["rules"]) == ["bandwidth_limit", "dscp_marking"]
    net = osc_json(endpoint, "network", "create", "--qos-policy", "q1", "qnet")
    assert net["qos_policy_id"] == q["id"]
    busy = osc(endpoint, "network", "qos", "policy", "delete", "q1", ok=False)
    assert busy.returncode != 0
    osc(endpoint, "network", "delete", "qnet")
    osc(endpoint, "network", "qos", "policy", "delete", "q1")


def test_openstack_cli_routers_and_floating_ips(endpoint: str) -> None:
    osc_json(endpoint, "network", "create", "--external", "public")
    osc_json(
        endpoint, "subnet", "create", "--network", "public", "--subnet-range", "203.0.113.0/24", "pub-sub"
    )
    osc_json(endpoint, "network", "create", "inside")
    sub = osc_json(
        endpoint, "subnet", "create", "--network", "inside", "--subnet-range", "10.20.0.0/24", "in-sub"
    )
    r = osc_json(endpoint, "router", "create", "r1")
    osc(endpoint, "router", "add", "subnet", "r1", "in-sub")
    osc(endpoint, "router", "set", "--external-gateway", "public", "r1")
    shown = osc_json(endpoint, "router", "show", "r1")
    assert shown["id"] == r["id"] and shown["external_gateway_info"]["network_id"]
    assert any(i["subnet_id"] == sub["id"] for i in shown["interfaces_info"])
    vm = osc_json(endpoint, "port", "create", "--network", "inside", "vm")
    fip = osc_json(endpoint, "floating", "ip", "create", "public")
    osc(endpoint, "floating", "ip", "set", "--port", "vm", fip["id"])
    fip = osc_json(endpoint, "floating", "ip", "show", fip["id"])
    assert fip["port_id"] == vm["id"] and fip["router_id"] == r["id"]
    busy = osc(endpoint, "router", "delete", "r1", ok=False)
    assert busy.returncode != 0
    osc(endpoint, "floating", "ip", "delete", fip["id"])
    osc(endpoint, "port", "delete", "vm")
    osc(endpoint, "router", "remove", "subnet", "r1", "in-sub")
    osc(endpoint, "router", "unset", "--external-gateway", "r1")
    osc(endpoint, "router", "delete", "r1")


def test_openstacksdk_networks(endpoint: str) -> None:
    import openstack

    conn = openstack.connect(auth_type="none", network_endpoint_override=endpoint)
    net = conn.network.create_network(name="sdk", provider_network_type="geneve")
    assert net.mtu == 1450 and net.provider_network_type == "geneve"
    assert [n.name for n in conn.network.networks()] == ["sdk"]
    assert conn.network.find_network("sdk").id == net.id
    conn.network.delete_network(net)
    assert list(conn.network.networks()) == []
