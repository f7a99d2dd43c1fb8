"""Programming 10,000 remote MACs into the kernel: KernelDatapath.apply vs `bridge -batch` + `ip -batch`.

In a throw-away network namespace (removed at the end, also on failure): a VXLAN network made by
KernelDatapath, then 10,000 remote MACs - each a VXLAN fdb entry, a bridge static entry and a neighbour
entry for its IP - written from empty (a) by KernelDatapath.apply and (b) by iproute2's batch mode with
exactly the same entries, on identical devices. Then single-MAC changes at that scale through apply.
Each is measured ROUNDS times; the best (least disturbed) is compared, the medians are shown too.

Targets: (a) <= 3x (b); a one-MAC change < 10 ms (median).   Run as root:
    .venv/bin/python benchmarks/bench_kernel_fdb.py [--macs 10000]
"""

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from netweave.datapath.kernel import KernelDatapath, bridge_name, vxlan_name
from netweave.model import DatapathState, Network, Remote

ROUNDS = 3
CHANGES = 30
VTEP = "198.18.0.1"


def sh(*args: str) -> str:
    r = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def remotes(n: int, vni: int) -> tuple[Remote, ...]:
    return tuple(Remote(vni=vni, mac=f"02:10:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}:01",
                        vtep=f"198.18.{1 + i % 4}.{2 + i % 200}",
                        ips=(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",)) for i in range(n))


def count(ns: str, vni: int, prefix: str) -> tuple[int, int, int]:
    """(vxlan fdb entries, bridge static entries, neighbour entries) in the kernel."""
    fdb = sh("bridge", "-n", ns, "fdb", "show", "dev", vxlan_name(prefix, vni)).splitlines()
    neigh = sh("ip", "-n", ns, "neigh", "show", "dev", bridge_name(prefix, vni)).splitlines()
    return (sum(" self permanent" in line and not line.startswith("00:00:00:00:00:00") for line in fdb),
            sum(line.endswith("master " + bridge_name(prefix, vni) + " static") for line in fdb),
            len(neigh))


def ours(ns: str, net: Network, rs: tuple[Remote, ...]) -> float:
    dp = KernelDatapath(VTEP, netns=ns, prefix="nwb")
    try:
        dp.teardown()
        dp.apply(DatapathState(networks=(net,)))
        t = time.perf_counter()
        out = dp.apply(DatapathState(networks=(net,), remotes=rs))
        took = time.perf_counter() - t
        assert not out.get("write_errors"), out["write_errors"][:3]
        assert count(ns, net.vni, "nwb") == (len(rs),) * 3, count(ns, net.vni, "nwb")
        return took
    finally:
        dp.close()


def baseline(ns: str, net: Network, rs: tuple[Remote, ...], tmp: Path) -> float:
    dp = KernelDatapath(VTEP, netns=ns, prefix="nwb")
    try:
        dp.teardown()
        dp.apply(DatapathState(networks=(net,)))  # the same devices, made the same way
    finally:
        dp.close()
    vx, br = vxlan_name("nwb", net.vni), bridge_name("nwb", net.vni)
    fdb, neigh = tmp / "fdb.batch", tmp / "neigh.batch"
    with fdb.open("w") as f:
        for r in rs:
            f.write(f"fdb replace {r.mac} dev {vx} dst {r.vtep} self permanent\n")
            f.write(f"fdb replace {r.mac} dev {vx} master static\n")
    with neigh.open("w") as f:
        for r in rs:
            f.write(f"neigh replace {r.ips[0]} lladdr {r.mac} dev {br} nud permanent\n")
    t = time.perf_counter()
    sh("bridge", "-n", ns, "-batch", str(fdb))
    sh("ip", "-n", ns, "-batch", str(neigh))
    took = time.perf_counter() - t
    assert count(ns, net.vni, "nwb") == (len(rs),) * 3
    return took


def changes(ns: str, net: Network, rs: tuple[Remote, ...]) -> tuple[float, list[float]]:
    """A new datapath over what the last round installed (an agent restart: it reads the kernel, then
    writes nothing), then one remote MAC replaced by another per apply."""
    dp = KernelDatapath(VTEP, netns=ns, prefix="nwb")
    try:
        current = list(rs)
        t = time.perf_counter()
        out = dp.apply(DatapathState(networks=(net,), remotes=tuple(current)))
        restart = time.perf_counter() - t
        assert out["writes"] == 0, f"{out['writes']} writes, {out['changes']} changes"
        times = []
        for i in range(CHANGES):
            at = i * 97 % len(current)
            old = current[at]
            current[at] = Remote(vni=old.vni, mac=f"02:20:00:00:{i >> 8:02x}:{i & 255:02x}", vtep=old.vtep,
                                 ips=old.ips)
            want = DatapathState(networks=(net,), remotes=tuple(current))
            t = time.perf_counter()
            out = dp.apply(want)
            times.append(time.perf_counter() - t)
            assert out["writes"] == 5, out["writes"]  # 2 fdb entries out, 2 in, the neighbour entry replaced
        assert count(ns, net.vni, "nwb") == (len(rs),) * 3
        return restart, times
    finally:
        dp.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--macs", type=int, default=10_000)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (it makes a network namespace)", file=sys.stderr)
        return 2
    ns = "nwbench" + secrets.token_hex(3)
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
        sh("ip", "-n", ns, "addr", "add", f"{VTEP}/16", "dev", "ul0")
        sh("ip", "-n", ns, "link", "set", "ul0", "up")
        net = Network(vni=100, mode="static", flood=("198.18.1.2", "198.18.2.2"), unknown_arp="flood",
                      unknown_unicast="drop")
        rs = remotes(args.macs, net.vni)
        with tempfile.TemporaryDirectory(prefix="nwbench") as tmp:
            ours_s, base_s = [], []
            for _ in range(ROUNDS):  # interleaved, so a noisy moment hits both
                base_s.append(baseline(ns, net, rs, Path(tmp)))
                ours_s.append(ours(ns, net, rs))
        restart, one = changes(ns, net, rs)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    ratio = min(ours_s) / min(base_s)
    med = statistics.median(one)
    print(f"{args.macs} remote MACs = {3 * args.macs} kernel entries (vxlan fdb + bridge static + neighbour)")
    print(f"  bridge -batch + ip -batch   best {min(base_s) * 1e3:8.1f} ms   median "
          f"{statistics.median(base_s) * 1e3:8.1f} ms")
    print(f"  KernelDatapath.apply        best {min(ours_s) * 1e3:8.1f} ms   median "
          f"{statistics.median(ours_s) * 1e3:8.1f} ms")
    print(f"  ratio {ratio:.2f}x (target <= 3x): {'PASS' if ratio <= 3 else 'MISS'}")
    print(f"restart: a new KernelDatapath reads the kernel and applies the same state: "
          f"{restart * 1e3:.1f} ms, 0 writes")
    print(f"one MAC changed at that scale ({CHANGES} times, 5 writes each): median {med * 1e3:.2f} ms, "
          f"max {max(one) * 1e3:.2f} ms (target < 10 ms): {'PASS' if med < 0.010 else 'MISS'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
