"""Receive coalescing: merged frames are what Linux GRO would hand the VM, with checksums that still
prove every segment's bytes (checked here with scapy, an implementation nobody here wrote)."""

import os

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from netweave.datapath.gro import GSO_TCPV4, PLAIN, VNET_HDR, VNET_HDR_LEN, Coalescer
from netweave.packet.checksum import ones_complement_sum

SRC, DST = "10.0.0.1", "10.0.0.2"


def seg(seq: int, payload: bytes, flags: str = "A", **ip: object) -> bytes:
    pkt = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
           / IP(src=SRC, dst=DST, flags="DF", id=seq & 0xFFFF, **ip)  # type: ignore[arg-type]
           / TCP(sport=5001, dport=40000, seq=seq, ack=777, flags=flags, window=500,
                 options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
           / payload)
    return bytes(pkt)


def valid(frame: bytes) -> bool:
    """IP and TCP checksums of a (possibly merged) frame verify, as the VM's kernel checks them."""
    ip = IP(frame[14:])
    ihl = ip.ihl * 4
    if ones_complement_sum(frame[14:14 + ihl]) != 0xFFFF:
        return False
    tcp = frame[14 + ihl:14 + ip.len]
    pseudo = bytes(map(int, SRC.split("."))) + bytes(map(int, DST.split("."))) + bytes((0, 6)) + len(
        tcp).to_bytes(2, "big")
    return ones_complement_sum(pseudo + tcp) == 0xFFFF


def test_consecutive_segments_become_one_gso_frame_with_valid_checksums() -> None:
    payloads = [os.urandom(1448) for _ in range(5)] + [os.urandom(301)]  # the last one shorter, odd
    c = Coalescer()
    out: list[bytes] = []
    seq = 1000
    for p in payloads:
        out += c.push(seg(seq, p))
        seq += len(p)
    out += c.flush()
    assert len(out) == 1 and c.merged_segments == 6
    flags, gso_type, hdr_len, gso_size, _, _ = VNET_HDR.unpack(out[0][:VNET_HDR_LEN])
    frame = out[0][VNET_HDR_LEN:]
    assert (flags, gso_type, gso_size) == (0, GSO_TCPV4, 1448)
    assert hdr_len == 14 + 20 + 32
    parsed = Ether(frame)
    assert bytes(parsed[TCP].payload) == b"".join(payloads)
    assert parsed[IP].len == len(frame) - 14 and parsed[TCP].seq == 1000
    assert valid(frame)


def test_odd_sized_segments_keep_the_checksum_right() -> None:
    c = Coalescer()
    frames = [seg(1, b"a" * 7, "A")]
    out = c.push(frames[0])  # a first segment sets the size; a 7-byte mss makes every one "full"
    out += c.push(seg(8, b"bcdefgh"))
    out += c.push(seg(15, b"ijklmno", "PA"))  # PSH ends the frame and is kept
    assert len(out) == 1
    frame = out[0][VNET_HDR_LEN:]
    assert bytes(Ether(frame)[TCP].payload) == b"aaaaaaabcdefghijklmno"
    assert Ether(frame)[TCP].flags == "PA"
    assert valid(frame)


def test_a_corrupted_segment_makes_the_merged_checksum_fail() -> None:
    c = Coalescer()
    good = seg(1, os.urandom(1000))
    bad = bytearray(seg(1001, os.urandom(1000)))
    bad[-10] ^= 0x40  # flipped on the underlay: the segment's own checksum no longer matches
    out = c.push(good) + c.push(bytes(bad)) + c.flush()
    assert len(out) == 1
    assert not valid(out[0][VNET_HDR_LEN:])


def test_what_cannot_be_merged_passes_through_in_order() -> None:
    c = Coalescer()
    a = seg(1, b"x" * 100)
    gap = seg(500, b"y" * 100)  # not the next sequence number
    other_ttl = seg(600, b"z" * 100, ttl=3)
    syn = seg(700, b"", "S")
    out = c.push(a) + c.push(gap) + c.push(other_ttl) + c.push(syn) + c.flush()
    assert out == [PLAIN + a, PLAIN + gap, PLAIN + other_ttl, PLAIN + syn]
    assert c.merged_segments == 0


def test_non_tcp_and_non_df_frames_are_untouched() -> None:
    c = Coalescer()
    arp = bytes.fromhex("ffffffffffff0200000000010806") + bytes(28)
    no_df = bytes(Ether() / IP(src=SRC, dst=DST) / TCP(flags="A") / b"q")
    assert c.push(arp) == [PLAIN + arp]
    assert c.push(no_df) == [PLAIN + no_df]
