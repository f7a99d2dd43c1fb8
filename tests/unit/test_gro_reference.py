"""The coalescer against the implementation it replaced (kept here verbatim as the reference): on random
streams of segments, pure ACKs, PSH, reordering, odd sizes, other flows and frames that cannot merge, both
write exactly the same frames in the same order."""

import random
import struct

from netweave.datapath.gro import GSO_TCPV4, IP4, MAX_IP_LEN, PLAIN, TCP_OFF, VNET_HDR, Coalescer

ETH = 14
_ACK, _PSH = 0x10, 0x08


def _sum(data: bytes) -> int:
    """Ones' complement sum of 16-bit big-endian words, modulo 0xFFFF (2**16 == 1 mod 0xFFFF)."""
    if len(data) & 1:
        data += b"\x00"
    return int.from_bytes(data, "big") % 0xFFFF


class _RefFlow:
    __slots__ = ("count", "first", "key", "mss", "next_seq", "payload_len", "payload_sum", "payloads", "psh")

    def __init__(self, key: bytes, first: bytes, mss: int, seq: int, psum: int) -> None:
        self.key = key
        self.first = first  # the first segment: its headers become the frame's
        self.mss = mss
        self.next_seq = (seq + mss) & 0xFFFFFFFF
        self.payloads = [first[TCP_OFF + ((first[TCP_OFF + 12] >> 4) * 4):]]
        self.payload_len = mss
        self.payload_sum = psum
        self.count = 1
        self.psh = False


class ReferenceCoalescer:
    """Per TAP: `push(frame)` returns the frames to write now (with their virtio-net headers), holding
    at most one flow's segments back; `flush()` returns what is held. Call `flush()` at the end of every
    receive batch (and before any other write to the same TAP) so nothing waits for more traffic."""

    def __init__(self) -> None:
        self.flow: _RefFlow | None = None
        self.merged_segments = 0  # segments that went out inside a larger frame (for stats/tests)

    @staticmethod
    def _segment(frame: bytes) -> tuple[bytes, int, int, int, bool] | None:
        """(flow key, sequence number, payload length, payload sum, ends the frame) of a mergeable
        segment, or None."""
        if len(frame) < TCP_OFF + 20 or frame[12:14] != b"\x08\x00" or frame[14] != 0x45:
            return None
        if frame[23] != 6 or frame[20] != 0x40 or frame[21]:  # TCP, DF (IDs need not run), unfragmented
            return None
        doff = (frame[TCP_OFF + 12] >> 4) * 4
        flags = frame[TCP_OFF + 13]
        total = int.from_bytes(frame[16:18], "big")
        plen = total - IP4 - doff
        if doff < 20 or plen <= 0 or flags & ~(_ACK | _PSH) or not flags & _ACK or len(frame) != ETH + total:
            return None
        tcp_end = TCP_OFF + doff
        # the payload's sum follows from the segment's checksum: pseudo + header + payload == 0 (mod)
        pseudo = _sum(frame[26:34]) + 6 + doff + plen
        psum = -(pseudo + _sum(frame[TCP_OFF:tcp_end])) % 0xFFFF
        # what must be equal to merge: Ethernet header, TOS, DF/TTL, addresses and ports, ACK, data
        # offset and flags byte without PSH, window, options
        key = b"".join((frame[:14], frame[15:16], frame[20:21], frame[22:23], frame[26:38],
                        frame[42:46], bytes((frame[46], flags & ~_PSH)), frame[48:50], frame[54:tcp_end]))
        seq = int.from_bytes(frame[38:42], "big")
        return key, seq, plen, psum, bool(flags & _PSH)

    def push(self, frame: bytes) -> list[bytes]:
        if self.flow is None and (len(frame) < TCP_OFF + 20 or frame[23] != 6):
            return [PLAIN + frame]  # the common case of anything but TCP: no parsing at all
        seg = self._segment(frame)
        flow = self.flow
        if seg is None:
            out = self.flush()
            out.append(PLAIN + frame)
            return out
        key, seq, plen, psum, last = seg
        if (flow is not None and key == flow.key and seq == flow.next_seq and plen <= flow.mss
                and IP4 + len(frame) - TCP_OFF + flow.payload_len <= MAX_IP_LEN):
            # an odd-length run so far shifts this payload by one byte: its words swap bytes (* 256)
            flow.payload_sum = (flow.payload_sum + (psum * 256 if flow.payload_len & 1 else psum)) % 0xFFFF
            flow.payloads.append(frame[len(frame) - plen:])
            flow.payload_len += plen
            flow.next_seq = (seq + plen) & 0xFFFFFFFF
            flow.count += 1
            flow.psh = last
            if last or plen < flow.mss:
                return self.flush()
            return []
        out = self.flush()
        if last:
            out.append(PLAIN + frame)
            return out
        self.flow = _RefFlow(key, frame, plen, seq, psum)
        return out

    def flush(self) -> list[bytes]:
        flow, self.flow = self.flow, None
        if flow is None:
            return []
        first = flow.first
        if flow.count == 1:
            return [PLAIN + first]
        self.merged_segments += flow.count
        doff = (first[TCP_OFF + 12] >> 4) * 4
        tcp_end = TCP_OFF + doff
        total = IP4 + doff + flow.payload_len
        ip = bytearray(first[ETH:TCP_OFF])
        ip[2:4] = total.to_bytes(2, "big")
        ip[10:12] = b"\x00\x00"
        ip[10:12] = (~_sum(bytes(ip)) & 0xFFFF or 0xFFFF).to_bytes(2, "big")
        tcp = bytearray(first[TCP_OFF:tcp_end])
        tcp[16:18] = b"\x00\x00"
        if flow.psh:
            tcp[13] |= _PSH
        pseudo = _sum(first[26:34]) + 6 + doff + flow.payload_len
        check = -(pseudo + _sum(bytes(tcp)) + flow.payload_sum) % 0xFFFF
        tcp[16:18] = check.to_bytes(2, "big")
        hdr = VNET_HDR.pack(0, GSO_TCPV4, tcp_end, flow.mss, 0, 0)
        return [b"".join((hdr, first[:ETH], ip, tcp, *flow.payloads))]


