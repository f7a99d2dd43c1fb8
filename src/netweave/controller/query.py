"""Neutron's collection query semantics, shared by every resource: filters, `fields`, sorting and
pagination (`limit`, `marker`, `page_reverse`, `<collection>_links`).

- Filters: any top-level attribute; a repeated key matches any of its values (OR), different keys must
  all match (AND). Values compare as Neutron's clients send them: text ("True", "100").
- `fields=a&fields=b`: only those attributes (unknown names are ignored, as Neutron does).
- `sort_key`/`sort_dir` in pairs; `id` breaks ties so pages are stable.
"""

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

from netweave.controller.errors import BadRequest

CONTROL_PARAMS = {"fields", "limit", "marker", "page_reverse", "sort_key", "sort_dir"}
TAG_PARAMS = ("tags", "tags-any", "not-tags", "not-tags-any")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    return "" if value is None else str(value)


def _matches(item: dict[str, Any], key: str, wanted: Sequence[str]) -> bool:
    value = item.get(key)
    if isinstance(value, list):  # e.g. tags, subnets: any element matches
        return any(_text(v) in wanted for v in value)
    text = _text(value)
    if isinstance(value, bool):
        return text.lower() in {w.lower() for w in wanted}
    return text in wanted


def _sort_key(key: str) -> Callable[[dict[str, Any]], tuple[bool, str]]:
    return lambda item: (item.get(key) is None, _text(item.get(key)))


def _tag_filter(items: list[dict[str, Any]], params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Neutron's tag filters: `tags=a,b` all of them, `tags-any` any, `not-tags` not all, `not-tags-any`
    none of them (each may repeat; values are comma-separated)."""
    for key in TAG_PARAMS:
        wanted = {t for k, v in params if k == key for t in v.split(",") if t}
        if not wanted:
            continue
        if key == "tags":
            items = [i for i in items if wanted <= set(i.get("tags", []))]
        elif key == "tags-any":
            items = [i for i in items if wanted & set(i.get("tags", []))]
        elif key == "not-tags":
            items = [i for i in items if not wanted <= set(i.get("tags", []))]
        else:
            items = [i for i in items if not wanted & set(i.get("tags", []))]
    return items


def apply(
    items: list[dict[str, Any]], params: list[tuple[str, str]], *, collection: str, base_url: str
) -> dict[str, Any]:
    """Filter, sort, page and project `items` (already shaped as the API shows them)."""
    filters: dict[str, list[str]] = {}
    for k, v in params:
        if k not in CONTROL_PARAMS and k not in TAG_PARAMS:
            filters.setdefault(k, []).append(v)
    items = _tag_filter(items, params)
    known = set(items[0]) if items else set()
    for key, wanted in filters.items():
        if items and key not in known:
            raise BadRequest(f"{key} is not a valid filter for {collection}")
        items = [i for i in items if _matches(i, key, wanted)]

    sort_keys = [v for k, v in params if k == "sort_key"]
    sort_dirs = [v for k, v in params if k == "sort_dir"]
    if len(sort_dirs) not in (0, len(sort_keys)):
        raise BadRequest("sort_key and sort_dir must be given in pairs")
    order = [*list(zip(sort_keys, sort_dirs or ["asc"] * len(sort_keys), strict=True)), ("id", "asc")]
    for key, direction in reversed(order):
        if direction not in ("asc", "desc"):
            raise BadRequest(f"sort_dir must be asc or desc, not {direction!r}")
        if items and key not in known:
            raise BadRequest(f"{key} is not a valid sort key for {collection}")
        items = sorted(items, key=_sort_key(key), reverse=direction == "desc")

    single = dict(params)
    links = []
    limit_text = single.get("limit")
    if limit_text is not None:
        try:
            limit = int(limit_text)
        except ValueError:
            raise BadRequest(f"limit must be an integer, not {limit_text!r}") from None
        if limit < 0:
            raise BadRequest("limit must not be negative")
        reverse = single.get("page_reverse", "False").lower() == "true"
        marker = single.get("marker")
        if reverse:
            items = items[::-1]
        if marker is not None:
            ids = [i["id"] for i in items]
            if marker not in ids:
                raise BadRequest(f"marker {marker} does not name an item of {collection}")
            items = items[ids.index(marker) + 1 :]
        if limit and len(items) > limit:
            items = items[:limit]
            nxt = [(k, v) for k, v in params if k not in ("marker",)] + [("marker", items[-1]["id"])]
            links.append({"rel": "previous" if reverse else "next", "href": f"{base_url}?{urlencode(nxt)}"})
        if reverse:
            items = items[::-1]

    fields = [v for k, v in params if k == "fields"]
    if fields:
        items = [{k: v for k, v in i.items() if k in fields} for i in items]
    out: dict[str, Any] = {collection: items}
    if links:
        out[f"{collection}_links"] = links
    return out
