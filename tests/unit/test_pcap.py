"""Classic pcap files: our writer and reader agree, and they read files in either byte order."""

import struct
from pathlib import Path

import pytest

from netweave.packet import DecodeError, PcapWriter, read_pcap, write_pcap
from netweave.packet.pcap import MAGIC_NS, iter_pcap


def test_write_then_read(tmp_path: Path) -> None:
    frames = [bytes(range(60)), b"\xff" * 1514, b"\x01" * 14]
    write_pcap(tmp_path / "a.pcap", frames, start=1000.5)
    recs = read_pcap(tmp_path / "a.pcap")
    assert [r.data for r in recs] == frames
    assert recs[0].timestamp == pytest.approx(1000.5)
    assert recs[2].timestamp == pytest.approx(1000.5 + 2e-6)
    raw = (tmp_path / "a.pcap").read_bytes()
    assert raw[:4] == b"\xd4\xc3\xb2\xa1" and struct.unpack("<HH", raw[4:8]) == (2, 4)
    assert struct.unpack("<I", raw[20:24]) == (1,)  # LINKTYPE_ETHERNET


def test_snaplen_truncates_but_keeps_original_length(tmp_path: Path) -> None:
    with PcapWriter(tmp_path / "s.pcap", snaplen=100) as w:
        w.write(b"\xab" * 1000, 1.0)
    (rec,) = read_pcap(tmp_path / "s.pcap")
    assert len(rec.data) == 100 and rec.orig_len == 1000


def test_reads_big_endian_nanosecond_files() -> None:
    data = struct.pack(">IHHiIII", MAGIC_NS, 2, 4, 0, 0, 65535, 1)
    data += struct.pack(">IIII", 7, 500_000_000, 3, 3) + b"abc"
    (rec,) = list(iter_pcap(data))
    assert rec.data == b"abc" and rec.timestamp == pytest.approx(7.5)


def test_bad_files_raise_decode_error() -> None:
    with pytest.raises(DecodeError, match="magic"):
        list(iter_pcap(b"not a pcap file at all"))
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    with pytest.raises(DecodeError, match="truncated"):
        list(iter_pcap(header + struct.pack("<IIII", 0, 0, 50, 50) + b"short"))
