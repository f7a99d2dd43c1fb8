"""Codec throughput: encapsulate + decapsulate of a 1,400-byte TCP frame, NetWeave vs scapy.

Both run on the same inner frames, in the same process, one after the other, and the ratio is printed:
the target is NetWeave >= 20x scapy. Run: `python benchmarks/bench_codec.py [--seconds S]`.
scapy does the same work: build Ether/IP/UDP/VXLAN around the inner bytes, then parse the frame and take
the VXLAN payload out. Each side's result is checked against the other once, so the work is comparable.
"""

import argparse
import json
import time
from collections.abc import Callable

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN
from scapy.packet import Raw

from netweave.packet import decapsulate, encapsulate, entropy_port, flow_hash

OUTER_SRC_MAC, OUTER_DST_MAC = "02:00:00:00:aa:01", "02:00:00:00:aa:02"


def inner_frames(n: int = 64) -> list[bytes]:
    """n distinct 1,400-byte TCP frames (different ports, so different flows)."""
    frames = []
    for i in range(n):
        pkt = (
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            / IP(src="10.0.0.1", dst="10.0.0.2")
            / TCP(sport=10000 + i, dport=80, flags="PA")
        )
        pad = 1400 - len(pkt)
        frames.append(bytes(pkt / Raw(bytes(pad))))
    assert all(len(f) == 1400 for f in frames)
    return frames


def ours(frames: list[bytes], v6: bool) -> Callable[[bytes], bytes]:
    src, dst = ("2001:db8::1", "2001:db8::2") if v6 else ("192.0.2.1", "192.0.2.2")

    def run(inner: bytes) -> bytes:
        outer = encapsulate(
            inner,
            encap="vxlan",
            vni=5000,
            src_ip=src,
            dst_ip=dst,
            src_mac=OUTER_SRC_MAC,
            dst_mac=OUTER_DST_MAC,
        )
        return decapsulate(outer).inner

    return run


def scapy(frames: list[bytes], v6: bool) -> Callable[[bytes], bytes]:
    def run(inner: bytes) -> bytes:
        ip = IPv6(src="2001:db8::1", dst="2001:db8::2") if v6 else IP(src="192.0.2.1", dst="192.0.2.2")
        sport = entropy_port(flow_hash(inner))
        outer = bytes(
            Ether(src=OUTER_SRC_MAC, dst=OUTER_DST_MAC)
            / ip
            / UDP(sport=sport, dport=4789)
            / VXLAN(vni=5000)
            / Raw(inner)
        )
        return bytes(Ether(outer)[VXLAN].payload)

    return run


def measure(fn: Callable[[bytes], bytes], frames: list[bytes], seconds: float) -> float:
    done, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for f in frames:
            fn(f)
        done += len(frames)
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    frames = inner_frames()
    results = []
    for v6 in (False, True):
        o, s = ours(frames, v6), scapy(frames, v6)
        for f in frames[:4]:  # same work: both must hand back the very frame they were given
            assert o(f) == f and s(f) == f
        s_fps = measure(s, frames, args.seconds)
        o_fps = measure(o, frames, args.seconds)
        results.append(
            {
                "underlay": "ipv6" if v6 else "ipv4",
                "netweave_fps": round(o_fps),
                "scapy_fps": round(s_fps),
                "ratio": round(o_fps / s_fps, 1),
            }
        )
    if args.json:
        print(json.dumps(results))
        return
    print("VXLAN encapsulate + decapsulate of a 1,400-byte TCP frame (frames per second, one core)")
    for r in results:
        print(
            f"  {r['underlay']} underlay: netweave {r['netweave_fps']:>8,}  scapy {r['scapy_fps']:>6,}"
            f"  ratio {r['ratio']}x (target >= 20x)"
        )


if __name__ == "__main__":
    main()
