"""Controller API throughput: create ports across networks over HTTP, then list them with pagination.

For each store (SQLite file; PostgreSQL when Debian's postgresql is installed: a throw-away cluster on
127.0.0.1), a real `netweave controller` process is started and driven over HTTP by N concurrent clients.
Prints requests per second and p50/p99 latency of port creation, and the time to page through every port.
Defaults are the issue's sizes (10,000 ports over 100 networks); `--ports`/`--networks` make it smaller.
Run: `.venv/bin/python benchmarks/bench_api.py [--ports 10000] [--networks 100] [--clients 8]`.
"""

import argparse
import contextlib
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

NETWEAVE = str(Path(sys.executable).parent / "netweave")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def controller(db_url: str) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [NETWEAVE, "controller", "--db", db_url, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "controller exited")
            with contextlib.suppress(httpx.TransportError):
                httpx.get(url + "/", timeout=1)
                break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not bins:
        raise RuntimeError("Debian's postgresql package is not installed")
    bindir = bins[-1].parent
    tmp = Path(tempfile.mkdtemp(prefix="nwpg"))
    shutil.chown(tmp, "postgres")
    data, port = tmp / "data", free_port()
    run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
        check=True,
        capture_output=True,
        cwd=tmp,
    )
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "start", "-l", str(tmp / "log")],
        check=True,
        capture_output=True,
        cwd=tmp,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            cwd=tmp,
            check=False,
        )
        shutil.rmtree(tmp, ignore_errors=True)


def bench(url: str, n_ports: int, n_networks: int, clients: int) -> dict[str, float]:
    with httpx.Client(base_url=url, timeout=60) as c:
        nets = []
        for i in range(n_networks):
            net = c.post("/v2.0/networks", json={"network": {"name": f"n{i}"}}).json()["network"]
            c.post(
                "/v2.0/subnets",
                json={
                    "subnet": {
                        "network_id": net["id"],
                        "ip_version": 4,
                        "cidr": f"10.{i // 256}.{i % 256}.0/24",
                    }
                },
            ).raise_for_status()
            nets.append(net["id"])
    per_client = [list(range(k, n_ports, clients)) for k in range(clients)]
    latencies: list[float] = []
    failures = 0

    def work(indices: list[int]) -> tuple[list[float], int]:
        lat, bad = [], 0
        with httpx.Client(base_url=url, timeout=60) as c:
            for i in indices:
                t = time.perf_counter()
                r = c.post(
                    "/v2.0/ports", json={"port": {"network_id": nets[i % n_networks], "name": f"p{i}"}}
                )
                lat.append(time.perf_counter() - t)
                bad += r.status_code != 201
        return lat, bad

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for lat, bad in pool.map(work, per_client):
            latencies += lat
            failures += bad
    elapsed = time.perf_counter() - start
    latencies.sort()
    t = time.perf_counter()
    seen, next_url = 0, "/v2.0/ports?limit=1000"
    with httpx.Client(base_url=url, timeout=120) as c:
        while next_url:
            page = c.get(next_url).json()
            seen += len(page["ports"])
            links = [lnk["href"] for lnk in page.get("ports_links", []) if lnk["rel"] == "next"]
            next_url = links[0] if links else ""
    list_s = time.perf_counter() - t
    if seen != n_ports - failures:
        raise RuntimeError(f"listed {seen} ports, created {n_ports - failures}")
    return {
        "create_rps": n_ports / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "failures": failures,
        "list_all_s": list_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ports", type=int, default=10000)
    ap.add_argument("--networks", type=int, default=100)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--only", default="sqlite,postgresql")
    args = ap.parse_args()
    results = {}
    for store in args.only.split(","):
        try:
            if store == "sqlite":
                with tempfile.TemporaryDirectory() as d, controller(f"sqlite:///{d}/bench.db") as url:
                    results[store] = bench(url, args.ports, args.networks, args.clients)
            else:
                with postgres() as db, controller(db) as url:
                    results[store] = bench(url, args.ports, args.networks, args.clients)
        except Exception as exc:  # one store failing must not hide the other's figures
            results[store] = {"error": " ".join(str(exc).split())}
        print(f"{store}: {json.dumps(results[store])}", file=sys.stderr, flush=True)
    print(f"{args.ports} ports over {args.networks} networks, {args.clients} concurrent HTTP clients")
    for store, r in results.items():
        if "error" in r:
            print(f"  {store:10s} not measured: {r['error']}")
            continue
        print(
            f"  {store:10s} create {r['create_rps']:7.1f} req/s  p50 {r['p50_ms']:6.1f} ms"
            f"  p99 {r['p99_ms']:7.1f} ms  failures {r['failures']:.0f}"
            f"  list all (pages of 1000) {r['list_all_s']:.2f} s"
        )


if __name__ == "__main__":
    main()
