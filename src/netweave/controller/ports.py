"""Ports: a MAC unique in its network, fixed IPs from the network's subnets, binding to a chassis.

`status` is DOWN until the chassis reports the port wired (the agent issue); security groups, allowed
address pairs and port security are stored now and enforced by a later issue.
"""

import ipaddress
import secrets
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netweave.controller import errors, ipam, qos, security_groups
from netweave.controller.attributes import (
    Attr,
    as_is,
    check_body,
    one_of,
    standard_view,
    to_bool,
    to_dict,
    to_str,
    to_tags,
    touch,
)
from netweave.controller.db import FloatingIP, IPAllocation, Network, Port, Subnet, Tag, utcnow
from netweave.packet.addr import mac_to_bytes

BASE_MAC = "fa:16:3e"  # Neutron's default base_mac: clients and tools recognise it
VNIC_TYPES = (
    "normal",
    "direct",
    "macvtap",
    "baremetal",
    "direct-physical",
    "virtio-forwarder",
    "smart-nic",
    "vdpa",
    "remote-managed",
)
UNSET = object()


def _mac(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise errors.BadRequest(f"Invalid input for {name}. Reason: '{value}' is not a valid MAC address.")
    try:
        raw = mac_to_bytes(value)
    except ValueError:
        raise errors.BadRequest(
            f"Invalid input for {name}. Reason: '{value}' is not a valid MAC address."
        ) from None
    if raw[0] & 1 or raw == bytes(6):
        raise errors.BadRequest(f"Invalid input for {name}. Reason: '{value}' is not a unicast MAC address.")
    return raw.hex(":")


def _str_list(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise errors.BadRequest(f"Invalid input for {name}. Reason: a list of strings is expected.")
    return list(dict.fromkeys(value))


def _pairs(name: str, value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise errors.BadRequest(f"Invalid input for {name}. Reason: a list of address pairs is expected.")
    out = []
    for pair in value:
        if (
            not isinstance(pair, dict)
            or "ip_address" not in pair
            or set(pair) - {"ip_address", "mac_address"}
        ):
            raise errors.BadRequest(
                f"Invalid input for {name}. Reason: each pair is {{ip_address, mac_address}}."
            )
        try:
            ip = str(ipaddress.ip_network(pair["ip_address"], strict=False))
        except (ValueError, TypeError):
            raise errors.BadRequest(
                f"Invalid input for {name}. Reason: '{pair['ip_address']}' is not an IP address or CIDR."
            ) from None
        entry = {"ip_address": ip.removesuffix("/32").removesuffix("/128")}
        if "mac_address" in pair:
            entry["mac_address"] = _mac(name, pair["mac_address"])
        out.append(entry)
    return out


ATTRS = {
    "network_id": Attr(to_str, put=False, default=UNSET),
    "name": Attr(to_str, default=""),
    "description": Attr(to_str, default=""),
    "admin_state_up": Attr(to_bool, default=True),
    "mac_address": Attr(_mac, put=False, default=None),
    "fixed_ips": Attr(as_is, default=UNSET),
    "device_id": Attr(to_str, default=""),
    "device_owner": Attr(to_str, default=""),
    "binding:host_id": Attr(to_str, default=""),
    "binding:vnic_type": Attr(one_of(*VNIC_TYPES), default="normal"),
    "binding:profile": Attr(to_dict, default={}),
    "port_security_enabled": Attr(to_bool, default=None),
    "security_groups": Attr(_str_list, default=None),
    "allowed_address_pairs": Attr(_pairs, default=[]),
    "tenant_id": Attr(to_str, put=False, default=None),
    "project_id": Attr(to_str, put=False, default=None),
    "tags": Attr(to_tags, default=[]),
    "qos_policy_id": Attr(as_is, default=None),
}


def show(port: Port) -> dict[str, Any]:
    return {
        "id": port.id,
        "name": port.name,
        "description": port.description,
        "network_id": port.network_id,
        "project_id": port.project_id,
        "tenant_id": port.project_id,
        "mac_address": port.mac_address,
        "admin_state_up": port.admin_state_up,
        "status": port.status,
        "device_id": port.device_id,
        "device_owner": port.device_owner,
        "fixed_ips": [{"subnet_id": a.subnet_id, "ip_address": a.ip_address} for a in port.fixed_ips],
        "allowed_address_pairs": list(port.allowed_address_pairs),
        "extra_dhcp_opts": [],
        "security_groups": list(port.security_groups),
        "port_security_enabled": port.port_security_enabled,
        "binding:host_id": port.binding_host_id,
        "binding:vnic_type": port.binding_vnic_type,
        "binding:vif_type": (
            "binding_failed" if port.status_reason else "netweave" if port.binding_host_id else "unbound"
        ),
        "binding:vif_details": {"reason": port.status_reason} if port.status_reason else {},
        "binding:profile": dict(port.binding_profile),
        "qos_policy_id": port.qos_policy_id,
        "propagate_uplink_status": False,
        **standard_view(port),
    }


def _used(session: Session, subnet_id: str) -> set[str]:
    return set(session.scalars(select(IPAllocation.ip_address).where(IPAllocation.subnet_id == subnet_id)))


def _exhausted(network_id: str) -> errors.Conflict:
    e = errors.Conflict(f"No more IP addresses available on network {network_id}.")
    e.type = "IpAddressGenerationFailure"
    return e


def _allocated(ip: str, network_id: str) -> errors.Conflict:
    e = errors.Conflict(f"IP address {ip} already allocated in subnet on network {network_id}.")
    e.type = "IpAddressAlreadyAllocated"
    return e


def _resolve(
    session: Session, net: Network, raw: Any, mac: str, keep: set[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Turn a `fixed_ips` request (or its absence, UNSET) into (subnet_id, ip) pairs; `keep` are the
    port's current allocations, which an update may list again."""
    # row locks on the network's subnets serialise allocation per network on PostgreSQL, so concurrent
    # requests queue instead of all choosing the same "next free" address (SQLite's writers are serial)
    subnets = list(
        session.scalars(
            select(Subnet)
            .where(Subnet.network_id == net.id)
            .order_by(Subnet.created_at, Subnet.id)
            .with_for_update()
        )
    )
    by_id = {s.id: s for s in subnets}
    out: list[tuple[str, str]] = []
    if raw is UNSET:
        v4 = [s for s in subnets if s.ip_version == 4]
        for s in v4:
            ip = ipam.next_free(s.allocation_pools, _used(session, s.id))
            if ip is not None:
                out.append((s.id, ip))
                break
        else:
            if v4:
                raise _exhausted(net.id)
        for s in subnets:
            if s.ip_version != 6:
                continue
            if s.ipv6_address_mode in ("slaac", "dhcpv6-stateless"):
                out.append((s.id, ipam.eui64(ipam.parse_cidr(s.cidr, 6), mac)))
            else:
                ip = ipam.next_free(s.allocation_pools, _used(session, s.id))
                if ip is None:
                    raise _exhausted(net.id)
                out.append((s.id, ip))
        return out
    if not isinstance(raw, list):
        raise errors.BadRequest("Invalid input for fixed_ips. Reason: a list of {subnet_id, ip_address}.")
    for item in raw:
        if not isinstance(item, dict) or not item or set(item) - {"subnet_id", "ip_address"}:
            raise errors.BadRequest(
                "Invalid input for fixed_ips. Reason: each entry is {subnet_id, ip_address}."
            )
        sid, ip_text = item.get("subnet_id"), item.get("ip_address")
        if sid is not None and sid not in by_id:
            if session.get(Subnet, sid) is None:
                raise errors.resource_not_found("Subnet", str(sid))
            raise errors.BadRequest(f"Invalid input for operation: subnet {sid} is not on network {net.id}.")
        if ip_text is None:
            assert sid is not None  # the entry is not empty
            s = by_id[sid]
            ip = ipam.next_free(s.allocation_pools, _used(session, s.id) | {a for _, a in out})
            if ip is None:
                raise _exhausted(net.id)
            out.append((s.id, ip))
            continue
        ip_obj = ipam.parse_ip("fixed_ips", ip_text)
        candidates = (
            [by_id[sid]] if sid else [s for s in subnets if ip_obj in ipam.parse_cidr(s.cidr, s.ip_version)]
        )
        if not candidates or ip_obj not in ipam.parse_cidr(candidates[0].cidr, candidates[0].ip_version):
            e = errors.BadRequest(f"IP address {ip_text} is not a valid IP for the specified subnet.")
            e.type = "InvalidIpForSubnet"
            raise e
        s = candidates[0]
        text = str(ip_obj)
        if (s.id, text) not in keep and (text in _used(session, s.id) or (s.id, text) in out):
            raise _allocated(text, net.id)
        out.append((s.id, text))
    return out


def _new_mac(session: Session, network_id: str) -> str:
    taken = set(session.scalars(select(Port.mac_address).where(Port.network_id == network_id)))
    for _ in range(64):
        mac = f"{BASE_MAC}:{secrets.token_hex(1)}:{secrets.token_hex(1)}:{secrets.token_hex(1)}"
        if mac not in taken:
            return mac
    raise errors.Conflict("Unable to generate a unique MAC address for the network.")


def create(session: Session, project: str, raw: Any) -> Port:
    body = check_body(raw, "port", ATTRS, creating=True)
    if body["network_id"] is UNSET:
        raise errors.BadRequest("Failed to parse request. Required attribute 'network_id' not specified")
    net = session.get(Network, body["network_id"])
    if net is None:
        raise errors.network_not_found(body["network_id"])
    mac = body["mac_address"]
    if mac is None:
        mac = _new_mac(session, net.id)
    elif session.scalar(select(Port.id).where(Port.network_id == net.id, Port.mac_address == mac)):
        e = errors.Conflict(
            f"Unable to complete operation for network {net.id}. The mac address {mac} is in use."
        )
        e.type = "MacAddressInUse"
        raise e
    pairs = _resolve(session, net, body["fixed_ips"], mac, set())
    port_id = str(uuid.uuid4())
    security = (
        net.port_security_enabled if body["port_security_enabled"] is None else body["port_security_enabled"]
    )
    owner = body.get("project_id") or body.get("tenant_id") or project
    groups = security_groups.check_port_groups(session, owner, body["security_groups"], security)
    port = Port(
        id=port_id,
        network_id=net.id,
        project_id=owner,
        name=body["name"],
        description=body["description"],
        admin_state_up=body["admin_state_up"],
        mac_address=mac,
        status="DOWN",
        device_id=body["device_id"],
        device_owner=body["device_owner"],
        binding_host_id=body["binding:host_id"],
        binding_vnic_type=body["binding:vnic_type"],
        binding_profile=body["binding:profile"],
        port_security_enabled=security,
        security_groups=groups,
        allowed_address_pairs=body["allowed_address_pairs"],
        revision_number=0,
        created_at=utcnow(),
        updated_at=utcnow(),
        fixed_ips=[
            IPAllocation(subnet_id=sid, ip_address=ip, port_id=port_id, network_id=net.id)
            for sid, ip in pairs
        ],
        tags=[Tag(tag=t) for t in body["tags"]],
        qos_policy_id=qos.check_policy_ref(session, body["qos_policy_id"]),
    )
    session.add(port)
    session.flush()
    return port


def get(session: Session, port_id: str) -> Port:
    port = session.get(Port, port_id)
    if port is None:
        raise errors.resource_not_found("Port", port_id)
    return port


def update(session: Session, port_id: str, raw: Any) -> Port:
    body = check_body(raw, "port", ATTRS, creating=False)
    port = get(session, port_id)
    columns = {
        "name": "name",
        "description": "description",
        "admin_state_up": "admin_state_up",
        "device_id": "device_id",
        "device_owner": "device_owner",
        "binding:host_id": "binding_host_id",
        "binding:vnic_type": "binding_vnic_type",
        "binding:profile": "binding_profile",
        "port_security_enabled": "port_security_enabled",
        "allowed_address_pairs": "allowed_address_pairs",
    }
    old_host = port.binding_host_id
    for key, column in columns.items():
        if key in body and body[key] is not None:
            setattr(port, column, body[key])
    if port.binding_host_id != old_host:
        port.status = "DOWN"  # until the new chassis reports it wired
    if "security_groups" in body or "port_security_enabled" in body:
        wanted = body["security_groups"] if "security_groups" in body else list(port.security_groups)
        port.security_groups = security_groups.check_port_groups(
            session, port.project_id, wanted, port.port_security_enabled
        )
    if "fixed_ips" in body:
        net = session.get(Network, port.network_id)
        assert net is not None
        keep = {(a.subnet_id, a.ip_address) for a in port.fixed_ips}
        pairs = _resolve(session, net, body["fixed_ips"], port.mac_address, keep)
        port.fixed_ips = []
        session.flush()  # free the old rows first: an update may keep an address
        port.fixed_ips = [
            IPAllocation(subnet_id=sid, ip_address=ip, port_id=port.id, network_id=port.network_id)
            for sid, ip in pairs
        ]
    if "qos_policy_id" in body:
        port.qos_policy_id = qos.check_policy_ref(session, body["qos_policy_id"])
    touch(port, body)
    return port


#: ports that belong to a router or a floating IP: they go with their owner, not through /ports
OWNED = (
    "network:router_interface",
    "network:router_interface_distributed",
    "network:router_gateway",
    "network:floatingip",
)


def delete(session: Session, port_id: str) -> None:
    port = get(session, port_id)
    if port.device_owner in OWNED:
        e = errors.Conflict(
            f"Port {port.id} cannot be deleted directly via the port API: has device owner "
            f"{port.device_owner}."
        )
        e.type = "ServicePortInUse"
        raise e
    for fip in session.scalars(select(FloatingIP).where(FloatingIP.port_id == port.id)):
        # a deleted port takes its floating IPs' associations with it, as in Neutron
        fip.port_id = fip.fixed_ip_address = fip.router_id = None
        fip.revision_number += 1
    session.delete(port)
