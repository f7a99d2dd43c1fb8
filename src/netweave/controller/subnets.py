"""Subnets: IPAM-checked address ranges on a network (pools, gateway, DNS, host routes, IPv6 modes)."""

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netweave.controller import errors, ipam
from netweave.controller.attributes import (
    Attr,
    as_is,
    check_body,
    standard_view,
    to_bool,
    to_int,
    to_str,
    to_tags,
    touch,
)
from netweave.controller.db import IPAllocation, Network, Subnet, Tag, utcnow

IPV6_MODES = ("dhcpv6-stateful", "dhcpv6-stateless", "slaac")
UNSET = object()


def _v6mode(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if value not in IPV6_MODES:
        raise errors.BadRequest(f"Invalid input for {name}. Reason: '{value}' is not in {list(IPV6_MODES)}.")
    return str(value)


ATTRS = {
    "network_id": Attr(to_str, put=False, default=UNSET),
    "ip_version": Attr(to_int, put=False, default=UNSET),
    "cidr": Attr(as_is, put=False, default=UNSET),
    "name": Attr(to_str, default=""),
    "description": Attr(to_str, default=""),
    "gateway_ip": Attr(as_is, default=UNSET),
    "allocation_pools": Attr(as_is, default=UNSET),
    "dns_nameservers": Attr(as_is, default=[]),
    "host_routes": Attr(as_is, default=[]),
    "enable_dhcp": Attr(to_bool, default=True),
    "ipv6_ra_mode": Attr(_v6mode, put=False, default=None),
    "ipv6_address_mode": Attr(_v6mode, put=False, default=None),
    "tenant_id": Attr(to_str, put=False, default=None),
    "project_id": Attr(to_str, put=False, default=None),
    "tags": Attr(to_tags, default=[]),
}


def show(sub: Subnet) -> dict[str, Any]:
    return {
        "id": sub.id,
        "name": sub.name,
        "description": sub.description,
        "network_id": sub.network_id,
        "project_id": sub.project_id,
        "tenant_id": sub.project_id,
        "ip_version": sub.ip_version,
        "cidr": sub.cidr,
        "gateway_ip": sub.gateway_ip,
        "allocation_pools": list(sub.allocation_pools),
        "dns_nameservers": list(sub.dns_nameservers),
        "host_routes": list(sub.host_routes),
        "enable_dhcp": sub.enable_dhcp,
        "ipv6_ra_mode": sub.ipv6_ra_mode,
        "ipv6_address_mode": sub.ipv6_address_mode,
        "subnetpool_id": None,
        "service_types": [],
        "segment_id": None,
        **standard_view(sub),
    }


def _dns(raw: Any) -> list[str]:
    if not isinstance(raw, list):
        raise errors.BadRequest("Invalid input for dns_nameservers. Reason: a list of addresses is expected.")
    out = [str(ipam.parse_ip("dns_nameservers", a)) for a in raw]
    if len(set(out)) != len(out):
        raise errors.BadRequest("Invalid input for dns_nameservers. Reason: duplicate address.")
    return out


def _routes(raw: Any, version: int) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        raise errors.BadRequest("Invalid input for host_routes. Reason: a list of {destination, nexthop}.")
    out = []
    for r in raw:
        if not isinstance(r, dict) or set(r) != {"destination", "nexthop"}:
            raise errors.BadRequest(
                "Invalid input for host_routes. Reason: each route is {destination, nexthop}."
            )
        dest = ipam.parse_cidr(r["destination"], version)
        hop = ipam.parse_ip("host_routes", r["nexthop"], version)
        out.append({"destination": str(dest), "nexthop": str(hop)})
    return out


def _gateway(raw: Any, net: ipam.IPNetwork) -> str | None:
    if raw is UNSET:
        return ipam.default_gateway(net)
    if raw is None:
        return None
    gw = ipam.parse_ip("gateway_ip", raw, net.version)
    if gw not in net or (gw in (net.network_address, net.broadcast_address) and net.version == 4):
        raise errors.BadRequest(f"Invalid input for gateway_ip. Reason: {gw} is not a host of {net}.")
    return str(gw)


def create(session: Session, project: str, raw: Any) -> Subnet:
    body = check_body(raw, "subnet", ATTRS, creating=True)
    for required in ("network_id", "ip_version", "cidr"):
        if body[required] is UNSET:
            raise errors.BadRequest(f"Failed to parse request. Required attribute '{required}' not specified")
    if body["ip_version"] not in (4, 6):
        raise errors.BadRequest(f"Invalid input for ip_version. Reason: {body['ip_version']} is not 4 or 6.")
    network = session.get(Network, body["network_id"])
    if network is None:
        raise errors.network_not_found(body["network_id"])
    version = body["ip_version"]
    net = ipam.parse_cidr(body["cidr"], version)
    if version == 4 and (body["ipv6_ra_mode"] or body["ipv6_address_mode"]):
        raise errors.BadRequest("ipv6_ra_mode and ipv6_address_mode apply to IPv6 subnets only.")
    if (
        body["ipv6_ra_mode"]
        and body["ipv6_address_mode"]
        and body["ipv6_ra_mode"] != body["ipv6_address_mode"]
    ):
        raise errors.BadRequest("ipv6_ra_mode and ipv6_address_mode must be the same when both are set.")
    if (body["ipv6_address_mode"] in ("slaac", "dhcpv6-stateless")) and net.prefixlen != 64:
        raise errors.BadRequest(f"{body['ipv6_address_mode']} needs a /64 prefix, not /{net.prefixlen}.")
    for other in session.scalars(select(Subnet).where(Subnet.network_id == network.id)):
        if ipam.parse_cidr(other.cidr, other.ip_version).overlaps(net):
            raise errors.BadRequest(
                f"Invalid input for operation: Requested subnet with cidr: {net} for network: "
                f"{network.id} overlaps with another subnet."
            )
    gateway = _gateway(body["gateway_ip"], net)
    pools = (
        ipam.default_pools(net, gateway)
        if body["allocation_pools"] is UNSET
        else ipam.check_pools(body["allocation_pools"], net, gateway)
    )
    sub = Subnet(
        id=str(uuid.uuid4()),
        network_id=network.id,
        project_id=body.get("project_id") or body.get("tenant_id") or project,
        name=body["name"],
        description=body["description"],
        ip_version=version,
        cidr=str(net),
        gateway_ip=gateway,
        enable_dhcp=body["enable_dhcp"],
        ipv6_ra_mode=body["ipv6_ra_mode"],
        ipv6_address_mode=body["ipv6_address_mode"],
        allocation_pools=pools,
        dns_nameservers=_dns(body["dns_nameservers"]),
        host_routes=_routes(body["host_routes"], version),
        revision_number=0,
        created_at=utcnow(),
        updated_at=utcnow(),
        tags=[Tag(tag=t) for t in body["tags"]],
    )
    session.add(sub)
    session.flush()
    return sub


def get(session: Session, subnet_id: str) -> Subnet:
    sub = session.get(Subnet, subnet_id)
    if sub is None:
        raise errors.resource_not_found("Subnet", subnet_id)
    return sub


def update(session: Session, subnet_id: str, raw: Any) -> Subnet:
    body = check_body(raw, "subnet", ATTRS, creating=False)
    sub = get(session, subnet_id)
    net = ipam.parse_cidr(sub.cidr, sub.ip_version)
    for key in ("name", "description", "enable_dhcp"):
        if key in body:
            setattr(sub, key, body[key])
    if "dns_nameservers" in body:
        sub.dns_nameservers = _dns(body["dns_nameservers"])
    if "host_routes" in body:
        sub.host_routes = _routes(body["host_routes"], sub.ip_version)
    gateway = _gateway(body["gateway_ip"], net) if "gateway_ip" in body else sub.gateway_ip
    pools = ipam.check_pools(body.get("allocation_pools", sub.allocation_pools), net, gateway)
    if "allocation_pools" in body or "gateway_ip" in body:
        used = session.scalars(select(IPAllocation.ip_address).where(IPAllocation.subnet_id == sub.id))
        if gateway and gateway in set(used) and gateway != sub.gateway_ip:
            raise errors.Conflict(f"Gateway ip {gateway} is already allocated to a port.")
    sub.gateway_ip, sub.allocation_pools = gateway, pools
    touch(sub, body)
    return sub


def delete(session: Session, subnet_id: str) -> None:
    sub = get(session, subnet_id)
    if session.scalar(select(IPAllocation.port_id).where(IPAllocation.subnet_id == sub.id).limit(1)):
        e = errors.Conflict(
            f"Unable to complete operation on subnet {sub.id}: One or more ports have an IP "
            "allocation from this subnet."
        )
        e.type = "SubnetInUse"
        raise e
    session.delete(sub)
