"""Text <-> wire conversions for link-layer and IP addresses.

Addresses cross the public API as text ("02:00:00:00:00:01", "192.0.2.1", "2001:db8::1") because that is
what configuration, the REST API and humans use; these helpers are the single place that converts.
"""

import socket
from functools import lru_cache

from netweave.packet.errors import DecodeError

BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"


@lru_cache(maxsize=4096)
def mac_to_bytes(mac: str) -> bytes:
    """Parse 'aa:bb:cc:dd:ee:ff' (also '-' separated) into 6 bytes; ValueError otherwise."""
    try:
        raw = bytes.fromhex(mac.replace(":", "").replace("-", ""))
    except (ValueError, AttributeError):
        raise ValueError(f"not a MAC address: {mac!r}") from None
    if len(raw) != 6 or len(mac) != 17:
        raise ValueError(f"not a MAC address: {mac!r}")
    return raw


def mac_from_bytes(raw: bytes) -> str:
    return raw.hex(":")


@lru_cache(maxsize=4096)
def ipv4_to_bytes(ip: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET, ip)
    except (OSError, TypeError) as exc:
        raise ValueError(f"not an IPv4 address: {ip!r}") from exc


def ipv4_from_bytes(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, raw)


@lru_cache(maxsize=4096)
def ipv6_to_bytes(ip: str) -> bytes:
    try:
        return socket.inet_pton(socket.AF_INET6, ip)
    except (OSError, TypeError) as exc:
        raise ValueError(f"not an IPv6 address: {ip!r}") from exc


def ipv6_from_bytes(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


@lru_cache(maxsize=4096)
def ip_version(ip: str) -> int:
    """4 or 6 for a textual IP address; ValueError for anything else."""
    return 6 if len(ip_to_bytes(ip)) == 16 else 4


@lru_cache(maxsize=4096)
def ip_to_bytes(ip: str) -> bytes:
    if not isinstance(ip, str):
        raise ValueError(f"not an IP address: {ip!r}")
    return ipv4_to_bytes(ip) if ":" not in ip else ipv6_to_bytes(ip)


def check_length(buf: bytes | memoryview, offset: int, needed: int, what: str) -> None:
    """Raise DecodeError unless `needed` bytes are available at `offset` (ExaBGP's check_length idea)."""
    if offset < 0 or offset + needed > len(buf):
        raise DecodeError(f"{what}: need {needed} bytes at offset {offset}, have {max(len(buf) - offset, 0)}")


def eui64(prefix: str, mac: str) -> str:
    """The IPv6 address of `mac` in the /64 `prefix` (e.g. "fe80::" or "2001:db8::"), with the modified
    EUI-64 interface identifier (RFC 4291 appendix A): SLAAC addresses and link-local addresses."""
    raw = bytearray(mac_to_bytes(mac))
    raw[0] ^= 0x02
    return ipv6_from_bytes(ipv6_to_bytes(prefix)[:8] + bytes(raw[:3]) + b"\xff\xfe" + bytes(raw[3:]))
