"""A chassis view on the wire: three tables of JSON objects, and diffs between two of them.

A view is `{"networks": {vni: network}, "ports": {port id: port}, "remotes": {"vni/mac": remote},
"routers": {router id: router}}`, each
entry in the model's JSON form (`netweave.model.wire`) plus a few keys only the agent reads (`label`). A
diff is `{table: {"set": {key: entry}, "del": [key]}}`; `patch(view, diff)` turns the old view into the new
one, so an agent that applies every diff in order holds exactly what a full fetch would give it.
"""

from typing import Any

from netweave.model import DatapathState
from netweave.model.wire import network_from_json, port_from_json, remote_from_json, router_from_json

TABLES = ("networks", "ports", "remotes", "routers")
#: keys of a view's port entry that are for the agent, not the datapath
PORT_EXTRAS = ("label",)

View = dict[str, dict[str, Any]]
Diff = dict[str, dict[str, Any]]


def empty() -> View:
    return {t: {} for t in TABLES}


def diff(old: View, new: View) -> Diff:
    """What turns `old` into `new` (an empty dict when they are equal)."""
    out: Diff = {}
    for table in TABLES:
        a, b = old.get(table, {}), new.get(table, {})
        sets = {k: v for k, v in b.items() if a.get(k) != v}
        dels = sorted(k for k in a if k not in b)
        if sets or dels:
            out[table] = {"set": sets, "del": dels}
    return out


def patch(view: View, change: Diff) -> View:
    """`view` with `change` applied, as a new object (the argument is not modified)."""
    out = {t: dict(view.get(t, {})) for t in TABLES}
    for table, ops in change.items():
        if table not in out or not isinstance(ops, dict):
            raise ValueError(f"diff: unknown table {table!r}")
        for key in ops.get("del", ()):
            out[table].pop(key, None)
        out[table].update(ops.get("set", {}))
    return out


def merge_into(target: Diff, change: Diff) -> None:
    """Fold `change` into the accumulated diff `target` (later wins), in place."""
    for table, ops in change.items():
        acc = target.setdefault(table, {"set": {}, "del": []})
        for key in ops.get("del", ()):
            acc["set"].pop(key, None)
            if key not in acc["del"]:
                acc["del"].append(key)
        for key, value in ops.get("set", {}).items():
            acc["set"][key] = value
            if key in acc["del"]:
                acc["del"].remove(key)


def to_state(view: View, netns_for: Any = None) -> DatapathState:
    """The datapath's part of a view. `netns_for(port entry)` chooses the namespace of ports whose view
    entry has none (the agent's own convention); ValueError for a malformed entry."""
    ports = []
    for entry in view.get("ports", {}).values():
        fields = {k: v for k, v in entry.items() if k not in PORT_EXTRAS}
        if fields.get("netns") is None and netns_for is not None:
            fields["netns"] = netns_for(entry)
        ports.append(port_from_json(fields))
    return DatapathState(
        networks=tuple(network_from_json(n) for n in view.get("networks", {}).values()),
        ports=tuple(sorted(ports, key=lambda p: p.name)),
        remotes=tuple(remote_from_json(r) for r in view.get("remotes", {}).values()),
        routers=tuple(router_from_json(r) for r in view.get("routers", {}).values()),
    )
