"""Fuzz every decoder: random bytes, every truncation and single-bit flips of valid frames.

The contract (DESIGN.md): decoding bad bytes raises DecodeError and nothing else, ever. The flow hash
must not raise at all: it runs on every frame the datapath sees before anything validated it.
"""

import contextlib
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netweave.packet import (
    DecodeError,
    GeneveOption,
    Lacpdu,
    decapsulate,
    decode,
    encapsulate,
    flow_hash,
)
from netweave.packet.ip import ipv6_upper_layer
from netweave.packet.pcap import iter_pcap, write_pcap

from .strategies import HEADERS


def _inner() -> bytes:
    from netweave.packet import Ethernet, IcmpEcho, IPv4, build_stack

    return build_stack([Ethernet(src="02:00:00:00:00:01", dst="02:00:00:00:00:02"),
                        IPv4(src="10.0.0.1", dst="10.0.0.2", proto=1), IcmpEcho(ident=7, seq=1)], b"ping" * 8)


def valid_frames() -> list[bytes]:
    inner = _inner()
    frames = [inner, Lacpdu(actor_system="02:00:00:00:00:01").build()]
    opt = [GeneveOption(option_class=0x0102, type=0x80, data=b"\x00\x01\x02\x03")]
    for encap in ("vxlan", "geneve", "gre", "nvgre", "stt"):
        for src, dst in (("192.0.2.1", "192.0.2.2"), ("2001:db8::1", "2001:db8::2")):
            frames.append(encapsulate(inner, encap=encap, vni=4242, src_ip=src, dst_ip=dst,
                                      options=opt if encap == "geneve" else ()))
    return frames


def _parse_all(cls: type) -> Callable[[bytes], object]:
    return cls.parse  # type: ignore[no-any-return]


DECODERS: dict[str, Callable[[bytes], object]] = {
    "decode": decode,
    "decapsulate": decapsulate,
    "decapsulate-nvgre": lambda b: decapsulate(b, gre_encap="nvgre"),
    "ipv6_upper_layer": lambda b: ipv6_upper_layer(b, 0),
    "pcap": lambda b: list(iter_pcap(b)),
    **{f"{cls.__name__}.parse": _parse_all(cls) for cls in HEADERS},
}


def only_decode_error(fn: Callable[[bytes], object], data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        fn(data)


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_random_bytes_raise_only_decode_error(name: str) -> None:
    rng = random.Random(name)
    fn = DECODERS[name]
    for _ in range(2000):
        only_decode_error(fn, rng.randbytes(rng.randrange(0, 200)))


@pytest.mark.parametrize("name", ["decode", "decapsulate", "decapsulate-nvgre"])
def test_truncations_and_bit_flips_of_valid_frames(name: str) -> None:
    fn = DECODERS[name]
    rng = random.Random(7)
    cases = 0
    for frame in valid_frames():
        for n in range(len(frame)):
            only_decode_error(fn, frame[:n])
            cases += 1
        for _ in range(300):
            buf = bytearray(frame)
            bit = rng.randrange(len(buf) * 8)
            buf[bit // 8] ^= 1 << (bit % 8)
            only_decode_error(fn, bytes(buf))
            cases += 1
    assert cases > 5000


def test_truncated_pcap_records() -> None:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.pcap"
        write_pcap(path, valid_frames()[:3])
        data = path.read_bytes()
    for n in range(len(data)):
        only_decode_error(DECODERS["pcap"], data[:n])


@settings(max_examples=3000)
@given(st.binary(max_size=300))
def test_hypothesis_bytes_decode(data: bytes) -> None:
    only_decode_error(decode, data)
    only_decode_error(decapsulate, data)
    assert 0 <= flow_hash(data) < 1 << 32  # never raises, whatever the bytes


def test_flow_hash_never_raises_on_truncations() -> None:
    for frame in valid_frames():
        for n in range(len(frame)):
            flow_hash(frame[:n])
