"""VM-to-VM throughput through every VTEP we can build here, all in one run, with ratios.

Paths (two hosts on one underlay segment, one VM namespace per host):
  bare      the underlay veth itself (host to host), the ceiling
  kernel    two Linux kernel VXLAN VTEPs (vxlan + bridge), VMs with tx offload off (MTU-sized frames)
  kernel+o  the same with offloads on (GSO/TSO: 64 KB super-frames), for the record
  ovs       two Open vSwitch userspace-datapath VTEPs (datapath_type=netdev, VXLAN ports)
  relay     a minimal TAP<->UDP relay with no logic (benchmarks/relay.py): the floor Python I/O sets
  netweave  two NetWeave userspace VTEPs (`netweave vtep`)
  nw-kernel NetWeave's kernel datapath (`netweave.datapath.kernel`, what `netweave agent --datapath
            kernel` programs) on both hosts: to be compared with kernel+o, the same kernel path built by
            hand (VMs keep their offloads in both)

For each: iperf3 TCP with 1 and 4 streams. For relay and netweave also frames per CPU-second of the two
forwarding processes (frames moved / their user+system CPU time), and for netweave 64-byte UDP packets
per second. Run as root: `.venv/bin/python benchmarks/bench_datapath.py [--seconds 5] [--only a,b]`.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# this checkout's code (or NETWEAVE_BENCH_SRC's, for before/after comparisons), in this process and in the
# VTEPs and relays it starts (`netweave vtep` is the venv's entry point, whose editable install may point at
# another checkout: PYTHONPATH comes before it)
SRC = os.environ.get("NETWEAVE_BENCH_SRC") or str(ROOT / "src")
sys.path.insert(0, SRC)
_PATH = os.environ.get("PYTHONPATH", "")
os.environ["PYTHONPATH"] = os.pathsep.join([SRC, *filter(None, _PATH.split(os.pathsep))])

from tests.netns.topo import Topology, iperf, iperf_json, kernel_vtep, sh  # noqa: E402

from netweave.vtep.control import request  # noqa: E402

UL = ("198.18.0.1", "198.18.0.2")
VM = ("10.42.0.1", "10.42.0.2")
VNI = 4202
MACS = ("02:00:00:00:42:01", "02:00:00:00:42:02")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_pid(pid: int) -> int:
    """`ip netns exec X cmd` execs cmd in place, so the PID is the command's own."""
    return pid


@contextlib.contextmanager
def two_hosts(underlay_mtu: int = 1500) -> Iterator[tuple[Topology, str, str]]:
    topo = Topology(underlay_mtu=underlay_mtu)
    try:
        topo.add_host("h1", 1)
        topo.add_host("h2", 2)
        v1, v2 = topo.ns("v1"), topo.ns("v2")
        yield topo, v1, v2
    finally:
        topo.close()


def streams(topo: Topology, c: str, s: str, ip: str, seconds: int) -> dict[str, float]:
    return {
        "tcp1_gbps": iperf(topo, c, s, ip, seconds) / 1e9,
        "tcp4_gbps": iperf(topo, c, s, ip, seconds, "-P", "4") / 1e9,
        "_seconds": seconds,
    }


def bench_bare(seconds: int) -> dict[str, float]:
    with two_hosts() as (topo, _, _):
        h1, h2 = topo.hosts["h1"], topo.hosts["h2"]
        return streams(topo, h1, h2, UL[1], seconds)


def bench_kernel(seconds: int, offload: bool) -> dict[str, float]:
    with two_hosts() as (topo, v1, v2):
        kernel_vtep(topo, "h1", UL[0], UL[1], VNI, v1, VM[0], offload=offload)
        kernel_vtep(topo, "h2", UL[1], UL[0], VNI, v2, VM[1], offload=offload)
        return streams(topo, v1, v2, VM[1], seconds)


def bench_nw_kernel(seconds: int) -> dict[str, float]:
    from netweave.datapath.kernel import KernelDatapath  # noqa: PLC0415 - only this path needs it
    from netweave.model import DatapathState, Network, Port, Remote  # noqa: PLC0415

    with two_hosts() as (topo, v1, v2):
        dps = []
        for i, vns in ((0, v1), (1, v2)):
            dp = KernelDatapath(UL[i], netns=topo.hosts[f"h{i + 1}"])
            dps.append(dp)
            result = dp.apply(
                DatapathState(
                    networks=(Network(vni=VNI, mode="static", flood=(UL[1 - i],), unknown_unicast="drop"),),
                    ports=(Port(name=f"vm{i + 1}", vni=VNI, mac=MACS[i], ips=(VM[i],), netns=vns),),
                    remotes=(Remote(vni=VNI, mac=MACS[1 - i], vtep=UL[1 - i], ips=(VM[1 - i],)),),
                )
            )
            assert not result["errors"], result
            topo.vm_addr(vns, f"vm{i + 1}", f"{VM[i]}/24")
        try:
            assert topo.ping(v1, VM[1], count=2)
            return streams(topo, v1, v2, VM[1], seconds)
        finally:
            for dp in dps:
                dp.close()


