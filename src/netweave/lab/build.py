"""`lab up`: plumbing with netlink, processes with `nsenter --net`, tenants' resources through the API.

Order, and why:
1. underlay namespace with its bridge; per host a namespace and a veth onto the bridge (netlink);
2. the controller in the root namespace (so `openstack` works against it while the lab runs), on TCP
   for users and on a Unix socket in the run dir for the agents (they run in other namespaces);
3. per host `netweave vtep` (forwards) and `netweave agent` (registers the chassis, programs the VTEP):
   wait for every VTEP's "ready" and every chassis "alive" in `GET /v2.0/agents`;
4. per tenant its networks and subnets, its routers with their interfaces, per VM its namespace (before
   the port: the agent puts the TAP into it) and a port bound to its host, all through the API, as a user
   would;
5. wait until every port is ACTIVE, then give each TAP its port's fixed IPs and default route (or, on
   networks with `dhcp: true`, run a DHCP client in the VM).

A failure stops the build and leaves everything as it is, for its logs: `netweave lab down` removes it
(state.json already names every namespace and process).
"""

import contextlib
import errno
import ipaddress
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError
from rich.progress import Progress

from netweave.lab import dhcpclient, netns
from netweave.lab.api import Api, Endpoint, discover, wait_active
from netweave.lab.errors import LabError
from netweave.lab.spec import Lab, Network
from netweave.lab.state import State, already_up, down, leftovers, run_dir

CONTROLLER_TIMEOUT_S = 30.0
VTEP_TIMEOUT_S = 20.0
AGENT_TIMEOUT_S = 30.0
ACTIVE_TIMEOUT_S = 60.0
SLAAC_TIMEOUT_S = 15.0  # router solicitations are retried every 4 s (Linux default)
V6_EXTRA_OVERHEAD = 20  # the controller sizes tenant MTUs for an IPv4 underlay; IPv6 headers are 20 more


class BuildFailedError(LabError):
    """`up` stopped midway; what it built is recorded for `down`."""


