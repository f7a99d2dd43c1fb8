"""Throw-away topologies in network namespaces for the netns tests.

Everything is named with a per-run prefix, uses only addresses inside the namespaces (198.18.0.0/15 and
2001:db8::/32 underlays, 10.x tenant ranges) and is removed in `close()`, which the fixtures call in a
finalizer, also on failure. Processes are stopped by the PIDs we started, never by name.
"""

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

VENV_BIN = Path(sys.executable).parent
NETWEAVE = str(VENV_BIN / "netweave")


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a controller the test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Topology:
    """An underlay segment (a bridge in its own namespace), hosts attached to it, VM namespaces."""

    def __init__(self, *, v6: bool = False, underlay_mtu: int = 1500) -> None:
        self.prefix = "nw" + secrets.token_hex(3)
        self.v6 = v6
        self.mtu = underlay_mtu
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.tmp = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.ul = self.ns("ul")
        sh("ip", "-n", self.ul, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.ul, "link", "set", "br0", "up")
        self.hosts: dict[str, str] = {}

    def ns(self, suffix: str) -> str:
        name = f"{self.prefix}{suffix}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def underlay_ip(self, index: int) -> str:
        return f"2001:db8::{index}" if self.v6 else f"198.18.0.{index}"

    def add_host(self, name: str, index: int) -> str:
        """A host namespace with eth0 on the underlay segment; returns its namespace."""
        hns = self.ns(name)
        tmp_a, tmp_b = f"{self.prefix}a{index}", f"{self.prefix}b{index}"
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        sh("ip", "link", "set", tmp_a, "netns", hns)
        sh("ip", "link", "set", tmp_b, "netns", self.ul)
        sh("ip", "-n", hns, "link", "set", tmp_a, "name", "eth0")
        sh("ip", "-n", self.ul, "link", "set", tmp_b, "name", name)
        sh("ip", "-n", self.ul, "link", "set", name, "master", "br0", "mtu", str(self.mtu), "up")
        sh("ip", "-n", hns, "link", "set", "eth0", "mtu", str(self.mtu), "up")
        plen = "64" if self.v6 else "24"
        extra = ["nodad"] if self.v6 else []
        sh("ip", "-n", hns, "addr", "add", f"{self.underlay_ip(index)}/{plen}", "dev", "eth0", *extra)
        self.hosts[name] = hns
        return hns

    def vtep(self, host: str, config: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
        """Start `netweave vtep` in host `host` with `config`; returns (process, control socket)."""
        cfg = self.tmp / f"{host}.yaml"
        cfg.write_text(yaml.safe_dump(config))
        sock = str(self.tmp / f"{host}.sock")
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                self.hosts[host],
                NETWEAVE,
                "vtep",
                "--config",
                str(cfg),
                "--control-socket",
                sock,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        self.wait_ready(proc)
        return proc, sock

    @staticmethod
    def wait_ready(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        os.set_blocking(fd, False)
        buf = b""
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"vtep exited {proc.returncode}: {err.strip()}")
            with contextlib.suppress(BlockingIOError):
                buf += os.read(fd, 4096)
            if b"ready" in buf:
                return
            time.sleep(0.05)
        raise RuntimeError("vtep did not become ready")

    def vm_addr(self, vm_ns: str, dev: str, *addrs: str) -> None:
        for a in addrs:
            extra = ["nodad"] if ":" in a else []
            sh("ip", "-n", vm_ns, "addr", "add", a, "dev", dev, *extra)

    def ping(
        self,
        vm_ns: str,
        dst: str,
        *,
        count: int = 3,
        size: int | None = None,
        df: bool = False,
        timeout_s: float = 2,
    ) -> bool:
        args = [
            "ip",
            "netns",
            "exec",
            vm_ns,
            "ping",
            "-n",
            "-c",
            str(count),
            "-W",
            str(timeout_s),
            "-i",
            "0.2",
        ]
        if size is not None:
            args += ["-s", str(size)]
        if df:
            args += ["-M", "do"]
        return sh(*args, dst, check=False, timeout=count * timeout_s + 10).returncode == 0

    def stop(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        return proc.returncode

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                self.stop(proc)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def kernel_vtep(
    topo: Topology,
    host: str,
    vtep_ip: str,
    peer: str,
    vni: int,
    vm_ns: str,
    vm_ip: str,
    *,
    offload: bool = False,
) -> None:
    """The Linux kernel as the other VTEP: vxlan device + bridge + veth into the VM, set up with ip/bridge."""
    hns = topo.hosts[host]
    sh(
        "ip",
        "-n",
        hns,
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        str(vni),
        "local",
        vtep_ip,
        "dstport",
        "4789",
        "nolearning",
    )
    sh("ip", "-n", hns, "link", "add", "br0", "type", "bridge")
    sh("ip", "-n", hns, "link", "set", "vx0", "master", "br0", "up")
    sh("ip", "-n", hns, "link", "add", "vmk", "type", "veth", "peer", "name", "eth0", "netns", vm_ns)
    sh("ip", "-n", hns, "link", "set", "vmk", "master", "br0", "up")
    sh("ip", "-n", hns, "link", "set", "br0", "up")
    sh("bridge", "-n", hns, "fdb", "append", "00:00:00:00:00:00", "dev", "vx0", "dst", peer)
    sh("ip", "-n", vm_ns, "link", "set", "eth0", "mtu", "1450", "up")
    sh("ip", "-n", vm_ns, "addr", "add", f"{vm_ip}/24", "dev", "eth0")
    # veth checksum offload: frames would reach a userspace VTEP with partial TCP checksums
    if not offload:
        for ns, dev in ((vm_ns, "eth0"), (hns, "vmk")):
            sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off")


def iperf(
    topo: Topology, client_ns: str, server_ns: str, server_ip: str, seconds: int = 2, *extra: str
) -> float:
    """iperf3 from `client_ns` to `server_ip` in `server_ns`; bits per second received (or, with -u,
    packets per second received, see `iperf_json`)."""
    return float(
        iperf_json(topo, client_ns, server_ns, server_ip, seconds, *extra)["end"]["sum_received"][
            "bits_per_second"
        ]
    )


def iperf_json(
    topo: Topology, client_ns: str, server_ns: str, server_ip: str, seconds: int = 2, *extra: str
) -> dict[str, Any]:
    srv = subprocess.Popen(
        ["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    topo.procs.append(srv)  # type: ignore[arg-type]
    time.sleep(0.5)
    r = sh(
        "ip",
        "netns",
        "exec",
        client_ns,
        "iperf3",
        "-c",
        server_ip,
        "-t",
        str(seconds),
        "-J",
        *extra,
        timeout=seconds + 30,
    )
    srv.wait(10)
    data: dict[str, Any] = json.loads(r.stdout)
    return data
