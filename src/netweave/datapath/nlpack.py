"""Netlink messages packed by hand with `struct`: the message and attribute headers, one attribute, and
the attributes of a message read back. For the kernel datapath's bulk writes (fdb, neighbour and route
entries in batches), where pyroute2's per-message cost is the bottleneck (docs/architecture.md)."""

import struct

HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
NLA = struct.Struct("=HH")  # nlattr: len, type


def nla(kind: int, data: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    n = 4 + len(data)
    return NLA.pack(n, kind) + data + b"\0" * (-n % 4)


def attrs(buf: bytes, off: int, end: int) -> dict[int, bytes]:
    """The attributes in `buf[off:end]` by type (flags bits stripped; a later one of a type wins)."""
    out = {}
    while off + 4 <= end:
        n, kind = NLA.unpack_from(buf, off)
        if n < 4:
            break
        out[kind & 0x3FFF] = buf[off + 4: off + n]
        off += (n + 3) & ~3
    return out
