"""Where the userspace VTEPs spend their time: py-spy on both `netweave vtep` processes of the
bench_datapath topology while iperf3 runs 64-byte UDP (or TCP) VM to VM.

Run as root: `.venv/bin/python benchmarks/profile_datapath.py [--seconds 10] [--tcp] [--relay]`. Prints,
per process, the share of samples per line of the packet path (self time: the line that was running,
which for a syscall is the line that made it) and per function (inclusive).
"""

import argparse
import collections
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.netns.topo import iperf_json

import bench_datapath as bd

PY_SPY = str(Path(sys.executable).parent / "py-spy")


def summarize(raw: str, top: int) -> None:
    lines: collections.Counter[str] = collections.Counter()
    funcs: collections.Counter[str] = collections.Counter()
    total = 0
    for row in raw.splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        lines[frames[-1]] += n
        for f in set(fr.split(" (")[0] for fr in frames):
            funcs[f] += n
    print(f"  {total} samples; self time by line:")
    for k, v in lines.most_common(top):
        print(f"    {100 * v / total:5.1f}%  {k}")
    print("  inclusive by function:")
    for k, v in funcs.most_common(top):
        print(f"    {100 * v / total:5.1f}%  {k}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--tcp", action="store_true", help="one TCP stream instead of 64-byte UDP")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = ap.parse_args()
    with bd.two_hosts() as (topo, v1, v2):
        procs = []
        for i, vns in ((0, v1), (1, v2)):
            cfg = {"vtep_ip": bd.UL[i], "networks": [{"vni": bd.VNI, "flood": [bd.UL[1 - i]], "ports": [
                {"name": f"vm{i + 1}", "netns": vns, "mac": bd.MACS[i], "ip": bd.VM[i]}]}]}
            p, _ = topo.vtep(f"h{i + 1}", cfg)
            procs.append(p)
            topo.vm_addr(vns, f"vm{i + 1}", f"{bd.VM[i]}/24")
        assert topo.ping(v1, bd.VM[1], count=2)
        outs: dict[int, str] = {}

        def spy(pid: int) -> None:
            out = topo.tmp / f"spy{pid}.txt"
            subprocess.run([PY_SPY, "record", "--nonblocking", "-r", str(args.rate), "-d", str(args.seconds),
                            "-f", "raw", "-o", str(out), "-p", str(pid)], capture_output=True, check=False)
            outs[pid] = out.read_text() if out.exists() else ""

        threads = [threading.Thread(target=spy, args=(p.pid,)) for p in procs]
        for t in threads:
            t.start()
        extra = () if args.tcp else ("-u", "-l", "64", "-b", "0")
        r = iperf_json(topo, v1, v2, bd.VM[1], args.seconds + 1, *extra)
        for t in threads:
            t.join()
        print("iperf:", r["end"].get("sum_received", r["end"].get("sum")))
        for name, p in zip(("sender-side VTEP (TAP -> underlay)", "receiver-side VTEP (underlay -> TAP)"),
                           procs, strict=True):
            print(name)
            summarize(outs[p.pid], args.top)


if __name__ == "__main__":
    main()
