"""Security groups and rules (stored and validated now; enforced by the datapath in a later issue).

As Neutron: every project has a group named "default" (created when the project first needs one) whose
ingress rules admit its own members; every group starts with egress-anything rules for IPv4 and IPv6.
"""

import ipaddress
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netweave.controller import errors
from netweave.controller.attributes import (
    Attr,
    as_is,
    check_body,
    one_of,
    standard_view,
    to_bool,
    to_int,
    to_str,
    to_tags,
    touch,
)
from netweave.controller.db import Port, SecurityGroup, SecurityGroupRule, Tag, utcnow

PROTOCOLS = {
    "tcp": 6,
    "udp": 17,
    "icmp": 1,
    "icmpv6": 58,
    "sctp": 132,
    "gre": 47,
    "esp": 50,
    "ah": 51,
    "ipv6-icmp": 58,
    "any": None,
}
PORTED = {"tcp", "udp", "sctp", "6", "17", "132"}
ICMP = {"icmp", "icmpv6", "ipv6-icmp", "1", "58"}
UNSET = object()


GROUP_ATTRS = {
    "name": Attr(to_str, default=""),
    "description": Attr(to_str, default=""),
    "stateful": Attr(to_bool, default=True),
    "tenant_id": Attr(to_str, put=False, default=None),
    "project_id": Attr(to_str, put=False, default=None),
    "tags": Attr(to_tags, default=[]),
}
RULE_ATTRS = {
    "security_group_id": Attr(to_str, put=False, default=UNSET),
    "direction": Attr(one_of("ingress", "egress"), put=False, default=UNSET),
    "ethertype": Attr(one_of("IPv4", "IPv6"), put=False, default="IPv4"),
    "protocol": Attr(as_is, put=False, default=None),
    "port_range_min": Attr(to_int, put=False, default=None),
    "port_range_max": Attr(to_int, put=False, default=None),
    "remote_ip_prefix": Attr(as_is, put=False, default=None),
    "remote_group_id": Attr(as_is, put=False, default=None),
    "remote_address_group_id": Attr(as_is, put=False, default=None),
    "description": Attr(to_str, default=""),
    "tenant_id": Attr(to_str, put=False, default=None),
    "project_id": Attr(to_str, put=False, default=None),
}


def show_rule(rule: SecurityGroupRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "security_group_id": rule.security_group_id,
        "project_id": rule.project_id,
        "tenant_id": rule.project_id,
        "direction": rule.direction,
        "ethertype": rule.ethertype,
        "protocol": rule.protocol,
        "port_range_min": rule.port_range_min,
        "port_range_max": rule.port_range_max,
        "remote_ip_prefix": rule.remote_ip_prefix,
        "remote_group_id": rule.remote_group_id,
        "remote_address_group_id": None,
        "normalized_cidr": rule.remote_ip_prefix,
        "description": rule.description,
        **standard_view(rule, tags=False),
    }


def show(group: SecurityGroup) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "description": group.description,
        "project_id": group.project_id,
        "tenant_id": group.project_id,
        "stateful": group.stateful,
        "shared": False,
        "security_group_rules": [show_rule(r) for r in group.rules],
        **standard_view(group),
    }


def _rule(
    group: SecurityGroup, direction: str, ethertype: str, remote_group: str | None = None
) -> SecurityGroupRule:
    return SecurityGroupRule(
        id=str(uuid.uuid4()),
        security_group_id=group.id,
        project_id=group.project_id,
        direction=direction,
        ethertype=ethertype,
        protocol=None,
        port_range_min=None,
        port_range_max=None,
        remote_ip_prefix=None,
        remote_group_id=remote_group,
        description="",
        revision_number=0,
        created_at=utcnow(),
        updated_at=utcnow(),
    )


