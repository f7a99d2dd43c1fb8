"""The outer UDP source port: hashed from the inner flow by default, pinned with fixed_source_port."""

import struct
from types import SimpleNamespace
from typing import Any

from netweave.datapath.userspace import _Encapsulator
from netweave.model import Network


def frame(sport: int) -> bytes:
    """Ethernet + IPv4 + UDP from 10.0.0.1:sport to 10.0.0.2:80."""
    ip = bytes.fromhex("4500001c00004000401100000a0000010a000002")
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + struct.pack("!HHHH", sport, 80, 8, 0)


def outer_ports(fixed: int | None) -> set[int]:
    sent: list[bytes] = []

    def sendto(data: bytes, _addr: object) -> int:
        sent.append(data)
        return len(data)

    udp_tx: Any = SimpleNamespace(sendto=sendto)
    sockets: Any = SimpleNamespace(udp_tx=udp_tx)
    enc = _Encapsulator(Network(vni=5000, encap="vxlan"), sockets, fixed)
    for sport in range(1000, 1032):
        enc.send(frame(sport), "198.18.0.2")
    return {struct.unpack("!H", pkt[:2])[0] for pkt in sent}


def test_source_port_follows_the_inner_flow_by_default() -> None:
    ports = outer_ports(None)
    assert len(ports) > 16 and all(49152 <= p <= 65535 for p in ports)


def test_fixed_source_port_pins_it() -> None:
    assert outer_ports(40000) == {40000}
