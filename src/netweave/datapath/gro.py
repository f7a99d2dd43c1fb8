"""Receive coalescing (GRO) for TAPs opened with a virtio-net header: consecutive in-order TCP/IPv4
segments of one flow, decapsulated in one batch, go to the VM as one large GSO frame.

Why: delivering a segment to the VM costs a `write` on the TAP and a pass through the VM's TCP stack,
and every second segment makes the VM send an ACK back through both VTEPs. One 64 KB frame per batch
instead of ~45 segments is what Linux's own GRO does for a NIC; a TAP accepts such frames when it is
opened with IFF_VNET_HDR and the frame carries `gso_type TCPV4` and the segment size, and the VM's TCP
sees the segment size as it would after GRO.

Checksums stay end to end. The merged frame's TCP checksum is derived from the segments' own checksums
(ones' complement arithmetic: a segment's payload sum is minus the sum of its pseudo-header and TCP
header when its checksum is right), and the frame is handed over *without* a "checksum verified" flag, so
the VM's kernel checks it in C: a segment corrupted on the underlay makes the whole frame fail, exactly as
the single segment would have (TCP retransmits). Only the headers are summed in Python.

Merged (as Linux GRO, `tcp_gro_receive`): same Ethernet header, IPv4 without options or fragmentation,
same addresses, ports, TOS, TTL, DF, ACK number, window, TCP header length and options bytes; flags ACK
and maybe PSH only; each segment's sequence number follows the previous one; all but the last carry the
first one's payload size; PSH or a shorter segment ends the frame. Anything else passes through as is.
"""

import struct

#: struct virtio_net_hdr (legacy, native = little-endian on the hosts we run on)
VNET_HDR = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset
VNET_HDR_LEN = VNET_HDR.size
PLAIN = VNET_HDR.pack(0, 0, 0, 0, 0, 0)
GSO_TCPV4 = 1
MAX_IP_LEN = 65535 - 256  # leave room: the kernel caps an skb's IP length at 64 KB
ETH, IP4 = 14, 20
TCP_OFF = ETH + IP4
_ACK, _PSH = 0x10, 0x08


def _key_mask(doff: int) -> int:
    """What must be equal to merge, as a mask over the headers (Ethernet to the TCP options) read as one
    big-endian integer: everything but the IP length, ID and checksum, the sequence number, the PSH flag,
    the TCP checksum and urgent pointer. That is the Ethernet header, TOS, DF/TTL, addresses and ports,
    ACK, data offset and the other flags, window and options, as Linux's `tcp_gro_receive` compares."""
    mask = bytearray(b"\xff" * (TCP_OFF + doff))
    for i in (16, 17, 18, 19, 24, 25, 38, 39, 40, 41, 50, 51, 52, 53):
        mask[i] = 0
    mask[TCP_OFF + 13] = 0xFF & ~_PSH
    return int.from_bytes(mask, "big")


_KEY_MASK = {doff: _key_mask(doff) for doff in range(20, 64, 4)}


def _sum(data: bytes) -> int:
    """Ones' complement sum of 16-bit big-endian words, modulo 0xFFFF (2**16 == 1 mod 0xFFFF)."""
    if len(data) & 1:
        data += b"\x00"
    return int.from_bytes(data, "big") % 0xFFFF


class _Flow:
    __slots__ = ("count", "first", "key", "mss", "next_seq", "payload_len", "payload_sum", "payloads", "psh")

    def __init__(self, key: int, first: bytes, mss: int, seq: int, psum: int) -> None:
        self.key = key
        self.first = first  # the first segment: its headers become the frame's
        self.mss = mss
        self.next_seq = (seq + mss) & 0xFFFFFFFF
        self.payloads = [first[TCP_OFF + ((first[TCP_OFF + 12] >> 4) * 4):]]
        self.payload_len = mss
        self.payload_sum = psum
        self.count = 1
        self.psh = False


class Coalescer:
    """Per TAP: `push(frame)` returns the frames to write now (with their virtio-net headers), holding
    at most one flow's segments back; `flush()` returns what is held. Call `flush()` at the end of every
    receive batch (and before any other write to the same TAP) so nothing waits for more traffic."""

    def __init__(self) -> None:
        self.flow: _Flow | None = None
        self.merged_segments = 0  # segments that went out inside a larger frame (for stats/tests)

    @staticmethod
    def _segment(frame: bytes) -> tuple[int, int, int, int, bool] | None:
        """(flow key, sequence number, payload length, payload sum, ends the frame) of a mergeable
        segment, or None. The headers are read as one integer: the key is it with the fields that may
        differ between merged segments masked out, the sum and the sequence number are bits of it."""
        n = len(frame)
        if (n < TCP_OFF + 20 or frame[12:14] != b"\x08\x00" or frame[14] != 0x45 or frame[23] != 6
                or frame[20] != 0x40 or frame[21]):  # TCP/IPv4 without options, DF (IDs need not run), whole
            return None
        doff = (frame[TCP_OFF + 12] >> 4) * 4
        flags = frame[TCP_OFF + 13]
        total = frame[16] << 8 | frame[17]
        plen = total - IP4 - doff
        if doff < 20 or plen <= 0 or flags & ~(_ACK | _PSH) or not flags & _ACK or n != ETH + total:
            return None
        tcp_end = TCP_OFF + doff
        hdr = int.from_bytes(frame[:tcp_end], "big")
        # the payload's sum follows from the segment's checksum: pseudo + header + payload == 0 (mod); the
        # addresses (the pseudo-header's) and the TCP header are the last 8 + doff bytes, an even count
        psum = -((hdr & ((1 << (8 * (tcp_end - 26))) - 1)) + 6 + doff + plen) % 0xFFFF
        seq = (hdr >> (8 * (tcp_end - 42))) & 0xFFFFFFFF
        return hdr & _KEY_MASK[doff], seq, plen, psum, bool(flags & _PSH)

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
        self.flow = _Flow(key, frame, plen, seq, psum)
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
