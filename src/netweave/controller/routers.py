"""Routers: tenant routing domains with interfaces, an external gateway and extra routes.

Interfaces and the gateway are ports owned by the router (device_id = router id), created through the
port code so addressing follows the same IPAM rules. Each router gets an L3 VNI for symmetric IRB.
"""

import ipaddress
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netweave.controller import errors, ipam, ports
from netweave.controller.attributes import (
    Attr,
    as_is,
    check_body,
    standard_view,
    to_bool,
    to_str,
    to_tags,
    touch,
)
from netweave.controller.db import FloatingIP, Network, Port, Router, Subnet, Tag, utcnow
from netweave.controller.typedrivers import TypeConfig

OWNER_INTERFACE = "network:router_interface_distributed"
OWNER_GATEWAY = "network:router_gateway"
ROUTER_INTERFACE_OWNERS = (OWNER_INTERFACE, "network:router_interface")


def _irb(name: str, value: Any) -> str:
    if value not in ("symmetric", "asymmetric"):
        raise errors.BadRequest(
            f"Invalid input for {name}. Reason: '{value}' is not in ['symmetric', 'asymmetric']."
        )
    return str(value)


ATTRS = {
    "name": Attr(to_str, default=""),
    "description": Attr(to_str, default=""),
    "admin_state_up": Attr(to_bool, default=True),
    "external_gateway_info": Attr(as_is, default=None),
    "routes": Attr(as_is, default=[]),
    "distributed": Attr(to_bool, put=False, default=True),
    "ha": Attr(to_bool, put=False, default=False),
    "netweave:irb": Attr(_irb, default="symmetric"),
    "tenant_id": Attr(to_str, put=False, default=None),
    "project_id": Attr(to_str, put=False, default=None),
    "tags": Attr(to_tags, default=[]),
}


def _owned_ports(session: Session, router_id: str, owners: tuple[str, ...]) -> list[Port]:
    return list(
        session.scalars(
            select(Port)
            .where(Port.device_id == router_id, Port.device_owner.in_(owners))
            .order_by(Port.created_at)
        )
    )


def show(session: Session, router: Router) -> dict[str, Any]:
    gateway = None
    if router.gw_network_id:
        gw_ports = _owned_ports(session, router.id, (OWNER_GATEWAY,))
        gateway = {
            "network_id": router.gw_network_id,
            "enable_snat": router.enable_snat,
            "external_fixed_ips": [
                {"subnet_id": a.subnet_id, "ip_address": a.ip_address} for p in gw_ports for a in p.fixed_ips
            ],
        }
    return {
        "id": router.id,
        "name": router.name,
        "description": router.description,
        "admin_state_up": router.admin_state_up,
        "status": router.status,
        "external_gateway_info": gateway,
        "routes": list(router.routes),
        "distributed": True,
        "ha": False,
        "flavor_id": None,
        "availability_zones": [],
        "availability_zone_hints": [],
        "project_id": router.project_id,
        "tenant_id": router.project_id,
        "netweave:l3_vni": router.l3_vni,
        "netweave:irb": router.irb,
        **standard_view(router),
    }


def _l3_vni(session: Session, cfg: TypeConfig) -> int:
    low, high = cfg.l3_vni_range
    used = set(session.scalars(select(Router.l3_vni)))
    for vni in range(low, high + 1):
        if vni not in used:
            return vni
    raise errors.Conflict("No L3 VNI is available for a new router.")


def _interface_subnets(session: Session, router_id: str) -> list[Subnet]:
    ids = [
        a.subnet_id
        for p in _owned_ports(session, router_id, ROUTER_INTERFACE_OWNERS)
        for a in p.fixed_ips
    ]
    return [s for s in (session.get(Subnet, i) for i in ids) if s is not None]


def _routes(session: Session, router_id: str, raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list):
        raise errors.BadRequest("Invalid input for routes. Reason: a list of {destination, nexthop}.")
    nets = [ipam.parse_cidr(s.cidr, s.ip_version) for s in _interface_subnets(session, router_id)]
    out = []
    for r in raw:
        if not isinstance(r, dict) or set(r) != {"destination", "nexthop"}:
            raise errors.BadRequest("Invalid input for routes. Reason: each route is {destination, nexthop}.")
        try:
            dest = ipaddress.ip_network(str(r["destination"]), strict=False)
        except ValueError:
            raise errors.BadRequest(
                f"Invalid input for routes. Reason: '{r['destination']}' is not a CIDR."
            ) from None
        hop = ipam.parse_ip("routes", r["nexthop"], dest.version)
        if not any(hop in n for n in nets):
            e = errors.BadRequest(f"Invalid format for routes: {r}, the nexthop is not connected with router")
            e.type = "InvalidRoutes"
            raise e
        out.append({"destination": str(dest), "nexthop": str(hop)})
    return out


