"""The connectivity matrix: every ordered pair of endpoints, expected (same network, or networks joined by
a router) vs measured (ping).

Tenants' address ranges overlap on purpose, so a reply proves little by itself: from r1, pinging blue's
10.1.0.12 is answered by red's 10.1.0.12. A pair on one link counts as reachable only if the ping
succeeded AND the source's neighbour entry for that address afterwards holds the destination's own MAC.
A routed pair leaves no such trace at the source, so the destination itself testifies: it is pinged by
one source at a time, and it counts only if the ping succeeded AND the destination's own stack counted
the echo requests (its /proc/net/snmp). A destination address that is one of the source's own is "same
address": not reachable, nothing sent.
"""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table
from rich.text import Text

from netweave.lab import netns
from netweave.lab.api import Endpoint

PING_COUNT = 3
PING = ["ping", "-n", "-c", str(PING_COUNT), "-i", "0.2", "-W", "1"]
WORKERS = 16


@dataclass(frozen=True)
class Pair:
    src: Endpoint
    dst: Endpoint
    expected: bool
    measured: bool
    note: str = ""  # why measured is False without a ping answer: "same address", "no address"

    @property
    def ok(self) -> bool:
        return self.expected == self.measured


def _ping(ns: str, ip: str) -> bool:
    try:
        r = subprocess.run(
            ["ip", "netns", "exec", ns, *PING, ip], capture_output=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def measurable(endpoints: list[Endpoint]) -> tuple[list[Endpoint], list[Endpoint]]:
    """(endpoints with an address, endpoints without one): a port without a fixed IP cannot be pinged,
    so it is left out of the matrix (and named) rather than reported as a failure."""
    return [e for e in endpoints if e.target], [e for e in endpoints if not e.target]


def measure(endpoints: list[Endpoint], workers: int = WORKERS) -> list[Pair]:
    """Ping every ordered pair concurrently, then read each source's neighbour table once."""
    own = {e.port_id: netns.addresses(e.netns) | {ip for ip, _ in e.addresses} for e in endpoints}
    jobs = [(a, b) for a in endpoints for b in endpoints if a.port_id != b.port_id]

    def one(job: tuple[Endpoint, Endpoint]) -> tuple[bool, str]:
        a, b = job
        if b.target is None:
            return False, "no address"
        if b.target in own[a.port_id]:
            return False, "same address"
        return _ping(a.netns, b.target), ""

    def routed(job: tuple[Endpoint, Endpoint]) -> bool:
        a, b = job
        return b.target is not None and b.target not in own[a.port_id] and not a.on_link(b.target)

    def witnessed(job: tuple[Endpoint, Endpoint]) -> tuple[bool, str]:
        b = job[1]
        before = netns.echoes_received(b.netns)
        replied, _ = one(job)
        received = netns.echoes_received(b.netns) - before
        if replied and received < PING_COUNT:
            return False, "answered, but not by this VM"
        return replied, ""

    results: dict[tuple[str, str], tuple[bool, str]] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        on_link = [j for j in jobs if not routed(j)]
        for job, res in zip(on_link, pool.map(one, on_link), strict=True):
            results[job[0].port_id, job[1].port_id] = res
        for round_jobs in _rounds([j for j in jobs if routed(j)]):
            for job, res in zip(round_jobs, pool.map(witnessed, round_jobs), strict=True):
                results[job[0].port_id, job[1].port_id] = res
    neigh = {e.netns: netns.neighbours(e.netns) for e in endpoints}
    pairs = []
    for a, b in jobs:
        replied, why = results[a.port_id, b.port_id]
        if routed((a, b)):
            reached = replied
        else:
            reached = replied and b.target is not None and neigh[a.netns].get(b.target) == b.mac
            if replied and not reached:
                why = f"answered by {neigh[a.netns].get(b.target or '', 'an unknown MAC')}"
        pairs.append(Pair(a, b, expected=a.connected(b), measured=reached, note=why))
    return pairs


def _rounds(jobs: list[tuple[Endpoint, Endpoint]]) -> list[list[tuple[Endpoint, Endpoint]]]:
    """`jobs` in rounds where no destination appears twice (its packet counter then tells one source's
    pings from another's)."""
    by_dst: dict[str, list[tuple[Endpoint, Endpoint]]] = {}
    for job in jobs:
        by_dst.setdefault(job[1].port_id, []).append(job)
    depth = max((len(v) for v in by_dst.values()), default=0)
    return [[v[k] for v in by_dst.values() if k < len(v)] for k in range(depth)]


def mismatches(pairs: list[Pair]) -> int:
    return sum(not p.ok for p in pairs)


def as_json(lab: str, pairs: list[Pair], extra: dict[str, object] | None = None) -> str:
    return json.dumps(
        {
            "lab": lab,
            "pairs": [
                {"src": p.src.name, "dst": p.dst.name, "expected": p.expected, "measured": p.measured}
                for p in pairs
            ],
            "mismatches": mismatches(pairs),
            **(extra or {}),
        },
        indent=2,
    )


def _mark(reachable: bool) -> str:
    return "✓" if reachable else "·"


def render(console: Console, lab: str, endpoints: list[Endpoint], pairs: list[Pair]) -> None:
    """Rows are sources, columns destinations: green ✓ (reached) / · (isolated) when as expected,
    red ✗ expected/measured when not; then one summary line."""
    cell = {(p.src.port_id, p.dst.port_id): p for p in pairs}
    table = Table(title=f"lab {lab}: connectivity (row pings column)", title_justify="left")
    table.add_column("from \\ to", no_wrap=True)
    for e in endpoints:
        table.add_column(e.name, justify="center", no_wrap=True)
    for a in endpoints:
        label = Text(a.name, style="bold")
        label.append(f" {a.network or a.network_id[:8]} {a.target or '-'} @{a.host}", style="dim")
        row: list[Text] = [label]
        for b in endpoints:
            p = cell.get((a.port_id, b.port_id))
            if p is None:
                row.append(Text("—", style="dim"))
            elif p.ok:
                row.append(Text(_mark(p.measured), style="green"))
            else:
                row.append(Text(f"✗ {_mark(p.expected)}/{_mark(p.measured)}", style="bold red"))
        table.add_row(*row)
    # a pipe or a log gets the whole table; a terminal keeps its own width (rich squeezes the columns)
    if not console.is_terminal:
        console.width = max(console.width, _width(table, console))
    console.print(table)
    bad = [p for p in pairs if not p.ok]
    for p in bad:
        want = "reachable" if p.expected else "isolated"
        got = "reached" if p.measured else "not reached"
        console.print(
            f"[red]✗[/] {p.src.name} → {p.dst.name} ({p.dst.target}): expected {want}, {got}"
            + (f" ({p.note})" if p.note else ""),
            soft_wrap=True,
        )
    reach = sum(p.ok and p.expected for p in pairs)
    iso = sum(p.ok and not p.expected for p in pairs)
    style = "red" if bad else "green"
    console.print(
        f"[{style}]{len(pairs)} pairs: {reach} reachable and {iso} isolated as expected, "
        f"{len(bad)} mismatch{'es' if len(bad) != 1 else ''}[/]",
        soft_wrap=True,
    )
    console.print("[dim]✓ reachable  · isolated  ✗ e/m: expected/measured differ[/]", soft_wrap=True)


def _width(table: Table, console: Console) -> int:
    """The width the table needs unsqueezed: its widest cells plus borders and padding."""
    return int(table.__rich_measure__(console, console.options.update_width(10_000)).maximum)
