"""Resource attributes declared as data (as neutron-lib's RESOURCE_ATTRIBUTE_MAP): which a client may
set on create (`post`) and update (`put`), how a value is converted, and its default.

`check_body` turns a request body into clean values or raises BadRequest naming the attribute:
wrong shape, unknown attribute, a read-only attribute, a value of the wrong type.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netweave.controller.db import Tag, utcnow
from netweave.controller.errors import BadRequest

Converter = Callable[[str, Any], Any]


@dataclass(frozen=True)
class Attr:
    convert: Converter
    post: bool = True
    put: bool = True
    default: Any = None


def to_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not a valid string.")
    if len(value) > 255:
        raise BadRequest(f"Invalid input for {name}. Reason: '{value[:20]}...' exceeds 255 characters.")
    return value


def to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise BadRequest(f"Invalid input for {name}. Reason: '{value}' cannot be converted to boolean.")


def to_int(name: str, value: Any) -> int | None:
    """Integers; the CLI sends some as strings ("100"), which Neutron accepts too."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not an integer.")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not an integer.")


def one_of(*options: str) -> Callable[[str, Any], str]:
    """A converter accepting exactly one of `options` (Neutron's `type:values` validator)."""

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise BadRequest(f"Invalid input for {name}. Reason: '{value}' is not in {list(options)}.")
        return value

    return check


def to_dict(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"Invalid input for {name}. Reason: a dictionary is expected.")
    return value


def as_is(name: str, value: Any) -> Any:
    """For attributes the resource module validates itself (they need the store or other attributes)."""
    return value


def to_tags(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) and 0 < len(t) <= 255 for t in value):
        raise BadRequest(f"Invalid input for {name}. Reason: a list of non-empty strings is expected.")
    return sorted(set(value))


def standard_view(row: Any, *, tags: bool = True) -> dict[str, Any]:
    """Neutron's standard attributes of a resource as the API shows them."""
    out = {
        "revision_number": row.revision_number,
        "created_at": row.created_at.isoformat() + "Z",
        "updated_at": row.updated_at.isoformat() + "Z",
    }
    if tags:
        out["tags"] = sorted(t.tag for t in row.tags)
    return out


def touch(row: Any, body: dict[str, Any] | None = None) -> None:
    """After an update: replace the tags when the body sets them, bump the revision, stamp the time."""
    if body is not None and "tags" in body:
        row.tags = [Tag(tag=t) for t in body["tags"]]
    row.revision_number += 1
    row.updated_at = utcnow()


def check_body(raw: Any, resource: str, attrs: dict[str, Attr], *, creating: bool) -> dict[str, Any]:
    """Validate `{"<resource>": {...}}` and return converted values (with defaults when creating)."""
    if not isinstance(raw, dict) or set(raw) != {resource} or not isinstance(raw[resource], dict):
        raise BadRequest(f'Resource body required: expected {{"{resource}": {{...}}}}.')
    body = raw[resource]
    out: dict[str, Any] = {}
    for key, value in body.items():
        attr = attrs.get(key)
        if attr is None:
            raise BadRequest(f"Unrecognized attribute(s) '{key}'")
        if not (attr.post if creating else attr.put):
            raise BadRequest(f"Attribute '{key}' not allowed in {'POST' if creating else 'PUT'}")
        out[key] = attr.convert(key, value)
    if creating:
        for key, attr in attrs.items():
            if key not in out and attr.post:
                out[key] = attr.default
    return out