def _set_gateway(session: Session, router: Router, info: Any) -> None:
    for p in _owned_ports(session, router.id, (OWNER_GATEWAY,)):
        session.delete(p)
    session.flush()
    router.gw_network_id = None
    if info is None or info == {}:
        return
    if (
        not isinstance(info, dict)
        or "network_id" not in info
        or set(info) - {"network_id", "enable_snat", "external_fixed_ips"}
    ):
        raise errors.BadRequest(
            "Invalid input for external_gateway_info: {network_id, enable_snat, external_fixed_ips} expected."
        )
    net = session.get(Network, str(info["network_id"]))
    if net is None:
        raise errors.network_not_found(str(info["network_id"]))
    if not net.router_external:
        e = errors.BadRequest(f"Bad router request: Network {net.id} is not an external network.")
        e.type = "BadRequest"
        raise e
    body: dict[str, Any] = {
        "network_id": net.id,
        "device_owner": OWNER_GATEWAY,
        "device_id": router.id,
        "port_security_enabled": False,
        "project_id": router.project_id,
    }
    if "external_fixed_ips" in info:
        body["fixed_ips"] = info["external_fixed_ips"]
    ports.create(session, router.project_id, {"port": body})
    router.gw_network_id = net.id
    router.enable_snat = bool(info.get("enable_snat", True))


def create(session: Session, cfg: TypeConfig, project: str, raw: Any) -> Router:
    body = check_body(raw, "router", ATTRS, creating=True)
    if body["routes"]:
        raise errors.BadRequest("Routes can be set once the router has interfaces (update the router).")
    if body["distributed"] is False or body["ha"]:
        raise errors.BadRequest("NetWeave routers are distributed (every chassis routes) and not HA pairs.")
    router = Router(
        id=str(uuid.uuid4()),
        project_id=body.get("project_id") or body.get("tenant_id") or project,
        name=body["name"],
        description=body["description"],
        admin_state_up=body["admin_state_up"],
        status="ACTIVE",
        routes=[],
        l3_vni=_l3_vni(session, cfg),
        irb=body["netweave:irb"],
        revision_number=0,
        created_at=utcnow(),
        updated_at=utcnow(),
        tags=[Tag(tag=t) for t in body["tags"]],
    )
    session.add(router)
    session.flush()
    _set_gateway(session, router, body["external_gateway_info"])
    return router


def get(session: Session, router_id: str) -> Router:
    router = session.get(Router, router_id)
    if router is None:
        e = errors.NotFound(f"Router {router_id} could not be found")
        e.type = "RouterNotFound"
        raise e
    return router


def update(session: Session, router_id: str, raw: Any) -> Router:
    body = check_body(raw, "router", ATTRS, creating=False)
    router = get(session, router_id)
    for key, column in (
        ("name", "name"),
        ("description", "description"),
        ("admin_state_up", "admin_state_up"),
        ("netweave:irb", "irb"),
    ):
        if key in body:
            setattr(router, column, body[key])
    if "external_gateway_info" in body:
        _set_gateway(session, router, body["external_gateway_info"])
    if "routes" in body:
        router.routes = _routes(session, router.id, body["routes"])
    touch(router, body)
    return router


def delete(session: Session, router_id: str) -> None:
    router = get(session, router_id)
    if _owned_ports(session, router.id, ROUTER_INTERFACE_OWNERS):
        e = errors.Conflict(f"Router {router.id} still has ports")
        e.type = "RouterInUse"
        raise e
    if session.scalar(select(FloatingIP.id).where(FloatingIP.router_id == router.id).limit(1)):
        e = errors.Conflict(f"Router {router.id} still has floating IPs associated through it")
        e.type = "RouterInUse"
        raise e
    _set_gateway(session, router, None)
    session.delete(router)


