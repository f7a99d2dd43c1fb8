"""A controller plus hosts running `netweave vtep` + `netweave agent`, on a `Topology`, for the agent tests.

The controller runs in the root namespace on a free loopback port (for the tests' API calls) and a Unix
socket in the topology's temp dir (for the agents, which live in the host namespaces). Every process is
started by PID into `topo.procs`, so the topology's finalizer stops them.
"""

import subprocess
import time
from typing import Any

import httpx

from .topo import NETWEAVE, Topology, free_port


def wait_for(predicate: Any, timeout_s: float = 20, interval_s: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")


class Cluster:
    def __init__(self, topo: Topology) -> None:
        self.topo = topo
        self.port = free_port()
        self.sock = str(topo.tmp / "controller.sock")
        self.db = f"sqlite:///{topo.tmp / 'controller.db'}"
        self.controller: subprocess.Popen[bytes] | None = None
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.vteps: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        self.datapaths: dict[str, str] = {}
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        self.start_controller()

    def start_controller(self) -> None:
        log = open(self.topo.tmp / "controller.log", "ab")  # noqa: SIM115 - closed with the process
        self.controller = subprocess.Popen(
            [NETWEAVE, "controller", "--db", self.db, "--listen", f"127.0.0.1:{self.port}",
             "--unix-socket", self.sock, "--agent-down-time", "5"],
            stdout=log, stderr=log,
        )
        self.topo.procs.append(self.controller)

        def up() -> bool:
            try:
                return self.api.get("/v2.0/networks").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, 30, what="the controller")

    def add_host(self, name: str, index: int, datapath: str = "userspace") -> str:
        self.topo.add_host(name, index)
        ip = self.topo.underlay_ip(index)
        self.datapaths[name] = datapath
        if datapath == "kernel":  # the kernel forwards by itself: no daemon
            self.start_agent(name)
            return ip
        vsock = str(self.topo.tmp / f"{name}.vtep.sock")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.topo.hosts[name], NETWEAVE, "vtep", "--vtep-ip", ip,
             "--control-socket", vsock],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.topo.procs.append(proc)
        self.topo.wait_ready(proc)
        self.vteps[name] = (proc, vsock)
        self.start_agent(name)
        return ip

    def start_agent(self, name: str) -> subprocess.Popen[bytes]:
        index = list(self.topo.hosts).index(name) + 1
        log = open(self.topo.tmp / f"{name}.agent.log", "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.topo.hosts[name]}", NETWEAVE, "agent", "-v", "--controller",
             f"unix:{self.sock}", "--chassis", name, "--vtep-ip", self.topo.underlay_ip(index),
             "--datapath", self.datapaths[name], "--vm-netns-prefix", f"{self.topo.prefix}p",
             *(["--vtep-socket", self.vteps[name][1]] if name in self.vteps else [])],
            stdout=log, stderr=log,
        )
        self.topo.procs.append(proc)
        self.agents[name] = proc
        wait_for(lambda: any(a["host"] == name and a["alive"] for a in self.agents_list()), 30,
                 what=f"agent {name}")
        return proc

    def agents_list(self) -> list[dict[str, Any]]:
        try:
            agents: list[dict[str, Any]] = self.api.get("/v2.0/agents").json()["agents"]
        except httpx.TransportError:
            return []
        return agents

    # ------------------------------------------------------------------ API helpers
    def create(self, collection: str, member: str, project: str = "demo", **attrs: Any) -> dict[str, Any]:
        r = self.api.post(f"/v2.0/{collection}", json={member: attrs}, headers={"X-Project-Id": project})
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()[member]
        return body

    def network(self, name: str, cidr: str, **attrs: Any) -> dict[str, Any]:
        net = self.create("networks", "network", name=name, **attrs)
        version = 6 if ":" in cidr else 4
        self.create("subnets", "subnet", network_id=net["id"], cidr=cidr, ip_version=version,
                    enable_dhcp=False)
        return net

    def vm(self, name: str, net: dict[str, Any], host: str, ip: str | None = None) -> dict[str, Any]:
        """A VM namespace and its port, bound to `host`; returns the port once ACTIVE, with `netns`."""
        ns = self.topo.ns(name)
        attrs: dict[str, Any] = {"network_id": net["id"], "name": name, "binding:host_id": host,
                                 "binding:profile": {"netns": ns}, "device_owner": "compute:test"}
        if ip:
            attrs["fixed_ips"] = [{"ip_address": ip}]
        port = self.create("ports", "port", **attrs)
        self.wait_active(port["id"])
        dev = "tap" + port["id"][:11]
        self.topo.vm_addr(ns, dev, f"{port['fixed_ips'][0]['ip_address']}/24")
        return {**port, "netns": ns, "dev": dev}

    def wait_active(self, port_id: str, timeout_s: float = 20) -> None:
        wait_for(lambda: self.api.get(f"/v2.0/ports/{port_id}").json()["port"]["status"] == "ACTIVE",
                 timeout_s, what=f"port {port_id} ACTIVE")