def _new_group(
    session: Session, project: str, name: str, *, description: str, stateful: bool, tags: list[str]
) -> SecurityGroup:
    group = SecurityGroup(
        id=str(uuid.uuid4()),
        project_id=project,
        name=name,
        description=description,
        stateful=stateful,
        revision_number=0,
        created_at=utcnow(),
        updated_at=utcnow(),
        tags=[Tag(tag=t) for t in tags],
    )
    group.rules = [_rule(group, "egress", "IPv4"), _rule(group, "egress", "IPv6")]
    if name == "default":
        group.rules += [_rule(group, "ingress", "IPv4", group.id), _rule(group, "ingress", "IPv6", group.id)]
    session.add(group)
    session.flush()
    return group


def default_group(session: Session, project: str) -> SecurityGroup:
    """The project's "default" group, created the first time the project needs it."""
    group = session.scalar(
        select(SecurityGroup).where(SecurityGroup.project_id == project, SecurityGroup.name == "default")
    )
    return group or _new_group(
        session, project, "default", description="Default security group", stateful=True, tags=[]
    )


def create(session: Session, project: str, raw: Any) -> SecurityGroup:
    body = check_body(raw, "security_group", GROUP_ATTRS, creating=True)
    owner = body.get("project_id") or body.get("tenant_id") or project
    if body["name"] == "default":
        default_group(session, owner)
        e = errors.Conflict("Default security group already exists.")
        e.type = "SecurityGroupDefaultAlreadyExists"
        raise e
    default_group(session, owner)
    return _new_group(
        session,
        owner,
        body["name"],
        description=body["description"],
        stateful=body["stateful"],
        tags=body["tags"],
    )


def get(session: Session, group_id: str) -> SecurityGroup:
    group = session.get(SecurityGroup, group_id)
    if group is None:
        e = errors.NotFound(f"Security group {group_id} does not exist")
        e.type = "SecurityGroupNotFound"
        raise e
    return group


def update(session: Session, group_id: str, raw: Any) -> SecurityGroup:
    body = check_body(raw, "security_group", GROUP_ATTRS, creating=False)
    group = get(session, group_id)
    if group.name == "default" and body.get("name", "default") != "default":
        raise errors.Conflict("Updating the name of the default security group is not allowed.")
    if body.get("name") == "default" and group.name != "default":
        raise errors.Conflict("Default security group already exists.")
    for key in ("name", "description", "stateful"):
        if key in body:
            setattr(group, key, body[key])
    touch(group, body)
    return group


def delete(session: Session, group_id: str) -> None:
    group = get(session, group_id)
    if group.name == "default":
        e = errors.Conflict("Removing the default security group is not allowed.")
        e.type = "SecurityGroupCannotRemoveDefault"
        raise e
    for sg_list in session.scalars(select(Port.security_groups)):
        if group_id in sg_list:
            e = errors.Conflict(f"Security Group {group_id} in use.")
            e.type = "SecurityGroupInUse"
            raise e
    session.delete(group)


def _protocol(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).lower()
    if text in PROTOCOLS:
        return None if text == "any" else text
    if text.isdigit() and 0 <= int(text) <= 255:
        return text
    raise errors.BadRequest(
        f"Security group rule protocol {value} not supported. Only protocol values "
        f"{sorted(k for k in PROTOCOLS if k != 'any')} and integer representations [0 to 255] "
        "are supported."
    )


def _ports(protocol: str | None, low: int | None, high: int | None) -> tuple[int | None, int | None]:
    if low is None and high is None:
        return None, None
    if protocol in PORTED:
        if low is None or high is None or not 1 <= low <= high <= 65535:
            raise errors.BadRequest(
                "For TCP/UDP protocols, port_range_min must be <= port_range_max and both in 1..65535."
            )
        return low, high
    if protocol in ICMP:
        for v, what in ((low, "type"), (high, "code")):
            if v is not None and not 0 <= v <= 255:
                raise errors.BadRequest(f"Invalid value for ICMP {what}: {v} is not in 0..255.")
        if low is None and high is not None:
            raise errors.BadRequest("ICMP code (port_range_max) given without an ICMP type (port_range_min).")
        return low, high
    raise errors.BadRequest("Port ranges are only valid for TCP, UDP, SCTP and ICMP rules.")