class Phases:
    """The build's progress: one line per phase with its own count (rich.progress on stderr)."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress

    @contextlib.contextmanager
    def phase(self, description: str, total: int) -> Iterator[Callable[[], None]]:
        if self.progress is None:
            yield lambda: None
            return
        progress = self.progress
        task = progress.add_task(description, total=max(total, 1))
        yield lambda: progress.advance(task)
        progress.update(task, completed=max(total, 1))


def _tail(path: str | Path) -> str:
    try:
        lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][:300] if lines else "(no output)"


def check_tools() -> None:
    for tool, package in (("ip", "iproute2"), ("ping", "iputils-ping"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} is not installed (apt-get install {package})")


def _check_listen_free(listen: str) -> None:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise LabError(f"api.listen {listen}: {reason}") from None


def controller_mtu(lab: Lab) -> int:
    """`--underlay-mtu` for the controller, which derives tenant MTUs assuming an IPv4 underlay."""
    return lab.underlay.mtu - (V6_EXTRA_OVERHEAD if lab.underlay.ip_version == 6 else 0)


class Builder:
    """Builds one lab step by step; every step records before it creates (see `State`)."""

    def __init__(self, lab: Lab, state: State, phases: Phases | None = None) -> None:
        self.lab = lab
        self.state = state
        self.phases = phases or Phases()
        self.procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}  # label -> (Popen, log)
        self.api = Api(lab.api.url)

    def close(self) -> None:
        self.api.close()

    @property
    def cli(self) -> list[str]:
        return [sys.executable, "-m", "netweave.cli"]

    def _file(self, name: str) -> str:
        return str(self.state.rundir / name)

    def _start(self, label: str, role: str, argv: list[str], host: str | None = None) -> None:
        ns = self.lab.netns(host) if host else None
        proc = self.state.start(role, argv, host=host, ns=ns)
        self.procs[label] = (proc, self.state.procs[-1].log)

    def check_processes(self) -> None:
        """Fail at once, with its last log line, if a process the lab started has exited."""
        for label, (proc, log) in self.procs.items():
            rc = proc.poll()
            if rc is not None:
                raise LabError(f"{label} exited with status {rc}: {_tail(log)} (log {log})")

    # -- plumbing ---------------------------------------------------------------------------------------

    def underlay(self) -> None:
        if self.lab.leaf_spine:
            self.fabric()
            return
        with self.phases.phase("underlay", 1) as step:
            ul = self.lab.netns("ul")
            self.state.add_netns(ul)
            netns.make_underlay(ul, self.lab.underlay.mtu)
            step()

    def fabric(self) -> None:
        """Leaf-spine: per leaf and spine a namespace that routes, a /31 veth per leaf-spine pair, on
        each leaf a bridge with its hosts' subnet; static routes, the leaves' over all spines (ECMP)."""
        u = self.lab.underlay
        leaves, spines = range(1, u.leaves + 1), range(1, u.spines + 1)
        with self.phases.phase("leaf-spine underlay", u.leaves + u.spines) as step:
            for node in [f"spine{i}" for i in spines] + [f"leaf{j}" for j in leaves]:
                self.state.add_netns(self.lab.netns(node))
                netns.make_router(self.lab.netns(node))
            for j in leaves:
                leaf = self.lab.netns(f"leaf{j}")
                netns.make_underlay(leaf, u.mtu)
                netns.add_address(leaf, netns.BRIDGE, u.leaf_gateway(j), 24)
                for i in spines:
                    leaf_end, spine_end = u.link_addresses(j, i)
                    netns.link_routers(
                        leaf, f"spine{i}", self.lab.netns(f"spine{i}"), f"leaf{j}",
                        mtu=u.mtu, a_address=leaf_end, b_address=spine_end,
                    )  # fmt: skip
                step()
            for j in leaves:
                others = [u.leaf_subnet(k) for k in leaves if k != j]
                if others:
                    nexthops = [(u.link_addresses(j, i)[1], f"spine{i}") for i in spines]
                    netns.add_ecmp_routes(self.lab.netns(f"leaf{j}"), others, nexthops)
            for i in spines:
                for j in leaves:
                    netns.add_route(self.lab.netns(f"spine{i}"), u.leaf_subnet(j), u.link_addresses(j, i)[0])
                step()

    def hosts(self) -> None:
        ul, u = self.lab.netns("ul"), self.lab.underlay
        with self.phases.phase("hosts", len(self.lab.hosts)) as step:
            for i, host in enumerate(self.lab.hosts, 1):
                ns = self.lab.netns(host.name)
                self.state.add_netns(ns)
                if self.lab.leaf_spine:
                    leaf = self.lab.leaf_of(i)
                    netns.attach_host(
                        self.lab.netns(f"leaf{leaf}"), ns, host.name,
                        mtu=u.mtu, address=self.lab.vtep_ip(i), prefixlen=24,
                    )  # fmt: skip
                    netns.add_route(ns, "0.0.0.0/0", u.leaf_gateway(leaf))
                else:
                    address = u.address(i)
                    netns.attach_host(ul, ns, host.name, mtu=u.mtu, address=address, prefixlen=u.prefixlen)
                step()

    def controller(self) -> None:
        with self.phases.phase(f"controller on {self.lab.api.listen}", 1) as step:
            self._start(
                "controller",
                "controller",
                [
                    *self.cli, "controller",
                    "--db", f"sqlite:///{self._file('controller.db')}",
                    "--listen", self.lab.api.listen,
                    "--unix-socket", self._file("controller.sock"),
                    "--underlay-mtu", str(controller_mtu(self.lab)),
                ],
            )  # fmt: skip
            deadline = time.monotonic() + CONTROLLER_TIMEOUT_S
            while not self.api.answers():
                self.check_processes()
                if time.monotonic() > deadline:
                    raise LabError(
                        f"the controller did not answer on {self.lab.api.url} within "
                        f"{CONTROLLER_TIMEOUT_S:.0f} s"
                    )
                time.sleep(0.1)
            step()

    def vteps(self) -> None:
        u = self.lab.underlay
        users = [(i, h) for i, h in enumerate(self.lab.hosts, 1) if h.datapath != "kernel"]
        with self.phases.phase("VTEPs", len(users)) as step:
            for i, host in users:
                self._start(
                    f"vtep {host.name}",
                    "vtep",
                    [
                        *self.cli, "vtep",
                        "--vtep-ip", self.lab.vtep_ip(i),
                        "--underlay-mtu", str(u.mtu),
                        "--control-socket", self._file(f"{host.name}.vtep.sock"),
                        *(["--fixed-source-port", str(port)] if (port := host.fixed_source_port) else []),
                    ],
                    host=host.name,
                )  # fmt: skip
            waiting = {h.name for _, h in users}
            deadline = time.monotonic() + VTEP_TIMEOUT_S
            while waiting:
                self.check_processes()
                for host_name in sorted(waiting):
                    if "ready" in Path(self.procs[f"vtep {host_name}"][1]).read_text(errors="replace"):
                        waiting.discard(host_name)
                        step()
                if waiting and time.monotonic() > deadline:
                    late = ", ".join(sorted(waiting))
                    raise LabError(f"VTEPs not ready after {VTEP_TIMEOUT_S:.0f} s: {late}")
                time.sleep(0.05)

    def plumbing(self) -> None:
        """Everything but the agents and the tenants' resources: what `down` must be able to remove
        without any agent having existed."""
        self.underlay()
        self.hosts()
        self.controller()
        self.vteps()

    # -- control plane and tenants ----------------------------------------------------------------------

    def agents(self) -> None:
        u = self.lab.underlay
        with self.phases.phase("agents", len(self.lab.hosts)) as step:
            for i, host in enumerate(self.lab.hosts, 1):
                self._start(
                    f"agent {host.name}",
                    "agent",
                    [
                        *self.cli, "agent",
                        "--controller", f"unix:{self._file('controller.sock')}",
                        "--chassis", host.name,
                        "--vtep-ip", self.lab.vtep_ip(i),
                        "--datapath", host.datapath or "userspace",
                        "--underlay-mtu", str(u.mtu),
                        "--vtep-socket", self._file(f"{host.name}.vtep.sock"),
                        "--vm-netns-prefix", self.lab.prefix,
                    ],
                    host=host.name,
                )  # fmt: skip
            hosts = {h.name for h in self.lab.hosts}
            seen: set[str] = set()
            deadline = time.monotonic() + AGENT_TIMEOUT_S
            while True:
                self.check_processes()
                alive = self.api.agents_alive() & hosts
                for _ in alive - seen:
                    step()
                seen |= alive
                if seen == hosts:
                    return
                if time.monotonic() > deadline:
                    raise LabError(
                        f"chassis not alive after {AGENT_TIMEOUT_S:.0f} s: {', '.join(sorted(hosts - seen))}"
                    )
                time.sleep(0.2)

    def objects(self) -> None:
        """Networks, subnets, then per VM its namespace and its port."""
        n_nets = sum(len(t.networks) for t in self.lab.tenants)
        with self.phases.phase("networks", n_nets) as step:
            for tenant in self.lab.tenants:
                for net in tenant.networks:
                    created = self.api.create_network(tenant.name, net)
                    self.state.networks[net.name] = created["id"]
                    self.state.save()
                    self.state.subnets[net.name] = [
                        self.api.create_subnet(tenant.name, created["id"], subnet, net.dhcp)["id"]
                        for subnet in net.subnets]
                    step()
        n_routers = sum(len(t.routers) for t in self.lab.tenants)
        with self.phases.phase("routers", n_routers) as step:
            for tenant in self.lab.tenants:
                for router in tenant.routers:
                    rid = self.api.create_router(tenant.name, router)["id"]
                    for name in router.networks:
                        for subnet_id in self.state.subnets[name]:
                            self.api.add_router_interface(tenant.name, rid, subnet_id)
                    step()
        n_vms = sum(len(t.vms) for t in self.lab.tenants)
        with self.phases.phase("VM ports", n_vms) as step:
            for tenant in self.lab.tenants:
                for vm in tenant.vms:
                    self.state.add_netns(self.lab.netns(vm.name))
                    port = self.api.create_port(self.lab, tenant.name, vm, self.state.networks[vm.network])
                    self.state.ports[vm.name] = port["id"]
                    self.state.save()
                    step()

    def wire(self) -> list[Endpoint]:
        with self.phases.phase("ports ACTIVE", len(self.state.ports)) as step:
            endpoints = prepare(self.api, self.lab, ACTIVE_TIMEOUT_S, self.check_processes, step)
        return endpoints


def prepare(
    api: Api,
    lab: Lab,
    timeout_s: float,
    check: Callable[[], None] | None = None,
    step: Callable[[], None] | None = None,
) -> list[Endpoint]:
    """The ports bound to lab hosts, each ACTIVE and configured: on a network with `dhcp: true` by a DHCP
    client in the VM (and router advertisements for SLAAC), else the lab adds its fixed IPs (a port someone
    created by hand has none yet) and a default route via its router."""
    ids = {e.port_id: e.name for e in discover(api, lab)}
    wait_active(api, ids, timeout_s, check)
    endpoints = [e for e in discover(api, lab) if e.port_id in ids]
    for e in endpoints:
        if netns.link_index(e.netns, e.tap) is None:
            raise LabError(f"port {e.name} is ACTIVE but has no device {e.tap} in namespace {e.netns}")
        net = lab.vm_network(e.name)
        if net is not None and net.dhcp:
            by_dhcp(lab, net, e)
        else:
            netns.add_addresses(e.netns, e.tap, list(e.addresses))
            netns.set_default_routes(e.netns, [g for g in e.gateways if e.on_link(g)])
        if step is not None:
            step()
    return endpoints


def by_dhcp(lab: Lab, net: Network, e: Endpoint) -> None:
    """Addresses from the VTEP's native DHCP: dhclient -4 when an IPv4 address is missing, dhclient -6
    for DHCPv6-stateful subnets, and for SLAAC the kernel's own autoconfiguration from the router
    advertisement (waited for). Already configured (a second `lab test`): nothing is run again."""
    modes = {ipaddress.ip_network(s.cidr): s.ipv6_mode for s in net.subnets}
    have = netns.addresses(e.netns)
    missing = [ip for ip, _ in e.addresses if ip not in have]
    rundir = run_dir(lab.name)
    if any(ipaddress.ip_address(ip).version == 4 for ip in missing):
        dhcpclient.run(e.netns, e.tap, rundir, e.name)
    stateful = [c for c, m in modes.items() if m == "dhcpv6-stateful"]
    if any(ipaddress.ip_address(ip) in c for ip in missing for c in stateful):
        dhcpclient.run(e.netns, e.tap, rundir, e.name, v6=True)
    deadline = time.monotonic() + SLAAC_TIMEOUT_S
    while [ip for ip in missing if ip not in netns.addresses(e.netns, usable=True)]:
        if time.monotonic() > deadline:
            left = [ip for ip in missing if ip not in netns.addresses(e.netns, usable=True)]
            raise LabError(f"VM {e.name}: no address {', '.join(left)} from DHCP/SLAAC after "
                           f"{SLAAC_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def preflight(lab: Lab, down_cmd: str = "netweave lab down") -> None:
    """Refuse to build over a running lab; sweep the remains of a crashed one (its prefix is ours)."""
    check_tools()
    if already_up(lab.name):
        raise LabError(f"lab {lab.name} is already up (run `{down_cmd}`)")
    if leftovers(lab.name):
        down(lab.name)
    _check_listen_free(lab.api.listen)


def up(
    lab: Lab, progress: Progress | None = None, down_cmd: str = "netweave lab down"
) -> tuple[State, list[Endpoint]]:
    """Build lab `lab`; returns its state and its endpoints, wired and addressed. A failure after the
    preflight raises BuildFailedError and leaves the lab for `down` (and its logs for reading)."""
    preflight(lab, down_cmd)
    state = State(name=lab.name, api_url=lab.api.url, spec=lab.model_dump(mode="json"))
    state.save()
    builder = Builder(lab, state, Phases(progress))
    try:
        builder.plumbing()
        builder.agents()
        builder.objects()
        return state, builder.wire()
    except (LabError, OSError, NetlinkError) as exc:
        raise BuildFailedError(f"{' '.join(str(exc).split())}; logs in {state.rundir}") from None
    finally:
        builder.close()
