"""Symmetric-IRB distributed routers for the kernel datapath: the pure part (names, what a router needs on
this chassis, the difference between two pictures of a router namespace, route messages).

This kernel has no VRF, so a router is a network namespace of its own per chassis (Neutron's qrouter
namespace), with
- per local network (a network with a bridge here) a veth leg: `<prefix>q<hash>` in the network's bridge,
  `qr<vni>` in the router namespace with the anycast gateway MAC and the gateway addresses;
- the L3 VNI: a VXLAN device `vx<l3 vni>` created from the host namespace straight into the router's (so
  its UDP socket is the host's, shared with the networks' VXLAN devices), MAC = this chassis' router MAC;
- per remote VM address: a route `ip/32` (`/128`) on that device, a permanent neighbour entry ip ->
  the remote chassis' router MAC, and an fdb entry router MAC -> the remote VTEP (one per router MAC);
- the static routes (`destination via nexthop`).
`KernelDatapath` (kernel.py) does the writing; this module only decides.
"""

import dataclasses
import hashlib
import ipaddress
import re
import socket
import struct
from collections.abc import Iterable

from netweave.datapath.nlpack import HDR as _HDR
from netweave.datapath.nlpack import attrs as _attrs
from netweave.datapath.nlpack import nla as _nla
from netweave.model import Router

IFNAMSIZ = 15
L3_DEVICE_PREFIX = "vx"
LEG_PREFIX = "qr"

# ---------------------------------------------------------------- rtnetlink route numbers (linux/rtnetlink.h)
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_TABLE = 1, 4, 5, 15
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RT_SCOPE_NOWHERE = 0, 253, 255  # NOWHERE on a delete: any scope
RTN_UNICAST = 1
NLM_F_REQUEST = 0x1
NLM_F_REPLACE, NLM_F_CREATE = 0x100, 0x400

_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags

#: sysctls of a router namespace: forwarding, and no DAD (the gateway addresses, link-local included,
#: exist on every chassis at once: anycast)
ROUTER_SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.ipv6.conf.all.forwarding": "1",
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
}


# ---------------------------------------------------------------- names


def netns_base(host_netns: str | None, vtep_ip: str) -> str:
    """What every router namespace of one chassis starts with: the chassis' own namespace name when it
    has one (lab hosts, test hosts: unique on the machine, and whoever removes `<name>-*` removes its
    routers too), else its VTEP address (the root namespace of a real chassis)."""
    if host_netns:
        return f"{host_netns}-"
    return re.sub(r"[^0-9A-Za-z]+", "-", vtep_ip).strip("-") + "-"


def router_netns(base: str, prefix: str, l3_vni: int) -> str:
    return f"{base}{prefix}r{l3_vni}"


def router_netns_pattern(base: str, prefix: str) -> "re.Pattern[str]":
    """Matches the router namespaces one datapath owns; group 1 is the L3 VNI."""
    return re.compile(rf"{re.escape(base)}{re.escape(prefix)}r([0-9]{{1,8}})")


def leg_device_name(prefix: str, l3_vni: int, vni: int) -> str:
    """The host end of a router's leg into network `vni`: prefix + 'q' + a hash (a leg is named by two
    VNIs, which do not fit a device name; the alias keeps them)."""
    digest = hashlib.sha1(f"{l3_vni}/{vni}".encode()).hexdigest()
    return f"{prefix}q{digest[: IFNAMSIZ - len(prefix) - 1]}"


def leg_router_name(vni: int) -> str:
    return f"{LEG_PREFIX}{vni}"


def l3_device_name(l3_vni: int) -> str:
    return f"{L3_DEVICE_PREFIX}{l3_vni}"


# ---------------------------------------------------------------- what a router needs here


@dataclasses.dataclass(frozen=True)
class Leg:
    """A router's leg into one local network: gateway MAC and addresses (`ip/prefixlen`, the kernel's
    spelling, sorted)."""

    vni: int
    mac: str
    addrs: tuple[str, ...]

    @property
    def ips(self) -> tuple[str, ...]:
        return tuple(a.split("/")[0] for a in self.addrs)


@dataclasses.dataclass
class RouterEntries:
    """The routing-table part of a router namespace: routes (`dst/plen` -> "" for a host route on the L3
    VXLAN device, or the nexthop of a static route), neighbour entries on the L3 device (ip -> router
    MAC) and its fdb (router MAC -> VTEP). Addresses in the kernel's spelling."""

    routes: dict[str, str] = dataclasses.field(default_factory=dict)
    neigh: dict[str, str] = dataclasses.field(default_factory=dict)
    fdb: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RouterPlan:
    name: str
    l3_vni: int
    rmac: str
    legs: dict[int, Leg]
    entries: RouterEntries
    notes: tuple[str, ...] = ()  # what could not be built as asked (logged)


def _canon(ip: str) -> str:
    fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return socket.inet_ntop(fam, socket.inet_pton(fam, ip))


def host_prefix(ip: str) -> str:
    ip = _canon(ip)
    return f"{ip}/{128 if ':' in ip else 32}"