def _frames_and_cpu(
    pids: list[int], counter: Callable[[], int], run: Callable[[], dict[str, float]]
) -> dict[str, float]:
    cpu0 = sum(cpu_seconds(p) for p in pids)
    f0 = counter()
    out = run()
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    frames = counter() - f0
    out["frames_per_cpu_s"] = frames / cpu if cpu else 0.0
    if "tcp1_gbps" in out and cpu:
        # tenant bytes delivered per CPU-second: unlike frames, this does not depend on how many ACKs the
        # receiving VM sends (fewer when a datapath coalesces segments, see netweave.datapath.gro)
        mbytes = (out["tcp1_gbps"] + out["tcp4_gbps"]) * 1e3 / 8 * out.pop("_seconds")
        out["tcp_mbytes_per_cpu_s"] = mbytes / cpu
    return out


def udp64(
    topo: Topology, v1: str, v2: str, *, pids: list[int], frames: Callable[[], int], seconds: int
) -> dict[str, float]:
    """64-byte UDP VM to VM as fast as iperf3 sends: packets per second received, and frames per
    CPU-second of the two forwarding processes. Unlike the TCP runs, both directions' frame mix is the
    same whatever the datapath does (no ACKs, nothing to coalesce), so this is the fair per-frame cost."""
    got: dict[str, float] = {}

    def run() -> dict[str, float]:
        udp = iperf_json(topo, v1, v2, VM[1], seconds, "-u", "-l", "64", "-b", "0")
        s = udp["end"]["sum"]
        got["udp64_pps"] = (s["packets"] - s["lost_packets"]) / s["seconds"]
        return {}

    fpc = _frames_and_cpu(pids, frames, run)["frames_per_cpu_s"]
    return {"udp64_pps": got["udp64_pps"], "udp64_frames_per_cpu_s": fpc}


def bench_netweave(seconds: int, underlay_mtu: int = 1500) -> dict[str, float]:
    with two_hosts(underlay_mtu) as (topo, v1, v2):
        procs, socks = [], []
        for i, vns in ((0, v1), (1, v2)):
            cfg = {
                "vtep_ip": UL[i],
                "underlay_mtu": underlay_mtu,
                "networks": [
                    {
                        "vni": VNI,
                        "flood": [UL[1 - i]],
                        "ports": [{"name": f"vm{i + 1}", "netns": vns, "mac": MACS[i], "ip": VM[i]}],
                    }
                ],
            }
            p, s = topo.vtep(f"h{i + 1}", cfg)
            procs.append(p)
            socks.append(s)
            topo.vm_addr(vns, f"vm{i + 1}", f"{VM[i]}/24")

        def frames() -> int:
            total = 0
            for s in socks:
                st = request(s, "stats")
                total += sum(c["rx_frames"] for c in st["port"].values())
                total += sum(c["rx_frames"] for c in st["vni"].values())
            return total

        assert topo.ping(v1, VM[1], count=2)
        pids = [p.pid for p in procs]
        out = _frames_and_cpu(pids, frames, lambda: streams(topo, v1, v2, VM[1], seconds))
        out.update(udp64(topo, v1, v2, pids=pids, frames=frames, seconds=seconds))
        st = request(socks[0], "stats")
        out["flow_cache_hit_rate"] = st["flow_cache"]["hits"] / max(
            1, st["flow_cache"]["hits"] + st["flow_cache"]["misses"]
        )
        return out


def bench_relay(seconds: int) -> dict[str, float]:
    with two_hosts() as (topo, v1, v2):
        procs = []
        for i, vns in ((0, v1), (1, v2)):
            p = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    topo.hosts[f"h{i + 1}"],
                    sys.executable,
                    str(ROOT / "benchmarks" / "relay.py"),
                    f"vm{i + 1}",
                    vns,
                    MACS[i],
                    UL[1 - i],
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            topo.procs.append(p)
            topo.wait_ready(p)
            procs.append(p)
            topo.vm_addr(vns, f"vm{i + 1}", f"{VM[i]}/24")
        assert topo.ping(v1, VM[1], count=2)

        def frames() -> int:
            total = 0
            for p in procs:
                p.send_signal(signal.SIGUSR1)
                assert p.stdout is not None
                text = ""
                deadline = time.monotonic() + 5
                while "\n" not in text and time.monotonic() < deadline:
                    with contextlib.suppress(BlockingIOError, TypeError):
                        text += (p.stdout.read() or b"").decode()
                    time.sleep(0.02)
                total += int(text.split()[-1])
            return total

        pids = [p.pid for p in procs]
        out = _frames_and_cpu(pids, frames, lambda: streams(topo, v1, v2, VM[1], seconds))
        out.update(udp64(topo, v1, v2, pids=pids, frames=frames, seconds=seconds))
        return out


