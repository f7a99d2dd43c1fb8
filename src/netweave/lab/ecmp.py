"""The spine split: why a VTEP hashes the outer UDP source port from the inner flow.

On a leaf-spine underlay each leaf reaches the other leaves' host subnets over every spine (one multipath
route, hashed on the L4 5-tuple). Between two VMs of one network on hosts under different leaves, iperf3
runs 16 parallel TCP streams; the packets each spine received meanwhile from the source's leaf (the data
direction: rx_packets of the spine's link to that leaf) show how the flows spread. With hashed source
ports they spread over the spines; a VTEP started with `--fixed-source-port` puts every flow from one
host to another on one path. (The reverse direction, the ACKs, is hashed at the other leaf on its own.)
"""

import subprocess
import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table

from netweave.lab import netns
from netweave.lab.api import Endpoint
from netweave.lab.spec import Lab

STREAMS = 16
SECONDS = 3
IPERF_PORT = "5201"


@dataclass
class Split:
    src: Endpoint | None = None
    dst: Endpoint | None = None
    spines: dict[str, int] = field(default_factory=dict)  # spine<i> -> packets from the source's leaf
    note: str = ""  # why there is no measurement

    def as_json(self) -> dict[str, object]:
        pair = {"src": self.src.name, "dst": self.dst.name} if self.src and self.dst else None
        return {"ecmp": self.spines or None, "ecmp_pair": pair, "ecmp_note": self.note or None}


def pick_pair(lab: Lab, endpoints: list[Endpoint]) -> tuple[Endpoint, Endpoint] | None:
    """Two endpoints of one network, with addresses, on hosts under different leaves."""
    leaf = {h.name: lab.leaf_of(i) for i, h in enumerate(lab.hosts, 1)}
    for a in endpoints:
        for b in endpoints:
            if (
                a.port_id != b.port_id
                and a.network_id == b.network_id
                and a.target
                and b.target
                and leaf.get(a.host) is not None
                and leaf.get(b.host) not in (None, leaf.get(a.host))
            ):
                return a, b
    return None


def spine_packets(lab: Lab, from_leaf: int) -> dict[str, int]:
    """spine<i> -> packets it has received from leaf `from_leaf` (rx_packets of its link `leaf<j>`)."""
    return {
        f"spine{i}": netns.packet_counts(lab.netns(f"spine{i}")).get(f"leaf{from_leaf}", 0)
        for i in range(1, lab.underlay.spines + 1)
    }


def _iperf(src: Endpoint, dst: Endpoint, streams: int, seconds: int) -> str:
    """Run the client until the one-off server in `dst` accepts it; '' or the reason it failed."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", dst.netns, "iperf3", "-s", "-1", "-p", IPERF_PORT],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        why = ""
        for _ in range(20):
            r = subprocess.run(
                ["ip", "netns", "exec", src.netns, "iperf3", "-c", str(dst.target), "-p", IPERF_PORT,
                 "-P", str(streams), "-t", str(seconds)],
                capture_output=True, text=True, timeout=seconds + 30, check=False,
            )  # fmt: skip
            if r.returncode == 0:
                return ""
            why = " ".join((r.stderr or r.stdout).split())[-200:]
            if "refused" not in why:
                return f"iperf3 failed: {why}"
            time.sleep(0.2)
        return f"iperf3 failed: {why}"
    finally:
        server.kill()
        server.wait(5)


def measure(lab: Lab, endpoints: list[Endpoint], streams: int = STREAMS, seconds: int = SECONDS) -> Split:
    pair = pick_pair(lab, endpoints)
    if pair is None:
        return Split(note="no two VMs of one network on hosts under different leaves: nothing to measure")
    src, dst = pair
    leaf = {h.name: lab.leaf_of(i) for i, h in enumerate(lab.hosts, 1)}[src.host]
    before = spine_packets(lab, leaf)
    why = _iperf(src, dst, streams, seconds)
    after = spine_packets(lab, leaf)
    if why:
        return Split(src, dst, note=why)
    return Split(src, dst, spines={s: after[s] - before.get(s, 0) for s in after})


def render(console: Console, split: Split) -> None:
    if not split.spines:
        console.print(f"ECMP: {split.note}", soft_wrap=True)
        return
    assert split.src is not None and split.dst is not None
    total = sum(split.spines.values()) or 1
    pair = f"{split.src.name}@{split.src.host} → {split.dst.name}@{split.dst.host}"
    table = Table(title=f"ECMP: iperf3 -P {STREAMS} {pair}", title_justify="left")
    table.add_column("spine")
    table.add_column("packets from the source's leaf", justify="right")
    table.add_column("share", justify="right")
    for spine, n in split.spines.items():
        table.add_row(spine, str(n), f"{100 * n / total:.0f} %")
    console.print(table)
