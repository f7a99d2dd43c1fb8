"""The outer UDP source port: hashed from the inner flow by default, pinned with fixed_source_port."""

import struct
from typing import Any

from netweave.datapath.userspace import SPORT_BASE, _Encapsulator, sport_of
from netweave.model import Network
from netweave.packet import flow_hash


def frame(sport: int) -> bytes:
    """Ethernet + IPv4 + UDP from 10.0.0.1:sport to 10.0.0.2:80."""
    ip = bytes.fromhex("4500001c00004000401100000a0000010a000002")
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + struct.pack("!HHHH", sport, 80, 8, 0)


class FakeSockets:
    """What _Encapsulator uses of UnderlaySockets: one sender per (remote, ports), recording."""

    generation = 0

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, int, bytes]] = []

    def udp_sender(self, dst: str, dport: int, sport: int) -> Any:
        def send(payload: bytes) -> int:
            self.sent.append((dst, dport, sport, payload))
            return len(payload)

        return send


def outer_ports(fixed: int | None) -> set[int]:
    sockets: Any = FakeSockets()
    enc = _Encapsulator(Network(vni=5000, encap="vxlan"), sockets, fixed)
    for sport in range(1000, 1032):
        enc.send(frame(sport), "198.18.0.2")
    assert all(dst == "198.18.0.2" and dport == 4789 for dst, dport, _, _ in sockets.sent)
    return {sport for _, _, sport, _ in sockets.sent}


def test_source_port_follows_the_inner_flow_by_default() -> None:
    ports = outer_ports(None)
    assert len(ports) > 16 and all(49152 <= p <= 65535 for p in ports)


def test_source_port_is_the_flow_hash_bucket() -> None:
    sockets: Any = FakeSockets()
    enc = _Encapsulator(Network(vni=5000, encap="vxlan"), sockets)
    enc.send(frame(1234), "198.18.0.2")
    assert sockets.sent[0][2] == sport_of(flow_hash(frame(1234))) >= SPORT_BASE


def test_fixed_source_port_pins_it() -> None:
    assert outer_ports(40000) == {40000}
