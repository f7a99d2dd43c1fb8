"""IP address management: subnet checks, default pools and gateway, address allocation, EUI-64.

Pure functions over `ipaddress` objects; the store enforces uniqueness (an address is the primary key of
its allocation row), these functions choose and validate.
"""

import ipaddress
import itertools
from collections.abc import Iterable
from typing import Any

from netweave.controller.errors import BadRequest, Conflict
from netweave.packet import addr

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_cidr(text: Any, ip_version: int) -> IPNetwork:
    if not isinstance(text, str):
        raise BadRequest(f"Invalid input for cidr. Reason: '{text}' is not a valid IP subnet.")
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BadRequest(f"Invalid input for cidr. Reason: '{text}' is not a valid IP subnet.") from None
    if net.version != ip_version:
        raise BadRequest(f"Invalid input for operation: cidr {text} is not an IPv{ip_version} subnet.")
    if net.num_addresses < (4 if ip_version == 4 else 2):
        raise BadRequest(f"Invalid input for cidr. Reason: {net} is too small for hosts.")
    return net


def parse_ip(name: str, text: Any, version: int | None = None) -> IPAddr:
    if not isinstance(text, str):
        raise BadRequest(f"Invalid input for {name}. Reason: '{text}' is not a valid IP address.")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise BadRequest(f"Invalid input for {name}. Reason: '{text}' is not a valid IP address.") from None
    if version is not None and ip.version != version:
        raise BadRequest(f"Invalid input for {name}. Reason: '{text}' is not an IPv{version} address.")
    return ip


def host_range(net: IPNetwork) -> tuple[int, int]:
    """First and last usable host as integers (IPv4 leaves out network and broadcast; IPv6 the
    subnet-router anycast address)."""
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - (1 if net.version == 4 else 0)
    return first, last


def default_gateway(net: IPNetwork) -> str:
    return str(ipaddress.ip_address(host_range(net)[0]))


def default_pools(net: IPNetwork, gateway: str | None) -> list[dict[str, str]]:
    """The host range minus the gateway, as Neutron computes it."""
    first, last = host_range(net)
    gw = int(ipaddress.ip_address(gateway)) if gateway else None
    ranges: list[tuple[int, int]] = []
    if gw is not None and first <= gw <= last:
        if first <= gw - 1:
            ranges.append((first, gw - 1))
        if gw + 1 <= last:
            ranges.append((gw + 1, last))
    else:
        ranges.append((first, last))
    return [{"start": str(ipaddress.ip_address(a)), "end": str(ipaddress.ip_address(b))} for a, b in ranges]


def check_pools(raw: Any, net: IPNetwork, gateway: str | None) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        raise BadRequest("Invalid input for allocation_pools. Reason: a list of {start, end} is expected.")
    spans = []
    for pool in raw:
        if not isinstance(pool, dict) or set(pool) != {"start", "end"}:
            raise BadRequest("Invalid input for allocation_pools. Reason: each pool is {start, end}.")
        start = parse_ip("allocation_pools", pool["start"], net.version)
        end = parse_ip("allocation_pools", pool["end"], net.version)
        if start not in net or end not in net or int(start) > int(end):
            raise BadRequest(f"The allocation pool {start}-{end} spans beyond the subnet cidr {net}.")
        spans.append((int(start), int(end)))
    spans.sort()
    for (_, e1), (s2, e2) in itertools.pairwise(spans):
        if s2 <= e1:
            raise BadRequest(
                f"Found overlapping allocation pools: {ipaddress.ip_address(s2)}-"
                f"{ipaddress.ip_address(e2)} overlaps another pool."
            )
    if gateway:
        gw = int(ipaddress.ip_address(gateway))
        for s, e in spans:
            if s <= gw <= e:
                c = Conflict(
                    f"Gateway ip {gateway} conflicts with allocation pool "
                    f"{ipaddress.ip_address(s)}-{ipaddress.ip_address(e)}."
                )
                c.type = "GatewayConflictWithAllocationPools"
                raise c
    return [{"start": str(ipaddress.ip_address(s)), "end": str(ipaddress.ip_address(e))} for s, e in spans]


def in_pools(ip: IPAddr, pools: Iterable[dict[str, str]]) -> bool:
    value = int(ip)
    return any(
        int(ipaddress.ip_address(p["start"])) <= value <= int(ipaddress.ip_address(p["end"])) for p in pools
    )


def next_free(pools: Iterable[dict[str, str]], used: set[str], skip: int = 0) -> str | None:
    """The `skip`-th free address of the pools in order (callers retrying after a lost race skip the
    addresses other requests just took), or None when the pools are exhausted."""
    for pool in pools:
        start, end = int(ipaddress.ip_address(pool["start"])), int(ipaddress.ip_address(pool["end"]))
        for value in range(start, end + 1):
            text = str(ipaddress.ip_address(value))
            if text not in used:
                if skip == 0:
                    return text
                skip -= 1
    return None


def eui64(net: IPNetwork, mac: str) -> str:
    """SLAAC address of `mac` in a /64 (RFC 4291 appendix A)."""
    return addr.eui64(str(net.network_address), mac)