def _interface_info(router: Router, port: Port) -> dict[str, Any]:
    subnet_ids = [a.subnet_id for a in port.fixed_ips]
    return {
        "id": router.id,
        "network_id": port.network_id,
        "port_id": port.id,
        "subnet_id": subnet_ids[0] if subnet_ids else None,
        "subnet_ids": subnet_ids,
        "project_id": router.project_id,
        "tenant_id": router.project_id,
    }


def add_interface(session: Session, router_id: str, raw: Any) -> dict[str, Any]:
    router = get(session, router_id)
    if not isinstance(raw, dict) or len(raw) != 1 or set(raw) - {"subnet_id", "port_id"}:
        raise errors.BadRequest("Bad router request: specify either subnet_id or port_id.")
    attached = _interface_subnets(session, router.id)
    if "subnet_id" in raw:
        sub = session.get(Subnet, str(raw["subnet_id"]))
        if sub is None:
            raise errors.resource_not_found("Subnet", str(raw["subnet_id"]))
        if sub.gateway_ip is None:
            raise errors.BadRequest(f"Bad router request: Subnet {sub.id} does not have a gateway IP.")
        candidates = [sub]
    else:
        port = ports.get(session, str(raw["port_id"]))
        if port.device_id or port.device_owner:
            e = errors.Conflict(f"Port {port.id} is in use by {port.device_owner or port.device_id}.")
            e.type = "PortInUse"
            raise e
        if not port.fixed_ips:
            raise errors.BadRequest("Bad router request: Router port must have at least one fixed IP.")
        candidates = [s for s in (session.get(Subnet, a.subnet_id) for a in port.fixed_ips) if s is not None]
    for new in candidates:
        new_net = ipam.parse_cidr(new.cidr, new.ip_version)
        for old in attached:
            if old.id == new.id:
                raise errors.BadRequest(f"Bad router request: Router already has a port on subnet {new.id}.")
            if ipam.parse_cidr(old.cidr, old.ip_version).overlaps(new_net):
                raise errors.BadRequest(
                    f"Bad router request: Cidr {new.cidr} of subnet {new.id} overlaps with "
                    f"cidr {old.cidr} of subnet {old.id}."
                )
    if "subnet_id" in raw:
        sub = candidates[0]
        port = ports.create(
            session,
            router.project_id,
            {
                "port": {
                    "network_id": sub.network_id,
                    "fixed_ips": [{"subnet_id": sub.id, "ip_address": sub.gateway_ip}],
                    "device_owner": OWNER_INTERFACE,
                    "device_id": router.id,
                    "port_security_enabled": False,
                    "project_id": router.project_id,
                }
            },
        )
    else:
        port.device_owner, port.device_id = OWNER_INTERFACE, router.id
        port.revision_number += 1
    router.revision_number += 1
    return _interface_info(router, port)


def remove_interface(session: Session, router_id: str, raw: Any) -> dict[str, Any]:
    router = get(session, router_id)
    if not isinstance(raw, dict) or not raw or set(raw) - {"subnet_id", "port_id"}:
        raise errors.BadRequest("Bad router request: specify either subnet_id or port_id.")
    interfaces = _owned_ports(session, router.id, ROUTER_INTERFACE_OWNERS)
    if "port_id" in raw:
        found = [p for p in interfaces if p.id == raw["port_id"]]
    else:
        found = [p for p in interfaces if any(a.subnet_id == raw["subnet_id"] for a in p.fixed_ips)]
    if not found:
        e = errors.NotFound(
            f"Router {router.id} does not have an interface with "
            f"{'port ' + str(raw.get('port_id')) if 'port_id' in raw else 'subnet ' + str(raw['subnet_id'])}"
        )
        e.type = "RouterInterfaceNotFound"
        raise e
    port = found[0]
    info = _interface_info(router, port)
    remaining = {a.subnet_id for p in interfaces if p.id != port.id for a in p.fixed_ips}
    nets = [ipam.parse_cidr(s.cidr, s.ip_version) for s in (session.get(Subnet, i) for i in remaining) if s]
    for route in router.routes:
        if not any(ipaddress.ip_address(route["nexthop"]) in n for n in nets):
            busy = errors.Conflict(
                f"Router interface for subnet {info['subnet_id']} on router {router.id} cannot be "
                f"deleted, as it is required by one or more routes."
            )
            busy.type = "RouterInterfaceInUseByRoute"
            raise busy
    session.delete(port)
    router.revision_number += 1
    return info
