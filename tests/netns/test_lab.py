"""`netweave lab` in real namespaces: down after kill -9, the default lab, every encapsulation and mode.

Every test uses its own lab name ("t" + 6 hex digits, so its namespaces are `t......-*`) and a free TCP
port, and removes its lab in a finalizer with `netweave.lab.state.down`, also on failure. The lab runs as
a subprocess (`python -m netweave.lab.cli`), as a user runs it: its daemons outlive `lab up`.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from netweave.lab import state as lab_state
from netweave.lab.spec import default_lab

from .conftest import Lab
from .topo import VENV_BIN

pytestmark = pytest.mark.netns


def lab_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netweave.lab.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def lab_namespaces(name: str) -> list[str]:
    return (
        sorted(n for n in os.listdir("/run/netns") if n.startswith(f"{name}-"))
        if os.path.isdir("/run/netns")
        else []
    )


def tagged_processes(name: str) -> list[int]:
    tag = f"{lab_state.run_dir(name)}/"
    return [pid for pid in (int(d) for d in os.listdir("/proc") if d.isdigit()) if lab_state.owned(pid, tag)]


def root_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


PLUMBING = textwrap.dedent(
    """
    import subprocess, sys, time
    from netweave.lab import build, spec
    from netweave.lab.state import State
    lab = spec.load(sys.argv[1])
    build.preflight(lab)
    state = State(name=lab.name, api_url=lab.api.url, spec=lab.model_dump(mode="json"))
    state.save()
    builder = build.Builder(lab, state)
    builder.plumbing()
    state.add_netns(lab.netns("v1"))
    stray = subprocess.Popen(["ip", "netns", "exec", lab.netns("h1"), "sleep", "300"], start_new_session=True)
    print("built", stray.pid, flush=True)
    time.sleep(300)
    """
)


def test_down_after_kill_9_leaves_nothing_and_runs_twice(lab: Lab, tmp_path: Path) -> None:
    """Underlay, hosts, controller and VTEPs (no agent needed), then kill -9 of the builder and of every
    process it started: `down` finds everything through state.json, the tags and the prefix."""
    name, path = lab({"hosts": [{"name": "h1"}, {"name": "h2"}]})
    links_before = root_links()
    script = tmp_path / "plumbing.py"
    script.write_text(PLUMBING)
    builder = subprocess.Popen(
        [sys.executable, str(script), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert builder.stdout is not None
        line = builder.stdout.readline()
        assert line.startswith("built"), builder.stderr.read() if builder.stderr else line
        stray = int(line.split()[1])
        st = lab_state.State.load(name)
        assert st is not None
        assert set(st.namespaces) == {f"{name}-ul", f"{name}-h1", f"{name}-h2", f"{name}-v1"}
        assert lab_namespaces(name) == sorted(st.namespaces)
        assert sorted(p.role for p in st.procs) == ["controller", "vtep", "vtep"]
        pids = [p.pid for p in st.procs]
        assert all(lab_state.alive(pid) for pid in [*pids, stray])
        # the underlay works: h1 reaches h2's VTEP address
        ping = subprocess.run(
            ["ip", "netns", "exec", f"{name}-h1", "ping", "-c", "1", "-W", "2", "198.18.0.2"],
            capture_output=True,
            check=False,
        )
        assert ping.returncode == 0
        assert root_links() == links_before, "nothing may be created in the root namespace"
        for pid in [builder.pid, *pids]:
            os.kill(pid, signal.SIGKILL)
        builder.wait(10)
    finally:
        if builder.poll() is None:
            builder.kill()
            builder.wait(10)
        for stream in (builder.stdout, builder.stderr):
            if stream is not None:
                stream.close()

    r = lab_cli("down", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"lab {name}: stopped"), r.stdout
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(lab_state.alive(p) for p in [*pids, stray]):
        time.sleep(0.05)
    assert not any(lab_state.alive(p) for p in [*pids, stray])
    assert lab_namespaces(name) == []
    assert not lab_state.run_dir(name).exists()
    assert tagged_processes(name) == []
    assert root_links() == links_before

    again = lab_cli("down", str(path))
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == f"lab {name}: nothing to remove"


def test_down_without_state_sweeps_the_prefix(lab: Lab) -> None:
    name, path = lab({"hosts": [{"name": "h1"}]})
    subprocess.run(["ip", "netns", "add", f"{name}-x"], check=True)
    r = lab_cli("down", str(path))
    assert r.returncode == 0, r.stderr
    assert lab_namespaces(name) == []


def test_up_refuses_a_busy_api_port_before_building_anything(lab: Lab) -> None:
    name, path = lab({"hosts": [{"name": "h1"}]})
    listen = yaml.safe_load(path.read_text())["api"]["listen"]
    host, port = listen.rsplit(":", 1)
    with socket.socket() as busy:
        busy.bind((host, int(port)))
        busy.listen()
        r = lab_cli("up", str(path))
    assert r.returncode == 1
    assert r.stderr.strip() == f"netweave: error: api.listen {listen}: address already in use"
    assert lab_namespaces(name) == []


def test_bad_file_is_one_line_naming_the_place(lab: Lab, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nhosts: [{name: h1}]\ntenants: [{name: t, vms: [{name: v, host: h9, network: n}]}]\n"
    )
    r = lab_cli("up", str(bad))
    assert r.returncode == 1
    assert r.stderr.strip() == f"netweave: error: {bad}: tenants[0].vms[0].host: no host named 'h9'"


def matrix_json(path: Path) -> dict[str, Any]:
    r = lab_cli("test", str(path), "--json")
    assert r.returncode in (0, 1), r.stderr
    result: dict[str, Any] = json.loads(r.stdout)
    return result


def expected_pairs(doc: dict[str, Any]) -> set[tuple[str, str]]:
    """Pairs on one network, or on two networks joined by one of the tenant's routers."""
    out = set()
    for t in doc["tenants"]:
        joined = {n: r["name"] for r in t.get("routers", []) for n in r["networks"]}
        vms = {vm["name"]: vm["network"] for vm in t["vms"]}
        for a, na in vms.items():
            for b, nb in vms.items():
                if a != b and (na == nb or (na in joined and joined.get(nb) == joined[na])):
                    out.add((a, b))
    return out


