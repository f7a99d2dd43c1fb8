"""Small builders shared by the netns tests: VTEP configs, captures, control requests."""

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from netweave.vtep.control import request

from .topo import NETWEAVE, Topology, sh


def mac(host: int, vm: int) -> str:
    return f"02:00:00:00:{host:02x}:{vm:02x}"


def net(vni: int, flood: list[str], ports: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"vni": vni, "flood": flood, "ports": ports, **extra}


def port(name: str, netns: str, mac_addr: str, ip: str | list[str] | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"name": name, "netns": netns, "mac": mac_addr}
    if ip is not None:
        p["ip"] = ip
    return p


def stats(sock: str) -> dict[str, Any]:
    result: dict[str, Any] = request(sock, "stats")
    return result


def stats_cli(sock: str) -> dict[str, Any]:
    r = sh(NETWEAVE, "vtep", "stats", "--control-socket", sock, "--json")
    result: dict[str, Any] = json.loads(r.stdout)
    return result


class Capture:
    """tshark on an interface inside a namespace, writing a pcap; `fields()` decodes it afterwards."""

    def __init__(self, topo: Topology, netns: str, iface: str, capture_filter: str = "") -> None:
        self.path = topo.tmp / f"cap-{netns}-{iface}-{time.monotonic_ns()}.pcap"
        args = ["ip", "netns", "exec", netns, "tshark", "-q", "-n", "-i", iface, "-w", str(self.path)]
        if capture_filter:
            args += ["-f", capture_filter]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        topo.procs.append(self.proc)  # type: ignore[arg-type]
        deadline = time.monotonic() + 15
        assert self.proc.stderr is not None
        while time.monotonic() < deadline:  # tshark says "Capturing on ..." once the socket is open
            line = self.proc.stderr.readline()
            if b"Capturing on" in line or not line:
                break
        time.sleep(0.3)

    def stop(self) -> Path:
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(15)
        return self.path

    def fields(
        self, *fields: str, display_filter: str = "", decode_as: list[str] | None = None
    ) -> list[list[str]]:
        # occurrence=f: the first (outermost) value of fields that repeat in tunnels (ip.src, eth.type)
        args = [
            "tshark",
            "-n",
            "-r",
            str(self.path),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "occurrence=f",
        ]
        for f in fields:
            args += ["-e", f]
        if display_filter:
            args += ["-Y", display_filter]
        for d in decode_as or []:
            args += ["-d", d]
        r = sh(*args, timeout=60)
        return [line.split("|") for line in r.stdout.splitlines() if line.strip()]


def wait_for(predicate: Any, timeout: float = 10, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def links(netns: str) -> list[str]:
    out = sh("ip", "-n", netns, "-o", "link", "show").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
