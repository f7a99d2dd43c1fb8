"""The floor: a minimal TAP <-> VXLAN/UDP relay with no logic at all (benchmark baseline only).

It reads frames from a TAP and sends them to one peer with a fixed VXLAN header, and writes every
datagram's payload after the 8-byte header back to the TAP. Same TAP (netweave.datapath.tap) and the same
batching as the real datapath, so the difference to `netweave vtep` is the per-packet logic.
Run inside a host namespace: relay.py TAP NETNS MAC PEER_IP. Prints frames forwarded on SIGUSR1 (and
keeps going) and on SIGTERM.
"""

import os
import selectors
import signal
import socket
import sys

from netweave.datapath.tap import open_tap

HDR = bytes.fromhex("0800000000106a00")  # VXLAN, VNI 4202


def main() -> None:
    name, ns, mac, peer = sys.argv[1:5]
    tap = open_tap(name, ns, mac=mac, mtu=1450)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.bind(("0.0.0.0", 4789))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(tap.fd, selectors.EVENT_READ, "tap")
    sel.register(sock, selectors.EVENT_READ, "udp")
    frames = 0
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGUSR1, lambda *_: print(f"frames {frames}", flush=True))  # a reading, no stop
    print("ready", flush=True)
    dst = (peer, 4789)
    while running:
        for key, _ in sel.select(0.5):
            for _ in range(64):
                try:
                    if key.data == "tap":
                        sock.sendto(HDR + os.read(tap.fd, 65536), dst)
                    else:
                        os.write(tap.fd, sock.recv(65536)[8:])
                except BlockingIOError:
                    break
                except OSError:
                    continue
                frames += 1
    tap.close(remove=True)
    print(f"frames {frames}", flush=True)


if __name__ == "__main__":
    main()
