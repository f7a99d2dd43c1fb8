"""Classic libpcap files: write and read (microsecond and nanosecond variants, either byte order).

Used by tests that hand our frames to tshark and by capture tools. The file headers are declared like
every other header; only their byte order differs (pcap files are in the writer's native order).
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

from netweave.packet.errors import DecodeError
from netweave.packet.header import U16, U32, Header

LINKTYPE_ETHERNET = 1
MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D


class PcapFileHeader(Header):
    _byteorder: ClassVar[str] = "<"
    magic: U32 = MAGIC_US
    version_major: U16 = 2
    version_minor: U16 = 4
    thiszone: U32 = 0
    sigfigs: U32 = 0
    snaplen: U32 = 262144
    linktype: U32 = LINKTYPE_ETHERNET


class PcapFileHeaderBE(PcapFileHeader):
    _byteorder: ClassVar[str] = ">"


class PcapRecordHeader(Header):
    _byteorder: ClassVar[str] = "<"
    ts_sec: U32 = 0
    ts_frac: U32 = 0
    incl_len: U32 = 0
    orig_len: U32 = 0


class PcapRecordHeaderBE(PcapRecordHeader):
    _byteorder: ClassVar[str] = ">"


@dataclass(frozen=True)
class PcapRecord:
    timestamp: float
    data: bytes
    orig_len: int


class PcapWriter:
    """Append frames to a new pcap file (little-endian, microsecond timestamps)."""

    def __init__(self, path: str | Path, *, linktype: int = LINKTYPE_ETHERNET, snaplen: int = 262144) -> None:
        self._f: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed by close()/__exit__
        self._snaplen = snaplen
        self._f.write(PcapFileHeader(linktype=linktype, snaplen=snaplen).build())

    def write(self, frame: bytes, timestamp: float | None = None) -> None:
        ts = time.time() if timestamp is None else timestamp
        sec = int(ts)
        usec = min(round((ts - sec) * 1_000_000), 999_999)
        data = frame[: self._snaplen]
        rec = PcapRecordHeader(ts_sec=sec, ts_frac=usec, incl_len=len(data), orig_len=len(frame))
        self._f.write(rec.build() + data)

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "PcapWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_pcap(path: str | Path, frames: list[bytes], *, start: float = 1_700_000_000.0) -> None:
    """Write `frames` one microsecond apart (deterministic timestamps make golden files possible)."""
    with PcapWriter(path) as w:
        for i, frame in enumerate(frames):
            w.write(frame, start + i / 1_000_000)


def iter_pcap(data: bytes) -> Iterator[PcapRecord]:
    """Records of a pcap file's bytes; DecodeError on a bad header or a truncated record."""
    magic_le = int.from_bytes(data[:4], "little") if len(data) >= 4 else 0
    if magic_le in (MAGIC_US, MAGIC_NS):
        fh_cls: type[PcapFileHeader] = PcapFileHeader
        rec_cls: type[PcapRecordHeader] = PcapRecordHeader
    elif len(data) >= 4 and int.from_bytes(data[:4], "big") in (MAGIC_US, MAGIC_NS):
        fh_cls, rec_cls = PcapFileHeaderBE, PcapRecordHeaderBE
    else:
        raise DecodeError("not a classic pcap file (bad magic)")
    fh, off, _ = fh_cls.parse(data)
    scale = 1e-9 if fh.magic == MAGIC_NS else 1e-6
    while off < len(data):
        rec, off, _ = rec_cls.parse(data, off)
        if off + rec.incl_len > len(data):
            raise DecodeError("pcap record truncated")
        yield PcapRecord(rec.ts_sec + rec.ts_frac * scale, data[off : off + rec.incl_len], rec.orig_len)
        off += rec.incl_len


def read_pcap(path: str | Path) -> list[PcapRecord]:
    return list(iter_pcap(Path(path).read_bytes()))