def create_rule(session: Session, project: str, raw: Any) -> SecurityGroupRule:
    body = check_body(raw, "security_group_rule", RULE_ATTRS, creating=True)
    for required in ("security_group_id", "direction"):
        if body[required] is UNSET:
            raise errors.BadRequest(f"Failed to parse request. Required attribute '{required}' not specified")
    group = get(session, body["security_group_id"])
    protocol = _protocol(body["protocol"])
    low, high = _ports(protocol, body["port_range_min"], body["port_range_max"])
    prefix, remote_group = body["remote_ip_prefix"], body["remote_group_id"]
    if prefix is not None and remote_group is not None:
        raise errors.BadRequest("Only remote_ip_prefix or remote_group_id may be provided.")
    if prefix is not None:
        try:
            net = ipaddress.ip_network(str(prefix), strict=False)
        except ValueError:
            raise errors.BadRequest(
                f"Invalid input for remote_ip_prefix. Reason: '{prefix}' is not a valid IP prefix."
            ) from None
        if f"IPv{net.version}" != body["ethertype"]:
            raise errors.BadRequest(f"Conflicting value ethertype {body['ethertype']} for CIDR {prefix}")
        prefix = str(net)
    if remote_group is not None:
        get(session, str(remote_group))
    for r in group.rules:
        same = (
            r.direction,
            r.ethertype,
            r.protocol,
            r.port_range_min,
            r.port_range_max,
            r.remote_ip_prefix,
            r.remote_group_id,
        )
        if same == (body["direction"], body["ethertype"], protocol, low, high, prefix, remote_group):
            e = errors.Conflict(f"Security group rule already exists. Rule id is {r.id}.")
            e.type = "SecurityGroupRuleExists"
            raise e
    rule = SecurityGroupRule(
        id=str(uuid.uuid4()),
        security_group_id=group.id,
        project_id=body.get("project_id") or group.project_id,
        direction=body["direction"],
        ethertype=body["ethertype"],
        protocol=protocol,
        port_range_min=low,
        port_range_max=high,
        remote_ip_prefix=prefix,
        remote_group_id=remote_group,
        description=body["description"],
        revision_number=0,
        created_at=utcnow(),
        updated_at=utcnow(),
    )
    session.add(rule)
    group.revision_number += 1
    session.flush()
    return rule


def get_rule(session: Session, rule_id: str) -> SecurityGroupRule:
    rule = session.get(SecurityGroupRule, rule_id)
    if rule is None:
        e = errors.NotFound(f"Security group rule {rule_id} does not exist")
        e.type = "SecurityGroupRuleNotFound"
        raise e
    return rule


def update_rule(session: Session, rule_id: str, raw: Any) -> SecurityGroupRule:
    body = check_body(raw, "security_group_rule", RULE_ATTRS, creating=False)
    rule = get_rule(session, rule_id)
    if "description" in body:
        rule.description = body["description"]
    touch(rule)
    return rule


def delete_rule(session: Session, rule_id: str) -> None:
    rule = get_rule(session, rule_id)
    group = session.get(SecurityGroup, rule.security_group_id)
    if group is not None:
        group.revision_number += 1
    session.delete(rule)


def check_port_groups(session: Session, project: str, ids: list[str] | None, enabled: bool) -> list[str]:
    """The groups a port gets: the ones asked for (all must exist), else the project's default group
    when port security is on."""
    if ids is None:
        return [default_group(session, project).id] if enabled else []
    for gid in ids:
        get(session, gid)
    if ids and not enabled:
        e = errors.Conflict(
            "Port has security group associated. Cannot disable port security or ip address "
            "until security group is removed."
        )
        e.type = "PortSecurityAndIPRequiredForSecurityGroups"
        raise e
    return ids
