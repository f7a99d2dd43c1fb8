"""The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers of UDP, TCP and ICMPv6."""

from netweave.packet.addr import ip_to_bytes


def ones_complement_sum(data: bytes) -> int:
    """16-bit ones' complement sum of `data` (odd length padded with a zero byte).

    Uses that 2**16 == 1 (mod 0xffff): the sum of the 16-bit words folds to the whole buffer read as one
    big-endian integer modulo 0xffff. One C-level conversion and one modulo instead of a Python loop.
    """
    if len(data) & 1:
        data += b"\x00"
    n = int.from_bytes(data, "big")
    if n == 0:
        return 0
    s = n % 0xFFFF
    return s or 0xFFFF


def internet_checksum(data: bytes) -> int:
    """The value to put in a checksum field so that the ones' complement sum of the whole is 0xffff."""
    return ~ones_complement_sum(data) & 0xFFFF


def pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    """RFC 768/793 (IPv4) or RFC 8200 section 8.1 (IPv6) pseudo-header for an upper-layer checksum."""
    s, d = ip_to_bytes(src), ip_to_bytes(dst)
    if len(s) == 4:
        return s + d + bytes((0, proto)) + length.to_bytes(2, "big")
    return s + d + length.to_bytes(4, "big") + b"\x00\x00\x00" + bytes((proto,))