def segment(rng: random.Random, flow: int, seq: int, plen: int, *, flags: int = _ACK, df: bool = True,
            opts: bytes = b"\x01\x01\x08\x0a" + bytes(8), ttl: int = 64) -> bytes:
    doff = 20 + len(opts)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + doff + plen, rng.randrange(65536), 0x4000 if df else 0,
                     ttl, 6, rng.randrange(65536), bytes((10, 0, 0, 1)), bytes((10, 0, 0, 2 + flow)))
    tcp = struct.pack("!HHIIBBHHH", 1000 + flow, 5201, seq, 7, (doff // 4) << 4, flags, 500,
                      rng.randrange(65536), 0) + opts
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + tcp + rng.randbytes(plen)


def stream(rng: random.Random, n: int) -> list[bytes]:
    seqs = [rng.randrange(1 << 32) for _ in range(3)]
    out = []
    for _ in range(n):
        flow = rng.choice((0, 0, 0, 0, 1, 2))
        r = rng.random()
        plen = rng.choice((1398, 1398, 1398, 1397, 700, 1)) if r < 0.9 else 0
        flags = _ACK | (_PSH if rng.random() < 0.05 else 0)
        if r > 0.97:
            out.append(bytes(60))  # not IPv4
            continue
        kw: dict[str, object] = {}
        if rng.random() < 0.03:
            kw["df"] = False
        if rng.random() < 0.03:
            kw["opts"] = b"\x01\x01\x08\x0a" + rng.randbytes(8)
        if rng.random() < 0.02:
            kw["ttl"] = 63
        seq = seqs[flow]
        if rng.random() < 0.03:
            seq = (seq + 1398) & 0xFFFFFFFF  # a gap: reordering or a loss
        out.append(segment(rng, flow, seq, plen, flags=flags, **kw))  # type: ignore[arg-type]
        seqs[flow] = (seq + plen) & 0xFFFFFFFF
    return out


def test_the_coalescer_writes_what_the_reference_writes() -> None:
    for run in range(40):
        rng = random.Random(run)
        new, ref = Coalescer(), ReferenceCoalescer()
        for frame in stream(rng, 400):
            assert new.push(frame) == ref.push(frame)
            if rng.random() < 0.05:
                assert new.flush() == ref.flush()
        assert new.flush() == ref.flush()
        assert new.merged_segments == ref.merged_segments
