"""Networks: Neutron's shape plus the provider extension and NetWeave's own attributes.

Validation happens before anything is written; the write and the global revision bump share one
transaction, so a failed request leaves the store as it was.
"""

import ipaddress
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from netweave.controller import errors, qos
from netweave.controller.attributes import (
    Attr,
    check_body,
    one_of,
    standard_view,
    to_bool,
    to_int,
    to_str,
    to_tags,
    touch,
)
from netweave.controller.db import Network, Port, Subnet, Tag, utcnow
from netweave.controller.typedrivers import NETWORK_TYPES, OVERLAY_TYPES, TYPE_LIMITS, TypeConfig

CONTROL_PLANES = ("controller", "flood-learn", "evpn")
REPLICATION = ("ingress", "multicast")


def _multicast(name: str, value: Any) -> str | None:
    if value is None:
        return None
    text = to_str(name, value)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise errors.BadRequest(f"Invalid input for {name}. Reason: '{text}' is not an IP address.") from None
    if not ip.is_multicast:
        raise errors.BadRequest(f"Invalid input for {name}. Reason: '{text}' is not a multicast address.")
    return text


ATTRS = {
    "name": Attr(to_str, default=""),
    "description": Attr(to_str, default=""),
    "admin_state_up": Attr(to_bool, default=True),
    "shared": Attr(to_bool, default=False),
    "router:external": Attr(to_bool, default=False),
    "port_security_enabled": Attr(to_bool, default=True),
    "mtu": Attr(to_int, default=None),
    "tenant_id": Attr(to_str, put=False, default=None),
    "project_id": Attr(to_str, put=False, default=None),
    "provider:network_type": Attr(one_of(*NETWORK_TYPES), put=False, default=None),
    "provider:physical_network": Attr(to_str, put=False, default=None),
    "provider:segmentation_id": Attr(to_int, put=False, default=None),
    "netweave:control_plane": Attr(one_of(*CONTROL_PLANES), default="controller"),
    "netweave:replication": Attr(one_of(*REPLICATION), default="ingress"),
    "netweave:multicast_group": Attr(_multicast, default=None),
    "netweave:arp_suppression": Attr(to_bool, default=True),
    "tags": Attr(to_tags, default=[]),
    "availability_zone_hints": Attr(lambda n, v: [], default=[]),
    "qos_policy_id": Attr(lambda n, v: v, default=None),
}


def show(net: Network, subnet_ids: list[str] | None = None) -> dict[str, Any]:
    """The API's view of a network row."""
    return {
        "id": net.id,
        "name": net.name,
        "description": net.description,
        "admin_state_up": net.admin_state_up,
        "status": net.status,
        "subnets": subnet_ids or [],
        "shared": net.shared,
        "router:external": net.router_external,
        "mtu": net.mtu,
        "port_security_enabled": net.port_security_enabled,
        "qos_policy_id": net.qos_policy_id,
        "project_id": net.project_id,
        "tenant_id": net.project_id,
        "availability_zone_hints": [],
        "availability_zones": [],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "is_default": False,
        "l2_adjacency": True,
        **standard_view(net),
        "provider:network_type": net.network_type,
        "provider:physical_network": net.physical_network or None,
        "provider:segmentation_id": net.segmentation_id,
        "netweave:control_plane": net.control_plane,
        "netweave:replication": net.replication,
        "netweave:multicast_group": net.multicast_group,
        "netweave:arp_suppression": net.arp_suppression,
    }


def _same_space(network_type: str, physnet: str) -> Any:
    """Networks whose segmentation IDs share one space with `network_type`: every overlay type shares
    one (a VTEP keys its networks by VNI alone, whatever the encapsulation), a VLAN its physical network."""
    if network_type in OVERLAY_TYPES:
        return Network.network_type.in_(OVERLAY_TYPES)
    return (Network.network_type == network_type) & (Network.physical_network == physnet)


def _allocate(session: Session, cfg: TypeConfig, network_type: str, physnet: str) -> int:
    low, high = cfg.ranges[network_type]
    used = set(session.scalars(select(Network.segmentation_id).where(_same_space(network_type, physnet))))
    for seg in range(low, high + 1):
        if seg not in used:
            return seg
    raise errors.no_segmentation_ids(network_type)


