"""QoS policies with bandwidth-limit and DSCP-marking rules (stored and validated now; the datapath
applies them in a later issue). Networks and ports refer to a policy by `qos_policy_id`."""

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netweave.controller import errors
from netweave.controller.attributes import (
    Attr,
    check_body,
    standard_view,
    to_bool,
    to_int,
    to_str,
    to_tags,
    touch,
)
from netweave.controller.db import Network, Port, QosPolicy, QosRule, Tag, utcnow

#: neutron-lib's VALID_DSCP_MARKS
VALID_DSCP_MARKS = (0, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 46, 48, 56)
MAX_KBPS = 2**31 - 1
UNSET = object()


def _kbps(name: str, value: Any) -> int | None:
    v = to_int(name, value)
    if v is not None and not 0 <= v <= MAX_KBPS:
        raise errors.BadRequest(f"Invalid input for {name}. Reason: {v} is not in 0..{MAX_KBPS}.")
    return v


def _direction(name: str, value: Any) -> str:
    if value not in ("egress", "ingress"):
        raise errors.BadRequest(
            f"Invalid input for {name}. Reason: '{value}' is not in ['egress', 'ingress']."
        )
    return str(value)


def _dscp(name: str, value: Any) -> int | None:
    v = to_int(name, value)
    if v is not None and v not in VALID_DSCP_MARKS:
        raise errors.BadRequest(f"Invalid input for {name}. Reason: {v} is not in {list(VALID_DSCP_MARKS)}.")
    return v


POLICY_ATTRS = {
    "name": Attr(to_str, default=""),
    "description": Attr(to_str, default=""),
    "shared": Attr(to_bool, default=False),
    "is_default": Attr(to_bool, default=False),
    "tenant_id": Attr(to_str, put=False, default=None),
    "project_id": Attr(to_str, put=False, default=None),
    "tags": Attr(to_tags, default=[]),
}


@dataclass(frozen=True)
class RuleType:
    """One QoS rule type: its URL/body names and attribute declarations."""

    name: str  # "bandwidth_limit"
    attrs: dict[str, Attr]
    fields: tuple[str, ...]

    @property
    def member(self) -> str:
        return f"{self.name}_rule"

    @property
    def collection(self) -> str:
        return f"{self.name}_rules"


RULE_TYPES = {
    "bandwidth_limit": RuleType(
        "bandwidth_limit",
        {
            "max_kbps": Attr(_kbps, default=UNSET),
            "max_burst_kbps": Attr(_kbps, default=0),
            "direction": Attr(_direction, default="egress"),
        },
        ("max_kbps", "max_burst_kbps", "direction"),
    ),
    "dscp_marking": RuleType("dscp_marking", {"dscp_mark": Attr(_dscp, default=UNSET)}, ("dscp_mark",)),
}


def show_rule(rule: QosRule) -> dict[str, Any]:
    rt = RULE_TYPES[rule.type]
    out: dict[str, Any] = {"id": rule.id, "qos_policy_id": rule.policy_id, "type": rule.type}
    out.update({f: getattr(rule, f) for f in rt.fields})
    return out


def show(policy: QosPolicy) -> dict[str, Any]:
    return {
        "id": policy.id,
        "name": policy.name,
        "description": policy.description,
        "project_id": policy.project_id,
        "tenant_id": policy.project_id,
        "shared": policy.shared,
        "is_default": policy.is_default,
        "rules": [show_rule(r) for r in policy.rules],
        **standard_view(policy),
    }


def _check_default(session: Session, project: str, is_default: bool, policy_id: str | None) -> None:
    if not is_default:
        return
    other = session.scalar(
        select(QosPolicy.id).where(
            QosPolicy.project_id == project, QosPolicy.is_default, QosPolicy.id != (policy_id or "")
        )
    )
    if other:
        e = errors.Conflict(f"A default QoS policy exists for project {project}.")
        e.type = "QoSPolicyDefaultAlreadyExists"
        raise e


