"""The JSON form of the model's value types, shared by the control socket, the controller's views and the
agent: plain objects with the dataclass field names, lists for tuples, hex for Geneve option data.

Decoding validates (the dataclasses check themselves); a bad object raises ValueError naming the field.
"""

from dataclasses import asdict
from typing import Any

from netweave.model import (
    DatapathState,
    Network,
    Port,
    Remote,
    Route,
    Router,
    RouterHost,
    RouterInterface,
    Subnet,
)
from netweave.packet.tunnel import GeneveOption

Json = dict[str, Any]


def ips_of(value: Any) -> tuple[str, ...]:
    """One address or a list of them (the `ip` of YAML files and control requests) as a tuple."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"ips: expected an address or a list of addresses, not {value!r}")
    return tuple(value)


def _fields(obj: Any, kind: str, allowed: set[str], required: set[str]) -> Json:
    if not isinstance(obj, dict):
        raise ValueError(f"{kind}: expected an object, not {type(obj).__name__}")
    unknown = set(obj) - allowed
    if unknown:
        raise ValueError(f"{kind}: unknown attribute(s): {', '.join(sorted(unknown))}")
    missing = required - set(obj)
    if missing:
        raise ValueError(f"{kind}: missing attribute(s): {', '.join(sorted(missing))}")
    return obj


_NETWORK = {"vni", "encap", "mode", "flood", "multicast_group", "arp_suppression", "unknown_arp",
            "unknown_unicast", "geneve_options", "subnets"}
_SUBNET = {"cidr", "gateway_ip", "dhcp", "dns", "host_routes", "ipv6_address_mode", "ipv6_ra_mode"}


def subnet_to_json(sub: Subnet) -> Json:
    out = asdict(sub)
    out["dns"] = list(sub.dns)
    out["host_routes"] = [{"destination": d, "nexthop": h} for d, h in sub.host_routes]
    return out


def subnet_from_json(obj: Any) -> Subnet:
    d = dict(_fields(obj, "subnet", _SUBNET, {"cidr"}))
    try:
        d["dns"] = ips_of(d.get("dns"))
        d["host_routes"] = tuple((str(r["destination"]), str(r["nexthop"])) for r in d.get("host_routes", ()))
        d["dhcp"] = bool(d.get("dhcp", False))
    except (KeyError, TypeError) as exc:
        raise ValueError(f"subnet: malformed attribute: {exc}") from None
    return Subnet(**d)


def network_to_json(net: Network) -> Json:
    out = asdict(net)
    out["flood"] = list(net.flood)
    out["geneve_options"] = [{"class": o.option_class, "type": o.type, "data": o.data.hex()}
                             for o in net.geneve_options]
    out["subnets"] = [subnet_to_json(s) for s in net.subnets]
    return out


def network_from_json(obj: Any) -> Network:
    d = dict(_fields(obj, "network", _NETWORK, {"vni"}))
    try:
        d["vni"] = int(d["vni"])
        d["flood"] = ips_of(d.get("flood"))
        d["geneve_options"] = tuple(
            GeneveOption(option_class=int(o["class"]), type=int(o["type"]),
                         data=bytes.fromhex(o.get("data", "")))
            for o in d.get("geneve_options", ()))
        d["subnets"] = tuple(subnet_from_json(x) for x in d.get("subnets", ()))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"network: malformed attribute: {exc}") from None
    return Network(**d)


_PORT = {"name", "vni", "mac", "ips", "ip", "netns", "port_id"}


def _withips_of(value: Port | Remote) -> Json:
    out = asdict(value)
    out["ips"] = list(value.ips)
    return out


def port_to_json(port: Port) -> Json:
    return _withips_of(port)


def port_from_json(obj: Any) -> Port:
    d = dict(_fields(obj, "port", _PORT, {"name", "vni", "mac"}))
    ips = ips_of(d.pop("ips", None)) + ips_of(d.pop("ip", None))
    return Port(name=str(d["name"]), vni=int(d["vni"]), mac=str(d["mac"]), ips=ips, netns=d.get("netns"),
                port_id=str(d.get("port_id", "")))


_REMOTE = {"vni", "mac", "vtep", "ips", "ip"}


def remote_to_json(remote: Remote) -> Json:
    return _withips_of(remote)


def remote_from_json(obj: Any) -> Remote:
    d = dict(_fields(obj, "remote", _REMOTE, {"vni", "mac", "vtep"}))
    ips = ips_of(d.pop("ips", None)) + ips_of(d.pop("ip", None))
    return Remote(vni=int(d["vni"]), mac=str(d["mac"]), vtep=str(d["vtep"]), ips=ips)


_ROUTER = {"name", "l3_vni", "rmac", "irb", "interfaces", "hosts", "routes"}


def router_to_json(router: Router) -> Json:
    out = asdict(router)
    for key in ("interfaces", "hosts", "routes"):
        out[key] = list(out[key])
    return out


def router_from_json(obj: Any) -> Router:
    d = dict(_fields(obj, "router", _ROUTER, {"name", "l3_vni", "rmac"}))
    try:
        d["l3_vni"] = int(d["l3_vni"])
        d["interfaces"] = tuple(RouterInterface(**_fields(i, "router interface", {
            "vni", "cidr", "gateway_ip", "mac", "encap"}, {"vni", "cidr", "gateway_ip", "mac"}))
            for i in d.get("interfaces", ()))
        d["hosts"] = tuple(RouterHost(**_fields(h, "router host", {"ip", "vni", "mac", "vtep", "rmac"},
                                                {"ip", "vni", "mac", "vtep", "rmac"}))
                           for h in d.get("hosts", ()))
        route_keys = {"destination", "nexthop"}
        d["routes"] = tuple(Route(**_fields(r, "route", route_keys, route_keys)) for r in d.get("routes", ()))
    except (TypeError, AttributeError) as exc:
        raise ValueError(f"router: malformed attribute: {exc}") from None
    return Router(**d)


def state_to_json(state: DatapathState) -> Json:
    return {"networks": [network_to_json(n) for n in state.networks],
            "ports": [port_to_json(p) for p in state.ports],
            "remotes": [remote_to_json(r) for r in state.remotes],
            "routers": [router_to_json(r) for r in state.routers]}


def state_from_json(obj: Any) -> DatapathState:
    d = _fields(obj, "state", {"networks", "ports", "remotes", "routers"}, set())
    for key in ("networks", "ports", "remotes", "routers"):
        if not isinstance(d.get(key, []), list):
            raise ValueError(f"state: {key} must be a list")
    return DatapathState(networks=tuple(network_from_json(n) for n in d.get("networks", [])),
                         ports=tuple(port_from_json(p) for p in d.get("ports", [])),
                         remotes=tuple(remote_from_json(r) for r in d.get("remotes", [])),
                         routers=tuple(router_from_json(r) for r in d.get("routers", [])))
