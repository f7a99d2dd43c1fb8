"""Floating IPs: an address on an external network, optionally mapped to a port's fixed IP through the
router that connects the port's subnet to that external network (the NAT itself is a later issue)."""

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netweave.controller import errors, ipam, ports
from netweave.controller.attributes import Attr, as_is, check_body, standard_view, to_str, to_tags, touch
from netweave.controller.db import FloatingIP, Network, Port, Router, Tag, utcnow

OWNER_FLOATINGIP = "network:floatingip"
UNSET = object()


ATTRS = {
    "floating_network_id": Attr(to_str, put=False, default=UNSET),
    "floating_ip_address": Attr(as_is, put=False, default=None),
    "subnet_id": Attr(as_is, put=False, default=None),
    "port_id": Attr(as_is, default=None),
    "fixed_ip_address": Attr(as_is, default=None),
    "description": Attr(to_str, default=""),
    "tenant_id": Attr(to_str, put=False, default=None),
    "project_id": Attr(to_str, put=False, default=None),
    "tags": Attr(to_tags, default=[]),
}


def show(fip: FloatingIP) -> dict[str, Any]:
    return {
        "id": fip.id,
        "floating_ip_address": fip.floating_ip_address,
        "floating_network_id": fip.floating_network_id,
        "router_id": fip.router_id,
        "port_id": fip.port_id,
        "fixed_ip_address": fip.fixed_ip_address,
        "status": "ACTIVE" if fip.port_id else "DOWN",
        "project_id": fip.project_id,
        "tenant_id": fip.project_id,
        "description": fip.description,
        "port_details": None,
        "port_forwardings": [],
        "qos_policy_id": None,
        **standard_view(fip),
    }


def _associate(session: Session, fip: FloatingIP, port_id: Any, fixed_ip: Any) -> None:
    if port_id is None:
        fip.port_id = fip.fixed_ip_address = fip.router_id = None
        return
    port = ports.get(session, str(port_id))
    v4 = [a for a in port.fixed_ips if ":" not in a.ip_address]
    if fixed_ip is not None:
        ip = str(ipam.parse_ip("fixed_ip_address", fixed_ip, 4))
        chosen = [a for a in v4 if a.ip_address == ip]
        if not chosen:
            raise errors.BadRequest(f"Port {port.id} does not have fixed ip {ip}.")
    else:
        chosen = v4[:1]
        if not chosen:
            raise errors.BadRequest(f"Bad floatingip request: Port {port.id} does not have any IPv4 address.")
    allocation = chosen[0]
    other = session.scalar(
        select(FloatingIP.id).where(
            FloatingIP.port_id == port.id,
            FloatingIP.fixed_ip_address == allocation.ip_address,
            FloatingIP.id != fip.id,
        )
    )
    if other:
        e = errors.Conflict(
            f"Cannot associate floating IP {fip.floating_ip_address} with port {port.id} using fixed "
            f"IP {allocation.ip_address}, as that fixed IP already has a floating IP ({other})."
        )
        e.type = "FloatingIPPortAlreadyAssociated"
        raise e
    router_id = None
    for iface in session.scalars(
        select(Port).where(
            Port.network_id == port.network_id, Port.device_owner.like("network:router_interface%")
        )
    ):
        if any(a.subnet_id == allocation.subnet_id for a in iface.fixed_ips):
            router = session.get(Router, iface.device_id)
            if router is not None and router.gw_network_id == fip.floating_network_id:
                router_id = router.id
                break
    if router_id is None:
        unreachable = errors.NotFound(
            f"External network {fip.floating_network_id} is not reachable from subnet "
            f"{allocation.subnet_id}. Therefore, cannot associate Port {port.id} with a Floating IP."
        )
        unreachable.type = "ExternalGatewayForFloatingIPNotFound"
        raise unreachable
    fip.port_id, fip.fixed_ip_address, fip.router_id = port.id, allocation.ip_address, router_id


def create(session: Session, project: str, raw: Any) -> FloatingIP:
    body = check_body(raw, "floatingip", ATTRS, creating=True)
    if body["floating_network_id"] is UNSET:
        raise errors.BadRequest(
            "Failed to parse request. Required attribute 'floating_network_id' not specified"
        )
    net = session.get(Network, body["floating_network_id"])
    if net is None:
        raise errors.network_not_found(body["floating_network_id"])
    if not net.router_external:
        e = errors.BadRequest(f"Bad floatingip request: Network {net.id} is not a valid external network.")
        e.type = "BadRequest"
        raise e
    owner = body.get("project_id") or body.get("tenant_id") or project
    fip_id = str(uuid.uuid4())
    want: dict[str, Any] = {}
    if body["floating_ip_address"] is not None:
        want["ip_address"] = str(ipam.parse_ip("floating_ip_address", body["floating_ip_address"]))
    if body["subnet_id"] is not None:
        want["subnet_id"] = body["subnet_id"]
    port_body: dict[str, Any] = {
        "network_id": net.id,
        "device_owner": OWNER_FLOATINGIP,
        "device_id": fip_id,
        "port_security_enabled": False,
        "project_id": owner,
    }
    if want:
        port_body["fixed_ips"] = [want]
    fport = ports.create(session, owner, {"port": port_body})
    v4 = [a for a in fport.fixed_ips if ":" not in a.ip_address]
    if not v4:
        raise errors.BadRequest(f"Bad floatingip request: external network {net.id} has no IPv4 subnet.")
    fip = FloatingIP(
        id=fip_id,
        project_id=owner,
        description=body["description"],
        floating_network_id=net.id,
        floating_ip_address=v4[0].ip_address,
        floating_port_id=fport.id,
        revision_number=0,
        created_at=utcnow(),
        updated_at=utcnow(),
        tags=[Tag(tag=t) for t in body["tags"]],
    )
    session.add(fip)
    _associate(session, fip, body["port_id"], body["fixed_ip_address"])
    session.flush()
    return fip


def get(session: Session, fip_id: str) -> FloatingIP:
    fip = session.get(FloatingIP, fip_id)
    if fip is None:
        e = errors.NotFound(f"Floating IP {fip_id} could not be found")
        e.type = "FloatingIPNotFound"
        raise e
    return fip


def update(session: Session, fip_id: str, raw: Any) -> FloatingIP:
    body = check_body(raw, "floatingip", ATTRS, creating=False)
    fip = get(session, fip_id)
    if "port_id" in body or "fixed_ip_address" in body:
        _associate(session, fip, body.get("port_id", fip.port_id), body.get("fixed_ip_address"))
    if "description" in body:
        fip.description = body["description"]
    touch(fip, body)
    return fip


def delete(session: Session, fip_id: str) -> None:
    fip = get(session, fip_id)
    fport = session.get(Port, fip.floating_port_id)
    if fport is not None:
        session.delete(fport)
    session.delete(fip)