def create(session: Session, project: str, raw: Any) -> QosPolicy:
    body = check_body(raw, "policy", POLICY_ATTRS, creating=True)
    owner = body.get("project_id") or body.get("tenant_id") or project
    _check_default(session, owner, body["is_default"], None)
    policy = QosPolicy(
        id=str(uuid.uuid4()),
        project_id=owner,
        name=body["name"],
        description=body["description"],
        shared=body["shared"],
        is_default=body["is_default"],
        revision_number=0,
        created_at=utcnow(),
        updated_at=utcnow(),
        tags=[Tag(tag=t) for t in body["tags"]],
    )
    session.add(policy)
    session.flush()
    return policy


def get(session: Session, policy_id: str) -> QosPolicy:
    policy = session.get(QosPolicy, policy_id)
    if policy is None:
        e = errors.NotFound(f"QoS policy {policy_id} could not be found.")
        e.type = "QosPolicyNotFound"
        raise e
    return policy


def update(session: Session, policy_id: str, raw: Any) -> QosPolicy:
    body = check_body(raw, "policy", POLICY_ATTRS, creating=False)
    policy = get(session, policy_id)
    if "is_default" in body:
        _check_default(session, policy.project_id, body["is_default"], policy.id)
    for key in ("name", "description", "shared", "is_default"):
        if key in body:
            setattr(policy, key, body[key])
    touch(policy, body)
    return policy


def delete(session: Session, policy_id: str) -> None:
    policy = get(session, policy_id)
    for model, kind in ((Network, "network"), (Port, "port")):
        user = session.scalar(select(model.id).where(model.qos_policy_id == policy.id).limit(1))
        if user:
            e = errors.Conflict(f"QoS Policy {policy.id} is used by {kind} {user}.")
            e.type = "QosPolicyInUse"
            raise e
    session.delete(policy)


def check_policy_ref(session: Session, policy_id: Any) -> str | None:
    """Validate a `qos_policy_id` on a network or port."""
    if policy_id is None:
        return None
    return get(session, to_str("qos_policy_id", policy_id)).id


def create_rule(session: Session, rt: RuleType, policy_id: str, raw: Any) -> QosRule:
    policy = get(session, policy_id)
    body = check_body(raw, rt.member, rt.attrs, creating=True)
    for key, value in body.items():
        if value is UNSET:
            raise errors.BadRequest(f"Failed to parse request. Required attribute '{key}' not specified")
    for existing in policy.rules:
        if existing.type == rt.name and (
            rt.name != "bandwidth_limit" or existing.direction == body["direction"]
        ):
            e = errors.Conflict(
                f"Rule {rt.name} already exists in QoS policy {policy.id}"
                + (f" for direction {body['direction']}." if "direction" in body else ".")
            )
            e.type = "QoSRulesConflict"
            raise e
    rule = QosRule(id=str(uuid.uuid4()), policy_id=policy.id, type=rt.name, **body)
    policy.rules.append(rule)
    policy.revision_number += 1
    session.flush()
    return rule


def get_rule(session: Session, rt: RuleType, policy_id: str, rule_id: str) -> QosRule:
    get(session, policy_id)
    rule = session.get(QosRule, rule_id)
    if rule is None or rule.policy_id != policy_id or rule.type != rt.name:
        e = errors.NotFound(f"QoS rule {rule_id} for policy {policy_id} could not be found.")
        e.type = "QosRuleNotFound"
        raise e
    return rule


def update_rule(session: Session, rt: RuleType, policy_id: str, rule_id: str, raw: Any) -> QosRule:
    rule = get_rule(session, rt, policy_id, rule_id)
    body = check_body(raw, rt.member, rt.attrs, creating=False)
    for key, value in body.items():
        if value is None:
            raise errors.BadRequest(f"Invalid input for {key}. Reason: a value is required.")
        setattr(rule, key, value)
    get(session, policy_id).revision_number += 1
    return rule


def delete_rule(session: Session, rt: RuleType, policy_id: str, rule_id: str) -> None:
    rule = get_rule(session, rt, policy_id, rule_id)
    get(session, policy_id).revision_number += 1
    session.delete(rule)