def bench_ovs(seconds: int, underlay_mtu: int = 1500) -> dict[str, float]:
    if shutil.which("ovs-vswitchd") is None:
        raise RuntimeError("openvswitch-switch is not installed")
    schema = "/usr/share/openvswitch/vswitch.ovsschema"
    with two_hosts(underlay_mtu) as (topo, v1, v2):
        pidfiles: list[Path] = []
        try:
            for i, vns in ((0, v1), (1, v2)):
                hns = topo.hosts[f"h{i + 1}"]
                d = topo.tmp / f"ovs{i}"
                d.mkdir()
                env = {**os.environ, "OVS_RUNDIR": str(d), "OVS_LOGDIR": str(d), "OVS_DBDIR": str(d)}

                def run(*args: str, env: dict[str, str] = env, hns: str = hns) -> None:
                    subprocess.run(
                        ["ip", "netns", "exec", hns, *args],
                        env=env,
                        check=True,
                        capture_output=True,
                        timeout=30,
                    )

                db = str(d / "conf.db")
                sock = f"unix:{d}/db.sock"
                subprocess.run(["ovsdb-tool", "create", db, schema], check=True, capture_output=True)
                run(
                    "ovsdb-server",
                    db,
                    f"--remote=p{sock}",
                    f"--pidfile={d}/ovsdb-server.pid",
                    f"--unixctl={d}/ovsdb-server.ctl",
                    f"--log-file={d}/ovsdb-server.log",
                    "--detach",
                )
                pidfiles.append(d / "ovsdb-server.pid")
                vsctl = ["ovs-vsctl", f"--db={sock}"]
                run(*vsctl, "--no-wait", "init")
                run(
                    "ovs-vswitchd",
                    sock,
                    f"--pidfile={d}/ovs-vswitchd.pid",
                    f"--unixctl={d}/ovs-vswitchd.ctl",
                    f"--log-file={d}/ovs-vswitchd.log",
                    "--detach",
                )
                pidfiles.append(d / "ovs-vswitchd.pid")
                run(*vsctl, "add-br", "br-ul", "--", "set", "bridge", "br-ul", "datapath_type=netdev")
                run(*vsctl, "add-port", "br-ul", "eth0")
                sh("ip", "-n", hns, "addr", "flush", "dev", "eth0")
                sh("ip", "-n", hns, "addr", "add", f"{UL[i]}/24", "dev", "br-ul")
                sh("ip", "-n", hns, "link", "set", "br-ul", "up")
                run(*vsctl, "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=netdev")
                sh(
                    "ip",
                    "-n",
                    hns,
                    "link",
                    "add",
                    "vmk",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    vns,
                )
                sh("ip", "-n", hns, "link", "set", "vmk", "up")
                run(*vsctl, "add-port", "br-int", "vmk")
                run(
                    *vsctl,
                    "add-port",
                    "br-int",
                    "vx0",
                    "--",
                    "set",
                    "interface",
                    "vx0",
                    "type=vxlan",
                    f"options:remote_ip={UL[1 - i]}",
                    f"options:local_ip={UL[i]}",
                    f"options:key={VNI}",
                )
                if underlay_mtu != 1500:
                    for dev in ("eth0", "br-ul", "vmk"):
                        run(*vsctl, "set", "interface", dev, f"mtu_request={underlay_mtu}")
                sh("ip", "-n", vns, "link", "set", "eth0", "mtu", str(underlay_mtu - 50), "up")
                sh("ip", "-n", vns, "addr", "add", f"{VM[i]}/24", "dev", "eth0")
                for ns, dev in ((vns, "eth0"), (hns, "vmk"), (hns, "eth0")):
                    sh("ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off")
            ok = any(topo.ping(v1, VM[1], count=2) for _ in range(5))
            if not ok:
                raise RuntimeError("OVS VTEPs do not forward")
            return streams(topo, v1, v2, VM[1], seconds)
        finally:
            for pf in pidfiles:
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pf.read_text().strip()), 15)
            time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument(
        "--only", default="bare,kernel,kernel+o,nw-kernel,ovs,relay,netweave,ovs-jumbo,netweave-jumbo"
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds, interleaved; each figure is the median over the rounds (shared cores are noisy)",
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    benches: dict[str, Callable[[], dict[str, float]]] = {
        "bare": lambda: bench_bare(args.seconds),
        "kernel": lambda: bench_kernel(args.seconds, offload=False),
        "kernel+o": lambda: bench_kernel(args.seconds, offload=True),
        "nw-kernel": lambda: bench_nw_kernel(args.seconds),
        "ovs": lambda: bench_ovs(args.seconds),
        "relay": lambda: bench_relay(args.seconds),
        "netweave": lambda: bench_netweave(args.seconds),
        "netweave-jumbo": lambda: bench_netweave(args.seconds, underlay_mtu=9000),
        "ovs-jumbo": lambda: bench_ovs(args.seconds, underlay_mtu=9000),
    }
    rounds: dict[str, list[dict[str, float]]] = {}
    errors: dict[str, str] = {}
    for _ in range(args.repeat):
        for name in args.only.split(","):
            if name in errors:
                continue
            try:
                r = benches[name]()
            except Exception as exc:  # a missing peer must not hide the other figures
                errors[name] = " ".join(str(exc).split())
                print(f"{name:9s} error: {errors[name]}", file=sys.stderr, flush=True)
                continue
            r.pop("_seconds", None)
            rounds.setdefault(name, []).append(r)
            print(f"{name:9s} {json.dumps(r)}", file=sys.stderr, flush=True)
    results: dict[str, Any] = {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in rounds.items()
    }
    results.update({name: {"error": e} for name, e in errors.items()})
    nw = results.get("netweave", {})
    ratios = {}
    for base in ("ovs", "kernel", "kernel+o", "bare"):
        b = results.get(base, {})
        if "tcp1_gbps" in b and "tcp1_gbps" in nw:
            ratios[f"netweave/{base} tcp1"] = nw["tcp1_gbps"] / b["tcp1_gbps"]
            ratios[f"netweave/{base} tcp4"] = nw["tcp4_gbps"] / b["tcp4_gbps"]
    nwj, ovsj = results.get("netweave-jumbo", {}), results.get("ovs-jumbo", {})
    if "tcp1_gbps" in nwj and "tcp1_gbps" in ovsj:
        ratios["netweave/ovs tcp1, 9000-byte underlay"] = nwj["tcp1_gbps"] / ovsj["tcp1_gbps"]
        ratios["netweave/ovs tcp4, 9000-byte underlay"] = nwj["tcp4_gbps"] / ovsj["tcp4_gbps"]
    nwk, ko, bare = results.get("nw-kernel", {}), results.get("kernel+o", {}), results.get("bare", {})
    for base_name, b in (("kernel+o", ko), ("bare", bare)):
        if "tcp1_gbps" in nwk and "tcp1_gbps" in b:
            ratios[f"nw-kernel/{base_name} tcp1"] = nwk["tcp1_gbps"] / b["tcp1_gbps"]
            ratios[f"nw-kernel/{base_name} tcp4"] = nwk["tcp4_gbps"] / b["tcp4_gbps"]
    relay = results.get("relay", {})
    if relay.get("frames_per_cpu_s") and nw.get("frames_per_cpu_s"):
        ratios["netweave/relay frames per CPU-second, TCP runs"] = (
            nw["frames_per_cpu_s"] / relay["frames_per_cpu_s"]
        )
    if relay.get("tcp_mbytes_per_cpu_s") and nw.get("tcp_mbytes_per_cpu_s"):
        ratios["netweave/relay tenant bytes per CPU-second, TCP runs"] = (
            nw["tcp_mbytes_per_cpu_s"] / relay["tcp_mbytes_per_cpu_s"]
        )
    if relay.get("udp64_frames_per_cpu_s") and nw.get("udp64_frames_per_cpu_s"):
        ratios["netweave/relay frames per CPU-second, 64-byte UDP"] = (
            nw["udp64_frames_per_cpu_s"] / relay["udp64_frames_per_cpu_s"]
        )
    if relay.get("udp64_pps") and nw.get("udp64_pps"):
        ratios["netweave/relay 64-byte UDP packets per second"] = nw["udp64_pps"] / relay["udp64_pps"]
    if args.json:
        print(json.dumps({"results": results, "ratios": ratios}, indent=2))
        return
    print(f"VM-to-VM iperf3 TCP (Gbit/s), median of {args.repeat} interleaved round(s), same machine")
    for name, r in results.items():
        if "error" in r:
            print(f"  {name:9s} not measured: {r['error']}")
            continue
        shown = ("frames_per_cpu_s", "tcp_mbytes_per_cpu_s", "udp64_pps", "udp64_frames_per_cpu_s")
        extra = "".join(f"  {k}={v:,.0f}" for k, v in r.items() if k in shown)
        print(f"  {name:9s} 1 stream {r['tcp1_gbps']:.3f}  4 streams {r['tcp4_gbps']:.3f}{extra}")
    print(
        "ratios (targets: netweave/ovs >= 1.0, netweave/relay frames per CPU-second >= 0.7, "
        "nw-kernel/kernel+o >= 0.95)"
    )
    for k, v in ratios.items():
        print(f"  {k}: {v:.2f}")


if __name__ == "__main__":
    main()