def _segment(session: Session, cfg: TypeConfig, body: dict[str, Any]) -> tuple[str, str, int | None]:
    ntype = body.get("provider:network_type") or cfg.default_type
    physnet = body.get("provider:physical_network")
    seg = body.get("provider:segmentation_id")
    if ntype in OVERLAY_TYPES:
        if physnet:
            raise errors.BadRequest(f"provider:physical_network is not allowed for {ntype} networks.")
        physnet = ""
    else:
        if not physnet:
            raise errors.BadRequest(f"provider:physical_network is required for {ntype} networks.")
        if physnet not in cfg.physical_networks:
            raise errors.BadRequest(
                f"Physical network {physnet} is unknown; configured: {', '.join(cfg.physical_networks)}."
            )
    if ntype == "flat":
        if seg is not None:
            raise errors.BadRequest("provider:segmentation_id is not allowed for flat networks.")
        taken = session.scalar(
            select(Network.id).where(Network.network_type == "flat", Network.physical_network == physnet)
        )
        if taken:
            e = errors.Conflict(f"Unable to create the flat network. Physical network {physnet} is in use.")
            e.type = "FlatNetworkInUse"
            raise e
        return ntype, physnet, None
    low, high = TYPE_LIMITS[ntype]
    if seg is None:
        return ntype, physnet, _allocate(session, cfg, ntype, physnet)
    if not low <= seg <= high:
        raise errors.BadRequest(
            f"Invalid input for provider:segmentation_id. Reason: {seg} is out of the "
            f"{ntype} range {low}-{high}."
        )
    taken = session.scalar(
        select(Network.id).where(_same_space(ntype, physnet), Network.segmentation_id == seg)
    )
    if taken:
        raise errors.segmentation_id_in_use(ntype, seg)
    return ntype, physnet, seg


def create(session: Session, cfg: TypeConfig, project: str, raw: Any) -> Network:
    body = check_body(raw, "network", ATTRS, creating=True)
    ntype, physnet, seg = _segment(session, cfg, body)
    max_mtu = cfg.mtu(ntype)
    mtu = body["mtu"] if body.get("mtu") is not None else max_mtu
    if not 68 <= mtu <= max_mtu:
        raise errors.BadRequest(f"Requested MTU {mtu} is outside 68..{max_mtu} for a {ntype} network.")
    if body["netweave:replication"] == "multicast" and not body.get("netweave:multicast_group"):
        raise errors.BadRequest("netweave:replication multicast needs netweave:multicast_group.")
    owner = body.get("project_id") or body.get("tenant_id") or project
    net = Network(
        id=str(uuid.uuid4()),
        project_id=owner,
        name=body["name"],
        description=body["description"],
        admin_state_up=body["admin_state_up"],
        shared=body["shared"],
        router_external=body["router:external"],
        status="ACTIVE",
        mtu=mtu,
        port_security_enabled=body["port_security_enabled"],
        network_type=ntype,
        physical_network=physnet,
        segmentation_id=seg,
        control_plane=body["netweave:control_plane"],
        replication=body["netweave:replication"],
        multicast_group=body.get("netweave:multicast_group"),
        arp_suppression=body["netweave:arp_suppression"],
        revision_number=0,
        created_at=utcnow(),
        updated_at=utcnow(),
        tags=[Tag(tag=t) for t in body["tags"]],
        qos_policy_id=qos.check_policy_ref(session, body["qos_policy_id"]),
    )
    session.add(net)
    try:
        session.flush()
    except IntegrityError:  # a concurrent request took the same segment between our check and insert
        raise errors.segmentation_id_in_use(ntype, seg or 0) from None
    return net


def get(session: Session, net_id: str) -> Network:
    net = session.get(Network, net_id)
    if net is None:
        raise errors.network_not_found(net_id)
    return net


def update(session: Session, cfg: TypeConfig, net_id: str, raw: Any) -> Network:
    body = check_body(raw, "network", ATTRS, creating=False)
    net = get(session, net_id)
    simple = {
        "name": "name",
        "description": "description",
        "admin_state_up": "admin_state_up",
        "shared": "shared",
        "router:external": "router_external",
        "port_security_enabled": "port_security_enabled",
        "netweave:control_plane": "control_plane",
        "netweave:arp_suppression": "arp_suppression",
        "netweave:replication": "replication",
        "netweave:multicast_group": "multicast_group",
    }
    for key, column in simple.items():
        if key in body:
            setattr(net, column, body[key])
    if "mtu" in body:
        max_mtu = cfg.mtu(net.network_type)
        if body["mtu"] is None or not 68 <= body["mtu"] <= max_mtu:
            raise errors.BadRequest(f"Requested MTU {body['mtu']} is outside 68..{max_mtu}.")
        net.mtu = body["mtu"]
    if net.replication == "multicast" and not net.multicast_group:
        raise errors.BadRequest("netweave:replication multicast needs netweave:multicast_group.")
    if "qos_policy_id" in body:
        net.qos_policy_id = qos.check_policy_ref(session, body["qos_policy_id"])
    touch(net, body)
    return net


def delete(session: Session, net_id: str) -> None:
    """Refused while ports use the network; its subnets go with it (Neutron does the same)."""
    net = get(session, net_id)
    if session.scalar(select(Port.id).where(Port.network_id == net.id).limit(1)):
        raise errors.network_in_use(net.id)
    for sub in session.scalars(select(Subnet).where(Subnet.network_id == net.id)):
        session.delete(sub)
    session.flush()
    session.delete(net)


def subnet_ids(session: Session, net_id: str | None = None) -> dict[str, list[str]]:
    """Network id -> ids of its subnets (all networks, or one)."""
    q = select(Subnet.network_id, Subnet.id).order_by(Subnet.created_at, Subnet.id)
    if net_id is not None:
        q = q.where(Subnet.network_id == net_id)
    out: dict[str, list[str]] = {}
    for nid, sid in session.execute(q):
        out.setdefault(nid, []).append(sid)
    return out