def assert_as_expected(result: dict[str, Any], doc: dict[str, Any]) -> None:
    bad = [p for p in result["pairs"] if p["expected"] != p["measured"]]
    assert result["mismatches"] == 0 == len(bad), bad
    reached = {(p["src"], p["dst"]) for p in result["pairs"] if p["measured"]}
    assert reached == expected_pairs(doc)


@pytest.mark.timeout(120)
def test_default_lab_up_test_status_down(lab: Lab) -> None:
    doc = default_lab().model_dump(mode="json", exclude_none=True)
    name, path = lab(doc)
    r = lab_cli("up", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "30 pairs: 4 reachable and 26 isolated as expected, 0 mismatches" in r.stdout
    assert lab_cli("up", str(path)).stderr.strip() == (
        f"netweave: error: lab {name} is already up (run `netweave lab down {path}`)"
    )
    result = matrix_json(path)
    assert result["lab"] == name and len(result["pairs"]) == 30
    assert_as_expected(result, doc)
    status = lab_cli("status", str(path))
    assert status.returncode == 0, status.stdout
    # the real openstack CLI against the lab's controller: a network, a subnet and two ports bound to
    # lab hosts; the lab's test finds them and they reach each other and nobody else
    api = yaml.safe_load(path.read_text())["api"]["listen"]
    osc = [str(VENV_BIN / "openstack"), "--os-auth-type", "none", "--os-endpoint", f"http://{api}"]
    for args in (
        ["network", "create", "n9"],
        ["subnet", "create", "--network", "n9", "--subnet-range", "10.9.0.0/24", "s9"],
        ["port", "create", "--network", "n9", "--host", "h1", "p9"],
        ["port", "create", "--network", "n9", "--host", "h3", "p10"],
    ):
        made = subprocess.run([*osc, *args], capture_output=True, text=True, timeout=60, check=False)
        assert made.returncode == 0, made.stderr
    result = matrix_json(path)
    assert len(result["pairs"]) == 56
    reached = {(p["src"], p["dst"]) for p in result["pairs"] if p["measured"]}
    assert {("p9", "p10"), ("p10", "p9")} <= reached and result["mismatches"] == 0
    assert not {p for p in reached if ("p9" in p or "p10" in p) and not set(p) <= {"p9", "p10"}}
    assert {f"{name}-p9", f"{name}-p10"} <= set(lab_namespaces(name))

    r = lab_cli("down", str(path))
    assert r.returncode == 0, r.stderr
    assert lab_namespaces(name) == [] and tagged_processes(name) == []
    assert not lab_state.run_dir(name).exists()


def every_encapsulation_and_mode(ip_version: int) -> dict[str, Any]:
    """Two tenants with the same address plan; each encapsulation runs in one tenant under the
    controller and in the other with flood-and-learn (ingress or multicast replication)."""
    group = "239.1.1.{}" if ip_version == 4 else "ff05::1:{}"
    modes: dict[str, list[tuple[str, dict[str, Any]]]] = {
        "a": [
            ("vxlan", {"control_plane": "controller"}),
            ("geneve", {"control_plane": "flood-learn", "replication": "ingress"}),
            (
                "gre",
                {
                    "control_plane": "flood-learn",
                    "replication": "multicast",
                    "multicast_group": group.format(1),
                },
            ),
            ("nvgre", {"control_plane": "controller"}),
        ],
        "b": [
            (
                "vxlan",
                {
                    "control_plane": "flood-learn",
                    "replication": "multicast",
                    "multicast_group": group.format(2),
                },
            ),
            ("geneve", {"control_plane": "controller"}),
            ("gre", {"control_plane": "flood-learn", "replication": "ingress"}),
            (
                "nvgre",
                {
                    "control_plane": "flood-learn",
                    "replication": "multicast",
                    "multicast_group": group.format(3),
                },
            ),
        ],
    }
    tenants = []
    for t, nets in modes.items():
        networks, vms = [], []
        for i, (ntype, mode) in enumerate(nets, 1):
            short = ntype[:2]
            networks.append(
                {"name": f"{t}-{short}", "type": ntype, **mode, "subnets": [{"cidr": f"10.{i}.0.0/24"}]}
            )
            for k, host in ((1, f"h{i % 3 + 1}"), (2, f"h{(i + 1) % 3 + 1}")):
                vms.append(
                    {
                        "name": f"{t}{short}{k}",
                        "host": host,
                        "network": f"{t}-{short}",
                        "ip": f"10.{i}.0.1{k}",
                    }
                )
        tenants.append({"name": t, "networks": networks, "vms": vms})
    return {
        "underlay": {"ip_version": ip_version, "mtu": 1500},
        "hosts": [{"name": "h1"}, {"name": "h2"}, {"name": "h3"}],
        "tenants": tenants,
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("ip_version", [4, 6])
def test_every_encapsulation_and_control_plane_mode(lab: Lab, ip_version: int) -> None:
    doc = every_encapsulation_and_mode(ip_version)
    name, path = lab(doc)
    r = lab_cli("up", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    result = matrix_json(path)
    assert len(result["pairs"]) == 16 * 15
    assert_as_expected(result, doc)
    # same CIDR, same addresses, other tenant: never reached (a reply there came from the own tenant)
    tenant = {vm["name"]: t["name"] for t in doc["tenants"] for vm in t["vms"]}
    assert not [p for p in result["pairs"] if p["measured"] and tenant[p["src"]] != tenant[p["dst"]]]
    assert lab_cli("down", str(path)).returncode == 0
    assert lab_namespaces(name) == []


@pytest.mark.parametrize("datapaths", [("kernel", "kernel", "kernel"), ("kernel", "userspace", "kernel")])
def test_default_lab_on_the_kernel_datapath_and_mixed(lab: Lab, datapaths: tuple[str, ...]) -> None:
    """All hosts on the kernel datapath (`--datapath kernel` for hosts the file leaves open), and a mixed
    lab where kernel and userspace VTEPs carry the same VXLAN networks between them."""
    doc = default_lab().model_dump(mode="json", exclude_none=True)
    mixed = len(set(datapaths)) > 1
    if mixed:
        for host, datapath in zip(doc["hosts"], datapaths, strict=True):
            host["datapath"] = datapath
    _name, path = lab(doc)
    r = lab_cli("up", str(path), *([] if mixed else ["--datapath", "kernel"]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "30 pairs: 4 reachable and 26 isolated as expected, 0 mismatches" in r.stdout
    agents = {a["host"]: a["configurations"]["datapath"] for a in lab_agents(path)}
    assert agents == dict(zip(("h1", "h2", "h3"), datapaths, strict=True))


def test_lab_network_the_kernel_cannot_carry_fails_with_the_reason(lab: Lab) -> None:
    doc = {
        "hosts": [{"name": "h1", "datapath": "kernel"}, {"name": "h2"}],
        "tenants": [{
            "name": "t",
            "networks": [{"name": "g", "type": "geneve", "subnets": [{"cidr": "10.5.0.0/24"}]}],
            "vms": [
                {"name": "g1", "host": "h1", "network": "g"},
                {"name": "g2", "host": "h2", "network": "g"},
            ],
        }],
    }
    _name, path = lab(doc)
    r = lab_cli("up", str(path))
    assert r.returncode == 1
    reason = "geneve is not available in this host's kernel; use the userspace datapath"
    assert f"ports in ERROR: g1: {reason}" in r.stderr, r.stderr


def lab_agents(path: Path) -> list[dict[str, Any]]:
    api = yaml.safe_load(path.read_text())["api"]["listen"]
    agents: list[dict[str, Any]] = httpx.get(f"http://{api}/v2.0/agents", timeout=10).json()["agents"]
    return agents


# -- leaf-spine underlay ------------------------------------------------------------------------------------

LEAF_SPINE = {"shape": "leaf-spine", "spines": 2, "leaves": 2, "ip_version": 4, "mtu": 1500}


def two_vms_across_leaves(fixed_source_port: int | None = None) -> dict[str, Any]:
    """h1 under leaf 1, h2 under leaf 2, one network with a VM on each."""
    pin = {"fixed_source_port": fixed_source_port} if fixed_source_port else {}
    return {
        "underlay": LEAF_SPINE,
        "hosts": [{"name": "h1", "leaf": 1, **pin}, {"name": "h2", "leaf": 2, **pin}],
        "tenants": [{
            "name": "t",
            "networks": [{"name": "n", "subnets": [{"cidr": "10.7.0.0/24"}]}],
            "vms": [
                {"name": "v1", "host": "h1", "network": "n", "ip": "10.7.0.11"},
                {"name": "v2", "host": "h2", "network": "n", "ip": "10.7.0.12"},
            ],
        }],
    }  # fmt: skip


def spine_rx(name: str, spine: int, leaf: int) -> int:
    path = Path(f"/sys/class/net/leaf{leaf}/statistics/rx_packets")
    r = subprocess.run(
        ["ip", "netns", "exec", f"{name}-spine{spine}", "cat", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return int(r.stdout) if r.returncode == 0 else 0


@pytest.mark.timeout(90)
def test_leaf_spine_default_tenants_matrix_and_ecmp_uses_every_spine(lab: Lab) -> None:
    """The default tenants, each with a router over its two networks (red symmetric, blue asymmetric IRB),
    on 2 spines x 2 leaves (h1, h3 under leaf 1, h2 under leaf 2): the matrix as expected; iperf3 -P 16
    r1@h1 -> r2@h2 with hashed source ports crosses both spines."""
    doc = default_lab().model_dump(mode="json", exclude_none=True)
    doc["underlay"] = LEAF_SPINE
    for tenant, irb in zip(doc["tenants"], ("symmetric", "asymmetric"), strict=True):
        tenant["routers"] = [{"name": "r", "networks": [n["name"] for n in tenant["networks"]], "irb": irb}]
    name, path = lab(doc)
    r = lab_cli("up", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "30 pairs: 12 reachable and 18 isolated as expected, 0 mismatches" in r.stdout, r.stdout
    assert {f"{name}-{n}" for n in ("spine1", "spine2", "leaf1", "leaf2")} <= set(lab_namespaces(name))
    assert f"{name}-ul" not in lab_namespaces(name)
    addr = subprocess.run(
        ["ip", "netns", "exec", f"{name}-h3", "ip", "-4", "-o", "addr", "show", "eth0"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "198.18.1.2/24" in addr.stdout, addr
    route = subprocess.run(
        ["ip", "netns", "exec", f"{name}-leaf1", "ip", "route", "show", "198.18.2.0/24"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert route.stdout.count("nexthop via") == 2, route.stdout
    result = matrix_json(path)
    assert_as_expected(result, doc)
    assert result["ecmp_pair"] == {"src": "r1", "dst": "r2"}
    split = result["ecmp"]
    total = split["spine1"] + split["spine2"]
    assert total > 1000 and min(split.values()) >= 0.1 * total, split
    human = lab_cli("test", str(path))
    assert "ECMP: iperf3 -P 16 r1@h1 → r2@h2" in human.stdout, human.stdout
    assert lab_cli("down", str(path)).returncode == 0
    assert lab_namespaces(name) == []


@pytest.mark.timeout(90)
def test_leaf_spine_fixed_source_port_puts_every_flow_on_one_spine(lab: Lab) -> None:
    """The same 16 streams from VTEPs started with --fixed-source-port: one outer 5-tuple, one path."""
    doc = two_vms_across_leaves(fixed_source_port=40000)
    name, path = lab(doc)
    r = lab_cli("up", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 pairs: 2 reachable and 0 isolated as expected, 0 mismatches" in r.stdout
    vteps = [p for p in lab_state.State.load(name).procs if p.role == "vtep"]  # type: ignore[union-attr]
    assert all("--fixed-source-port" in Path(f"/proc/{p.pid}/cmdline").read_text() for p in vteps)
    result = matrix_json(path)
    assert result["ecmp_pair"] == {"src": "v1", "dst": "v2"}
    split = result["ecmp"]
    total = split["spine1"] + split["spine2"]
    assert total > 1000 and min(split.values()) < 0.05 * total, split


@pytest.mark.timeout(90)
def test_leaf_spine_ping_survives_losing_the_spine_it_crosses(lab: Lab) -> None:
    """A ping v1@leaf1 -> v2@leaf2; the spine that carries it is deleted mid-way: the multipath route's
    nexthop over it goes with its link, and the ping continues over the other spine."""
    name, path = lab(two_vms_across_leaves())
    r = lab_cli("up", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    before = {s: spine_rx(name, s, 1) for s in (1, 2)}
    ping = subprocess.Popen(
        ["ip", "netns", "exec", f"{name}-v1", "ping", "-n", "-c", "40", "-i", "0.2", "-W", "1", "10.7.0.12"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.5)
        carried = {s: spine_rx(name, s, 1) - before[s] for s in (1, 2)}
        busy = max(carried, key=lambda s: carried[s])
        assert carried[busy] >= 5, carried
        subprocess.run(["ip", "netns", "del", f"{name}-spine{busy}"], check=True)
        out, _ = ping.communicate(timeout=30)
    finally:
        if ping.poll() is None:
            ping.kill()
            ping.wait(5)
    replied = {
        int(line.split("icmp_seq=")[1].split()[0]) for line in out.splitlines() if "time=" in line
    }
    assert set(range(30, 41)) <= replied, out  # the last 2 s all answered
    other = 3 - busy
    assert spine_rx(name, other, 1) > before[other], "the ping moved to the other spine"