def plan_router(router: Router, vtep_ip: str, local_vnis: Iterable[int]) -> RouterPlan:
    """What symmetric-IRB router `router` needs on the chassis with VTEP `vtep_ip` whose networks are
    `local_vnis`: a leg per local network of the router, the host routes of the VMs behind other VTEPs
    and the static routes. Local VMs need nothing (the connected subnet on their leg reaches them)."""
    local = set(local_vnis)
    me = _canon(vtep_ip)
    notes: list[str] = []
    macs: dict[int, str] = {}
    addrs: dict[int, set[str]] = {}
    for iface in sorted(router.interfaces, key=lambda i: (i.vni, i.cidr)):
        if iface.vni not in local:
            continue
        mac = macs.setdefault(iface.vni, iface.mac)
        if mac != iface.mac:
            notes.append(f"router {router.name}: network {iface.vni} has gateways with MACs {mac} and "
                         f"{iface.mac}; the kernel leg answers for {iface.cidr} with {mac}")
        plen = ipaddress.ip_network(iface.cidr).prefixlen
        addrs.setdefault(iface.vni, set()).add(f"{_canon(iface.gateway_ip)}/{plen}")
    legs = {vni: Leg(vni, macs[vni], tuple(sorted(addrs[vni]))) for vni in sorted(macs)}
    ent = RouterEntries()
    for h in router.hosts:
        vtep = _canon(h.vtep)
        if vtep == me:
            continue
        ent.routes[host_prefix(h.ip)] = ""
        ent.neigh[_canon(h.ip)] = h.rmac
        ent.fdb[h.rmac] = vtep
    for r in router.routes:
        net = ipaddress.ip_network(r.destination)
        ent.routes[f"{_canon(str(net.network_address))}/{net.prefixlen}"] = _canon(r.nexthop)
    return RouterPlan(router.name, router.l3_vni, router.rmac, legs, ent, tuple(notes))


@dataclasses.dataclass(frozen=True)
class RouteOp:
    """One write in a router namespace: `what` is route | neigh | fdb; key dst/plen, ip or MAC; value
    nexthop ("" = on the L3 device), MAC or VTEP."""

    what: str
    add: bool
    key: str
    value: str = ""


def diff_router(have: RouterEntries, want: RouterEntries) -> list[RouteOp]:
    """The writes from `have` to `want`: routes leave before the neighbour and fdb entries they rely on,
    and arrive after them (a route never points at a router MAC the device cannot reach). A changed
    entry is one replacing write."""
    out: dict[str, list[RouteOp]] = {k: [] for k in ("route-", "neigh-", "fdb-", "fdb+", "neigh+", "route+")}
    for what, h, w in (("route", have.routes, want.routes), ("neigh", have.neigh, want.neigh),
                       ("fdb", have.fdb, want.fdb)):
        for key in sorted(h.keys() - w.keys()):
            out[f"{what}-"].append(RouteOp(what, False, key, h[key]))
        for key in sorted(w.keys()):
            if h.get(key) != w[key]:
                out[f"{what}+"].append(RouteOp(what, True, key, w[key]))
    return [op for ops in out.values() for op in ops]


def apply_router_ops(entries: RouterEntries, ops: Iterable[RouteOp]) -> None:
    for op in ops:
        table = getattr(entries, "routes" if op.what == "route" else op.what)
        if op.add:
            table[op.key] = op.value
        else:
            table.pop(op.key, None)


# ---------------------------------------------------------------- route messages



def encode_route(op: RouteOp, seq: int, oif: int) -> bytes:
    """RTM_NEWROUTE (create or replace) / RTM_DELROUTE in the main table, protocol static: a host route
    on device `oif` (value "") or `dst via nexthop`."""
    dst, plen_text = op.key.split("/")
    plen = int(plen_text)
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    host = op.value == ""
    scope = RT_SCOPE_LINK if host else RT_SCOPE_UNIVERSE
    body = _RTMSG.pack(fam, plen, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, scope if op.add else RT_SCOPE_NOWHERE,
                       RTN_UNICAST if op.add else 0, 0)
    body += _nla(RTA_TABLE, struct.pack("=I", RT_TABLE_MAIN))
    if plen:
        body += _nla(RTA_DST, socket.inet_pton(fam, dst))
    if op.add:
        if host:
            body += _nla(RTA_OIF, struct.pack("=i", oif))
        else:
            body += _nla(RTA_GATEWAY, socket.inet_pton(fam, op.value))
    kind = RTM_NEWROUTE if op.add else RTM_DELROUTE
    flags = NLM_F_REQUEST | (NLM_F_CREATE | NLM_F_REPLACE if op.add else 0)
    return _HDR.pack(16 + len(body), kind, flags, seq, 0) + body



def parse_route(buf: bytes, off: int, end: int, oif: int | None) -> tuple[str, str] | None:
    """(dst/plen, "" or nexthop) of one route-dump message when it is one of ours (main table, protocol
    static, unicast); a route on another device than `oif` without a nexthop reads as "?" (rewritten)."""
    fam, plen, _, _, table, proto, _, rtype, _ = _RTMSG.unpack_from(buf, off)
    a = _attrs(buf, off + _RTMSG.size, end)
    if RTA_TABLE in a:
        table = struct.unpack("=I", a[RTA_TABLE])[0]
    if table != RT_TABLE_MAIN or proto != RTPROT_STATIC or rtype != RTN_UNICAST \
            or fam not in (socket.AF_INET, socket.AF_INET6):
        return None
    zero = "::" if fam == socket.AF_INET6 else "0.0.0.0"
    dst = socket.inet_ntop(fam, a[RTA_DST]) if RTA_DST in a else zero
    if RTA_GATEWAY in a:
        return f"{dst}/{plen}", socket.inet_ntop(fam, a[RTA_GATEWAY])
    dev = struct.unpack("=i", a[RTA_OIF])[0] if RTA_OIF in a else None
    return f"{dst}/{plen}", "" if dev == oif else "?"


def route_dump_request() -> bytes:
    """The body of an RTM_GETROUTE dump of every family."""
    return _RTMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0, 0, 0, 0, 0)
