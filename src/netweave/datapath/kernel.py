"""The kernel datapath: the same `DatapathState` made of Linux objects, so the kernel forwards.

Per network (VNI): a bridge `<prefix>br<vni>` and a VXLAN device `<prefix>vx<vni>` as its port. Per VM
port: a veth pair, `port.name` inside the VM's namespace, `<prefix>p<hash of the name>` in the bridge.
Per remote MAC: a VXLAN fdb entry `mac dst vtep self permanent` (where to send it), a bridge fdb entry
`mac dev vxlan master static` (so the bridge neither floods it nor drops it with `flood off`, and so
`neigh_suppress` finds it), and one permanent neighbour entry per IP on the bridge (what
`neigh_suppress` answers ARP/NS from: the bridge looks up the target in the neighbour table of the
bridge device, then needs a bridge fdb entry for that MAC on a port with `neigh_suppress` - measured on
6.18, either alone still floods). Local ports' IPs get neighbour entries too, which keeps ARP between
two local VMs out of the tunnel. The flood set is `00:00:00:00:00:00 dst <vtep>` entries (ingress
replication) or the VXLAN `group`. Everything is named from `prefix`, and only those names are touched.

Details that matter (each found the hard way on 6.18):
- The bridge gets a fixed MAC. Otherwise it takes the lowest MAC of its ports, and when a port leaves,
  the MAC change flushes every neighbour entry of the bridge, permanent ones included.
- Our bridges, VXLAN devices and host ends of veths have IPv6 `addr_gen_mode none` (set before they
  are up) and the bridges no multicast snooping: the host itself must not send DAD, RS or MLD reports
  into a tenant network. The VM ends are the VM's business.
- The VM end of a veth is created directly in the VM's namespace with its MAC and MTU, but the kernel
  takes no flags for a peer, so it is brought up from inside that namespace (one more request).
- Port identity (name in the VM, namespace, port id) lives in the host end's alias; a network's
  `unknown_arp` (no kernel attribute) in its bridge's alias. `state()` reads both back.
- VXLAN MTU and the veths' MTU are the underlay MTU minus the VXLAN overhead from `netweave.packet`.

How it stays fast (measured here, 10,000 remote MACs = 30,000 kernel entries):
- pyroute2 compiles ~50 us per neighbour message (IPBatch ~290 us) and waits for each answer (~0.45 ms
  a request), i.e. seconds for 10,000 MACs. Neighbour-table writes are therefore packed with `struct`
  (they are three fixed headers and two attributes) and sent in 32 KiB batches on our own NETLINK_ROUTE
  socket without NLM_F_ACK: rtnetlink handles a batch synchronously inside `sendto`, answers only
  failures, and a trailing NLMSG_NOOP with NLM_F_ACK marks the end. Dumps of those tables are parsed the
  same way. Links (a handful per network and port) go through pyroute2.
- `apply` keeps a picture of what it installed. The kernel is read back (links, fdb, neighbours, the VM
  ends of the veths) on the first apply, after any failed write, and every `resync_s`; in between only
  link events (RTMGRP_LINK, on a socket read without blocking at each apply) about our own devices make
  it re-read the links. Remote MACs are compared as sets of `Remote` values, so one change among 10,000
  costs a set difference and the few writes it needs, not a dump. Someone deleting our fdb or neighbour
  entries by hand is therefore repaired at the next resync, not at the next apply.

Routers (symmetric IRB only; no VRF in this kernel, so one namespace per router, as Neutron's qrouter
namespaces; the pure part is `kernel_router.py`, docs/routing.md has the whole construction):
- namespace `<this namespace's name>-<prefix>r<L3 VNI>` (an unnamed namespace: the VTEP address instead),
  ip_forward and IPv6 forwarding on, no DAD (anycast gateways exist on every chassis);
- per local network a veth leg `<prefix>q<hash>` (bridge) / `qr<vni>` (router: gateway MAC and addresses,
  IPv6 nodad); the bridge gets a sticky static fdb entry for the gateway MAC and neighbour entries for the
  gateway addresses, so ARP/NS for the gateway never leaves the chassis;
- the L3 VNI: a VXLAN device created from the host namespace straight into the router's (the UDP socket
  stays with the underlay; moving one there afterwards is equivalent), MAC = the router MAC, nolearning;
- per remote VM: route ip/32|128 on it, permanent neighbour ip -> remote router MAC, fdb router MAC ->
  VTEP; static routes `via nexthop`. Written as one netlink batch in the namespace, by difference.
The kernel routes at both ends: a TTL decrement on the ingress and on the egress chassis (two traceroute
hops between kernel chassis, where the userspace router shows one). No native DHCP (`dhcp: false`).

What the kernel cannot do is reported, never pretended: networks of other encapsulations (their ports
are in `errors`), `unknown_arp: drop` (the bridge floods ARP for addresses it has no entry for;
recorded in the bridge's alias and listed under `unsupported` in the result), and asymmetric routers
(`unsupported`, and their networks' ports in `errors`).
"""

import contextlib
import dataclasses
import errno
import functools
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from netweave.datapath.kernel_router import (
    LEG_PREFIX,
    ROUTER_SYSCTLS,
    RTM_GETROUTE,
    RouteOp,
    RouterEntries,
    RouterPlan,
    apply_router_ops,
    diff_router,
    encode_route,
    l3_device_name,
    leg_device_name,
    leg_router_name,
    netns_base,
    parse_route,
    plan_router,
    route_dump_request,
    router_netns,
    router_netns_pattern,
)
from netweave.datapath.nlpack import HDR as _HDR
from netweave.datapath.nlpack import attrs as _attrs
from netweave.datapath.nlpack import nla as _nla
from netweave.model import DatapathState, Network, Port, Remote, Router
from netweave.packet.overhead import overhead_bytes
from netweave.packet.tunnel import VXLAN_PORT

log = logging.getLogger(__name__)

IFNAMSIZ = 15
VNI_DIGITS = 8  # 16777215
PREFIX_MAX = IFNAMSIZ - 2 - VNI_DIGITS
IFALIASZ = 255
RESYNC_S = 600.0

# ---------------------------------------------------------------- netlink numbers (linux/*netlink.h)
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
NLM_F_REPLACE, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x400, 0x800
NLM_F_ACK_TLVS = 0x200  # on an NLMSG_ERROR: extended-ack attributes follow
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
RTMGRP_LINK = 0x1
AF_BRIDGE = 7
NDA_DST, NDA_LLADDR, NDA_IFINDEX, NDA_MASTER = 1, 2, 8, 9
IFLA_IFNAME = 3
NTF_SELF, NTF_MASTER, NTF_EXT_LEARNED, NTF_STICKY = 0x02, 0x04, 0x10, 0x40
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
IN6_ADDR_GEN_MODE_NONE = 1
IFA_F_NODAD = 0x02
ZERO_MAC = "00:00:00:00:00:00"

_NDMSG = struct.Struct("=BxxxiHBB")  # ndmsg: family, ifindex, state, flags, type
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
_ERR = struct.Struct("=i")
BATCH_BYTES = 32 * 1024
SOCKET_BUFFER = 8 * 1024 * 1024
NO_ADDR_GEN = {"attrs": [("AF_INET6", {"attrs": [("IFLA_INET6_ADDR_GEN_MODE", IN6_ADDR_GEN_MODE_NONE)]})]}


class KernelError(OSError):
    """A netlink request failed; `str()` is the kernel's reason (and its extended-ack message)."""


# ---------------------------------------------------------------- names


def check_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9]*", prefix) or len(prefix) > PREFIX_MAX:
        raise ValueError(f"prefix {prefix!r}: 1-{PREFIX_MAX} lowercase letters and digits, a letter first "
                         f"(bridge names are prefix + 'br' + up to {VNI_DIGITS} VNI digits <= {IFNAMSIZ})")
    return prefix


def bridge_name(prefix: str, vni: int) -> str:
    return f"{prefix}br{vni}"


def vxlan_name(prefix: str, vni: int) -> str:
    return f"{prefix}vx{vni}"


def port_device_name(prefix: str, port_name: str) -> str:
    """The host end of a port's veth: prefix + 'p' + a hash of the port name (port names are already
    15 characters, so they cannot be extended; the alias keeps the real name)."""
    digest = hashlib.sha1(port_name.encode()).hexdigest()
    return f"{prefix}p{digest[: IFNAMSIZ - len(prefix) - 1]}"


class Names:
    """Recognises the devices one prefix owns; everything else on the host is left alone."""

    def __init__(self, prefix: str) -> None:
        self.prefix = check_prefix(prefix)
        self._net = re.compile(rf"{re.escape(prefix)}(br|vx)([0-9]{{1,{VNI_DIGITS}}})")
        self._port = re.compile(rf"{re.escape(prefix)}p[0-9a-f]{{{IFNAMSIZ - len(prefix) - 1}}}")
        self._leg = re.compile(rf"{re.escape(prefix)}q[0-9a-f]{{{IFNAMSIZ - len(prefix) - 1}}}")

    def owns(self, name: str) -> bool:
        return bool(self._net.fullmatch(name) or self._port.fullmatch(name) or self._leg.fullmatch(name))

    def network(self, name: str) -> tuple[str, int] | None:
        """("br" | "vx", vni) for a network device name."""
        m = self._net.fullmatch(name)
        return (m.group(1), int(m.group(2))) if m else None

    def is_port(self, name: str) -> bool:
        return bool(self._port.fullmatch(name))

    def is_leg(self, name: str) -> bool:
        """The host end of a router's leg (`kernel_router.leg_device_name`)."""
        return bool(self._leg.fullmatch(name))


# ---------------------------------------------------------------- addresses


@functools.lru_cache(maxsize=1 << 17)
def canon_ip(text: str) -> str:
    """The kernel's spelling of an address, so that what we read back compares equal to what we want."""
    fam = socket.AF_INET6 if ":" in text else socket.AF_INET
    return socket.inet_ntop(fam, socket.inet_pton(fam, text))


@functools.lru_cache(maxsize=1 << 17)
def _nla_ip(text: str, kind: int) -> tuple[int, bytes]:
    fam = socket.AF_INET6 if ":" in text else socket.AF_INET
    return fam, _nla(kind, socket.inet_pton(fam, text))


@functools.lru_cache(maxsize=1 << 17)
def _nla_mac(mac: str) -> bytes:
    return _nla(NDA_LLADDR, bytes.fromhex(mac.replace(":", "")))




# ---------------------------------------------------------------- the neighbour tables as data


@dataclasses.dataclass(frozen=True)
class Neigh:
    """One message of a neighbour-table dump (fdb entries are neighbours of family AF_BRIDGE)."""

    family: int
    ifindex: int
    state: int
    flags: int
    dst: str | None
    lladdr: str | None
    master: int | None


def messages(buf: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, flags, seq, payload offset, message end) of every netlink message in `buf`."""
    off, size = 0, len(buf)
    while off + 16 <= size:
        n, kind, flags, seq, _ = _HDR.unpack_from(buf, off)
        if n < 16 or off + n > size:
            break
        yield kind, flags, seq, off + 16, off + n
        off += (n + 3) & ~3


def parse_neigh(buf: bytes, off: int, end: int) -> Neigh:
    family, ifindex, state, flags, _ = _NDMSG.unpack_from(buf, off)
    a = _attrs(buf, off + _NDMSG.size, end)
    dst = a.get(NDA_DST)
    mac = a.get(NDA_LLADDR)
    master = a.get(NDA_MASTER)
    fam = socket.AF_INET6 if dst is not None and len(dst) == 16 else socket.AF_INET
    return Neigh(family, ifindex, state, flags, socket.inet_ntop(fam, dst) if dst else None,
                 mac.hex(":") if mac is not None and len(mac) == 6 else None,
                 struct.unpack("=I", master)[0] if master is not None else None)


def neigh_message(kind: int, flags: int, seq: int, *, family: int, ifindex: int, state: int, ntf: int,
                  attrs: bytes) -> bytes:
    body = _NDMSG.pack(family, ifindex, state, ntf, 0) + attrs
    return _HDR.pack(16 + len(body), kind, NLM_F_REQUEST | flags, seq, 0) + body


@dataclasses.dataclass
class Entries:
    """The neighbour-table part of a datapath, what is installed or what is wanted. Keys are VNIs, so the
    same picture serves any device naming; addresses are in the kernel's spelling (`canon_ip`)."""

    fdb: dict[tuple[int, str], str] = dataclasses.field(default_factory=dict)  # (vni, mac) -> vtep
    master: set[tuple[int, str]] = dataclasses.field(default_factory=set)  # bridge static entries
    flood: dict[int, set[str]] = dataclasses.field(default_factory=dict)  # vni -> all-zeros dsts
    neigh: dict[tuple[int, str], str] = dataclasses.field(default_factory=dict)  # (vni, ip) -> mac

    def drop_vni(self, vni: int, *, fdb: bool = True, neigh: bool = True) -> None:
        """Forget what the kernel removed with a device (fdb with the VXLAN device, neighbours and the
        bridge's static entries with the bridge)."""
        if fdb:
            for key in [k for k in self.fdb if k[0] == vni]:
                del self.fdb[key]
            self.flood.pop(vni, None)
        if fdb or neigh:  # bridge entries live on the vxlan port and in the bridge
            self.master = {k for k in self.master if k[0] != vni}
        if neigh:
            for key in [k for k in self.neigh if k[0] == vni]:
                del self.neigh[key]


@dataclasses.dataclass(frozen=True)
class Op:
    """One neighbour-table write: `what` is fdb | master | flood | neigh, `add` or delete."""

    what: str
    add: bool
    vni: int
    key: str  # mac (fdb, master), vtep (flood) or ip (neigh)
    value: str = ""  # vtep (fdb) or mac (neigh)


def remote_entries(remotes: Iterable[Remote], vnis: Iterable[int]) -> tuple[dict[tuple[int, str], str],
                                                                             dict[tuple[int, str], str]]:
    """(fdb, neighbours) the remotes of the networks `vnis` need."""
    ok = set(vnis)
    fdb: dict[tuple[int, str], str] = {}
    neigh: dict[tuple[int, str], str] = {}
    for r in remotes:
        if r.vni in ok:
            fdb[r.vni, r.mac] = canon_ip(r.vtep)
            for ip in r.ips:
                neigh[r.vni, canon_ip(ip)] = r.mac
    return fdb, neigh


def port_neighbours(ports: Iterable[Port]) -> dict[tuple[int, str], str]:
    return {(p.vni, canon_ip(ip)): p.mac for p in ports for ip in p.ips}


def diff_entries(have: Entries, want: Entries, *, fdb_keys: Iterable[tuple[int, str]] | None = None,
                 neigh_keys: Iterable[tuple[int, str]] | None = None) -> list[Op]:
    """The writes that turn `have` into `want`: deletions first (neighbour entries before the fdb
    entries they rely on, so an ARP answer never names a MAC the bridge no longer has), then additions
    (fdb before the neighbour entries that answer for it). With `fdb_keys` / `neigh_keys` only those keys
    are compared (the incremental path); the flood sets always are (one per network)."""
    fkeys = have.fdb.keys() | want.fdb.keys() | have.master | want.master if fdb_keys is None else fdb_keys
    nkeys = have.neigh.keys() | want.neigh.keys() if neigh_keys is None else neigh_keys
    neigh_del: list[Op] = []
    master_del: list[Op] = []
    fdb_del: list[Op] = []
    fdb_add: list[Op] = []
    master_add: list[Op] = []
    neigh_add: list[Op] = []
    for key in nkeys:
        h, w = have.neigh.get(key), want.neigh.get(key)
        if h != w:
            if w is None:
                neigh_del.append(Op("neigh", False, key[0], key[1], h or ""))
            else:
                neigh_add.append(Op("neigh", True, key[0], key[1], w))
    for key in fkeys:
        vni, mac = key
        h, w = have.fdb.get(key), want.fdb.get(key)
        if h is not None and w is None:
            fdb_del.append(Op("fdb", False, vni, mac, h))
        elif w is not None and h != w:
            fdb_add.append(Op("fdb", True, vni, mac, w))
        if key in have.master and key not in want.master:
            master_del.append(Op("master", False, vni, mac))
        elif key in want.master and key not in have.master:
            master_add.append(Op("master", True, vni, mac))
    flood_del: list[Op] = []
    flood_add: list[Op] = []
    for vni in have.flood.keys() | want.flood.keys():
        h_set, w_set = have.flood.get(vni, set()), want.flood.get(vni, set())
        flood_del.extend(Op("flood", False, vni, v) for v in sorted(h_set - w_set))
        flood_add.extend(Op("flood", True, vni, v) for v in sorted(w_set - h_set))
    return neigh_del + master_del + fdb_del + flood_del + fdb_add + master_add + flood_add + neigh_add


def apply_ops(entries: Entries, ops: Iterable[Op]) -> None:
    """Record `ops` in a picture (what the kernel holds once they succeeded)."""
    for op in ops:
        if op.what == "neigh":
            if op.add:
                entries.neigh[op.vni, op.key] = op.value
            else:
                entries.neigh.pop((op.vni, op.key), None)
        elif op.what == "fdb":
            if op.add:
                entries.fdb[op.vni, op.key] = op.value
            else:
                entries.fdb.pop((op.vni, op.key), None)
        elif op.what == "master":
            if op.add:
                entries.master.add((op.vni, op.key))
            else:
                entries.master.discard((op.vni, op.key))
        elif op.add:
            entries.flood.setdefault(op.vni, set()).add(op.key)
        elif op.vni in entries.flood:
            entries.flood[op.vni].discard(op.key)
            if not entries.flood[op.vni]:
                del entries.flood[op.vni]


class Planner:
    """The wanted neighbour-table entries, kept from one apply to the next so that a change among many
    remotes costs a set difference over the `Remote` values plus the writes it needs, not a comparison
    of every entry. With other networks than last time (or after `reset`) it compares everything.
    The view keys remotes by (vni, mac), so one remote owns its fdb key; a neighbour key (vni, ip) is a
    local port's before it is a remote's. (Two remotes claiming one address in a network is a broken view:
    the full comparison lets the last one win, the incremental one the most recently added.)"""

    def __init__(self) -> None:
        self.remotes: set[Remote] = set()
        self.fdb: dict[tuple[int, str], str] = {}
        self.rneigh: dict[tuple[int, str], str] = {}
        self.pneigh: dict[tuple[int, str], str] = {}
        self.vnis: frozenset[int] | None = None  # None: compare everything next time

    def reset(self) -> None:
        self.vnis = None

    def plan(self, have: Entries, remotes: Iterable[Remote], ports: Iterable[Port],
             flood: dict[int, set[str]], vnis: frozenset[int]) -> list[Op]:
        """The writes from `have` to the entries of `remotes`, `ports` and `flood` in networks `vnis`."""
        target = Entries(flood={v: s for v, s in flood.items() if s and v in vnis})
        pneigh = port_neighbours(p for p in ports if p.vni in vnis)
        given = tuple(remotes)
        wanted = set(given)
        if vnis == self.vnis:
            gone, new = self.remotes - wanted, wanted - self.remotes
            fkeys: set[tuple[int, str]] = set()
            nkeys: set[tuple[int, str]] = set(pneigh) | set(self.pneigh)
            for r in gone:
                fkeys.add((r.vni, r.mac))
                self.fdb.pop((r.vni, r.mac), None)
                for ip in r.ips:
                    key = (r.vni, canon_ip(ip))
                    nkeys.add(key)
                    if self.rneigh.get(key) == r.mac:
                        del self.rneigh[key]
            add_fdb, add_neigh = remote_entries(new, vnis)
            self.fdb.update(add_fdb)
            self.rneigh.update(add_neigh)
            fkeys.update((r.vni, r.mac) for r in new)
            nkeys.update(add_neigh)
            target.fdb = {k: v for k in fkeys if (v := self.fdb.get(k)) is not None}
            target.master = set(target.fdb)
            target.neigh = {k: v for k in nkeys if (v := pneigh.get(k) or self.rneigh.get(k)) is not None}
            ops = diff_entries(have, target, fdb_keys=fkeys, neigh_keys=nkeys)
        else:
            self.fdb, self.rneigh = remote_entries(given, vnis)
            target.fdb = self.fdb
            target.master = set(self.fdb)
            target.neigh = {**self.rneigh, **pneigh}
            ops = diff_entries(have, target)
        self.remotes, self.pneigh, self.vnis = wanted, pneigh, vnis
        return ops


def encode_op(op: Op, seq: int, vx_index: int, br_index: int) -> bytes:
    """The RTM_NEWNEIGH / RTM_DELNEIGH request for one write (what `bridge fdb` / `ip neigh` send)."""
    kind = RTM_NEWNEIGH if op.add else RTM_DELNEIGH
    replace = NLM_F_CREATE | NLM_F_REPLACE if op.add else 0
    if op.what == "neigh":
        fam, dst = _nla_ip(op.key, NDA_DST)
        attrs = dst + _nla_mac(op.value) if op.add else dst
        return neigh_message(kind, replace, seq, family=fam, ifindex=br_index, state=NUD_PERMANENT, ntf=0,
                             attrs=attrs)
    if op.what == "master":
        return neigh_message(kind, replace, seq, family=AF_BRIDGE, ifindex=vx_index, state=NUD_NOARP,
                             ntf=NTF_MASTER, attrs=_nla_mac(op.key))
    if op.what == "fdb":
        attrs = _nla_mac(op.key) + _nla_ip(op.value, NDA_DST)[1]
        return neigh_message(kind, replace, seq, family=AF_BRIDGE, ifindex=vx_index, state=NUD_PERMANENT,
                             ntf=NTF_SELF, attrs=attrs)
    attrs = _nla_mac(ZERO_MAC) + _nla_ip(op.key, NDA_DST)[1]
    append = NLM_F_CREATE | NLM_F_APPEND if op.add else 0
    return neigh_message(kind, append, seq, family=AF_BRIDGE, ifindex=vx_index, state=NUD_PERMANENT,
                         ntf=NTF_SELF, attrs=attrs)


# ---------------------------------------------------------------- our own netlink socket


def _netlink_socket(ns: str | None, groups: int = 0) -> socket.socket:
    if ns is None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    else:  # created by a child process inside the namespace: setns here would move this thread
        sock = netns.create_socket(ns, family=socket.AF_NETLINK, socket_type=socket.SOCK_RAW,
                                   proto=socket.NETLINK_ROUTE, flags=0)
    for opt, fallback in ((SO_SNDBUFFORCE, socket.SO_SNDBUF), (SO_RCVBUFFORCE, socket.SO_RCVBUF)):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCKET_BUFFER)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, fallback, SOCKET_BUFFER)
    with contextlib.suppress(OSError):
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # errors without a copy of our request
        sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)  # ... but with the kernel's reason
    sock.bind((0, groups))
    return sock


def _error(buf: bytes, off: int, end: int, flags: int) -> tuple[int, str]:
    """(errno, text) of an NLMSG_ERROR (errno 0 is an ack)."""
    code = -_ERR.unpack_from(buf, off)[0]
    if not code:
        return 0, ""
    text = os.strerror(code)
    if flags & NLM_F_ACK_TLVS:
        msg = _attrs(buf, off + 4 + 16, end).get(NLMSGERR_ATTR_MSG, b"").rstrip(b"\0")
        if msg:
            text += f" ({msg.decode(errors='replace')})"
    return code, text


class RawNetlink:
    """A NETLINK_ROUTE socket for the bulk neighbour-table work: batched writes and fast dumps."""

    def __init__(self, ns: str | None) -> None:
        self.sock = _netlink_socket(ns)
        self.seq = int.from_bytes(secrets.token_bytes(2), "big") << 8

    def next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0x7FFFFFFF
        return self.seq

    def write(self, msgs: list[bytes]) -> dict[int, tuple[int, str]]:
        """Send `msgs` (each with its own seq and without NLM_F_ACK) in batches; {seq: (errno, text)} of
        the ones the kernel refused. rtnetlink runs each batch inside sendto, so after the last one a
        NOOP with NLM_F_ACK comes back after every error the batch produced."""
        errors: dict[int, tuple[int, str]] = {}
        buf = bytearray()
        for msg in msgs:
            if len(buf) + len(msg) > BATCH_BYTES:
                self.sock.send(buf)
                self._collect(errors, None)
                buf.clear()
            buf += msg
        barrier = self.next_seq()
        buf += _HDR.pack(16, NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, barrier, 0)
        self.sock.send(buf)
        self._collect(errors, barrier)
        return errors

    def _collect(self, errors: dict[int, tuple[int, str]], until: int | None) -> None:
        """Read answers; without `until` only what is queued, with it until that ack arrived."""
        while True:
            try:
                data = self.sock.recv(65536, 0 if until is not None else socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:  # answers were lost: the caller must re-read the kernel
                    errors[-1] = (errno.ENOBUFS, "netlink answers lost (receive buffer overrun)")
                    continue
                raise
            for kind, flags, seq, off, end in messages(data):
                if kind != NLMSG_ERROR:
                    continue
                code, text = _error(data, off, end, flags)
                if seq == until and until is not None:
                    return
                if code:
                    errors[seq] = (code, text)

    def dump(self, kind: int, body: bytes) -> list[tuple[bytes, int, int]]:
        """All answers to a dump request: (buffer, payload offset, end) per message. Retried when the
        kernel says the dump was interrupted by a concurrent change."""
        for _ in range(5):
            seq = self.next_seq()
            self.sock.send(_HDR.pack(16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
            out: list[tuple[bytes, int, int]] = []
            interrupted = False
            done = False
            while not done:
                data = self.sock.recv(65536)
                for mkind, flags, mseq, off, end in messages(data):
                    if mseq != seq:
                        continue
                    interrupted |= bool(flags & NLM_F_DUMP_INTR)
                    if mkind == NLMSG_DONE:
                        done = True
                        break
                    if mkind == NLMSG_ERROR:
                        code, text = _error(data, off, end, flags)
                        if code:
                            raise KernelError(code, text)
                        done = True
                        break
                    out.append((data, off, end))
            if not interrupted:
                return out
        raise KernelError(errno.EINTR, "dump interrupted by concurrent changes five times")

    def fdb(self, vx_index: int) -> list[Neigh]:
        """The fdb entries of one bridge port: the VXLAN device's own (self) and the bridge's (master)."""
        req = _NDMSG.pack(AF_BRIDGE, vx_index, 0, 0, 0)
        return [n for n in (parse_neigh(b, o, e) for b, o, e in self.dump(RTM_GETNEIGH, req))
                if n.ifindex == vx_index]

    def neighbours(self, br_index: int) -> list[Neigh]:
        """The neighbour entries (IPv4 and IPv6) on one device."""
        req = _NDMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _nla(NDA_IFINDEX, struct.pack("=I", br_index))
        return [n for n in (parse_neigh(b, o, e) for b, o, e in self.dump(RTM_GETNEIGH, req))
                if n.ifindex == br_index]

    def close(self) -> None:
        self.sock.close()


class LinkEvents:
    """RTMGRP_LINK notifications, read without blocking: which of our devices changed since last time."""

    def __init__(self, ns: str | None, names: Names) -> None:
        self.sock = _netlink_socket(ns, RTMGRP_LINK)
        self.sock.setblocking(False)
        self.names = names

    def changed(self) -> set[str] | None:
        """Names of owned devices with news (None: events were lost, assume anything changed)."""
        out: set[str] = set()
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return out
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.drain()
                    return None
                raise
            for kind, _, _, off, end in messages(data):
                if kind in (RTM_NEWLINK, RTM_DELLINK):
                    name = _attrs(data, off + _IFINFO.size, end).get(IFLA_IFNAME, b"").rstrip(b"\0").decode()
                    if self.names.owns(name):
                        out.add(name)

    def drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                self.sock.recv(65536)

    def close(self) -> None:
        self.sock.close()


# ---------------------------------------------------------------- links (through pyroute2)


def _get(msg: Any, *path: str) -> Any:
    """A nested attribute of a pyroute2 message, None when any level is missing."""
    for name in path:
        if msg is None:
            return None
        msg = msg.get(name)
    return msg


@dataclasses.dataclass(frozen=True)
class Link:
    """The attributes of an owned device that `apply` compares."""

    name: str
    index: int
    kind: str
    up: bool
    mtu: int
    master: int | None
    alias: str
    addr_gen_mode: int | None
    vxlan: tuple[Any, ...] | None  # (id, local, port, learning, group, underlay index)
    brport: tuple[int, int, int] | None  # (learning, unicast_flood, neigh_suppress)
    snooping: int | None  # a bridge's multicast snooping
    address: str = ""

    @classmethod
    def from_msg(cls, msg: Any) -> "Link":
        info = msg.get("IFLA_LINKINFO")
        kind = _get(info, "IFLA_INFO_KIND") or ""
        vx = None
        if kind == "vxlan":
            d = _get(info, "IFLA_INFO_DATA")
            local = d.get("IFLA_VXLAN_LOCAL") or d.get("IFLA_VXLAN_LOCAL6")
            group = d.get("IFLA_VXLAN_GROUP") or d.get("IFLA_VXLAN_GROUP6")
            vx = (d.get("IFLA_VXLAN_ID"), canon_ip(local) if local else None, d.get("IFLA_VXLAN_PORT"),
                  int(d.get("IFLA_VXLAN_LEARNING") or 0),
                  canon_ip(group) if group and group not in ("0.0.0.0", "::") else None,
                  d.get("IFLA_VXLAN_LINK") or None)
        slave = _get(info, "IFLA_INFO_SLAVE_DATA") if _get(info, "IFLA_INFO_SLAVE_KIND") == "bridge" else None
        brport = None
        if slave is not None:
            brport = (int(slave.get("IFLA_BRPORT_LEARNING") or 0),
                      int(slave.get("IFLA_BRPORT_UNICAST_FLOOD") or 0),
                      int(slave.get("IFLA_BRPORT_NEIGH_SUPPRESS") or 0))
        snooping = _get(info, "IFLA_INFO_DATA", "IFLA_BR_MCAST_SNOOPING") if kind == "bridge" else None
        return cls(name=msg.get("IFLA_IFNAME"), index=msg["index"], kind=kind, up=bool(msg["flags"] & 1),
                   mtu=msg.get("IFLA_MTU") or 0, master=msg.get("IFLA_MASTER"),
                   alias=msg.get("IFLA_IFALIAS") or "",
                   addr_gen_mode=_get(msg, "IFLA_AF_SPEC", "AF_INET6", "IFLA_INET6_ADDR_GEN_MODE"),
                   vxlan=vx, brport=brport, snooping=snooping,
                   address=(msg.get("IFLA_ADDRESS") or "").lower())


@dataclasses.dataclass(frozen=True)
class VmEnd:
    """The VM's end of a port's veth, read in the VM's namespace."""

    index: int
    mac: str
    mtu: int
    up: bool
    peer: int | None  # ifindex of its peer (our end), as the VM's namespace reports it


@dataclasses.dataclass(frozen=True)
class PortAlias:
    """What the host end's alias records: the port's identity, which its device name cannot hold."""

    port: str
    netns: str | None
    port_id: str

    def text(self) -> str:
        return json.dumps({"port": self.port, "netns": self.netns, "port_id": self.port_id},
                          separators=(",", ":"))

    @classmethod
    def parse(cls, text: str) -> "PortAlias | None":
        try:
            d = json.loads(text)
            return cls(str(d["port"]), d["netns"], str(d.get("port_id", "")))
        except (ValueError, KeyError, TypeError):
            return None


def _bridge_alias(net: Network) -> str:
    """The bridge records what the kernel has no attribute for (so `state()` can report the spec)."""
    return json.dumps({"unknown_arp": net.unknown_arp}, separators=(",", ":"))


@dataclasses.dataclass
class Picture:
    """What `apply` believes the kernel holds: owned links, VM ends of ports, neighbour-table entries."""

    links: dict[str, Link]
    vm: dict[str, VmEnd | None]  # host end name -> its VM end (None: not found)
    entries: Entries
    read_at: float


@dataclasses.dataclass(frozen=True)
class LegEnd:
    """The router's end of a leg, read in the router's namespace."""

    index: int
    mac: str
    mtu: int
    up: bool
    peer: int | None
    addrs: frozenset[str]  # global addresses, "ip/prefixlen"


@dataclasses.dataclass
class RouterNs:
    """One router namespace as `apply` believes it is: read in full when first seen, at every full read
    of the kernel and after a failed write; in between only what `apply` wrote changes it."""

    ns: str
    l3_vni: int
    ipr: Any
    nl: "RawNetlink"
    l3: Link | None = None
    ends: dict[str, LegEnd] = dataclasses.field(default_factory=dict)
    entries: RouterEntries = dataclasses.field(default_factory=RouterEntries)
    read_gen: int = -1  # the datapath's full-read generation this picture is from (-1: read again)
    applied: RouterPlan | None = None  # the plan the routing entries were last made equal to

    def close(self) -> None:
        self.nl.close()
        self.ipr.close()


def _leg_alias(router: str, ns: str, vni: int) -> str:
    return json.dumps({"router": router, "netns": ns, "vni": vni}, separators=(",", ":"))


def _leg_router(alias: str) -> str | None:
    try:
        return str(json.loads(alias)["router"])
    except (ValueError, KeyError, TypeError):
        return None


#: run in a child process: enter a namespace, set sysctls that differ, print how many (this Python has
#: no os.setns, and setns in this process would move the calling thread)
_SYSCTL_CHILD = r"""
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = os.open(sys.argv[1], os.O_RDONLY)
if libc.setns(fd, 0x40000000) != 0:
    sys.exit("setns: " + os.strerror(ctypes.get_errno()))
changed = 0
for key, value in json.loads(sys.argv[2]).items():
    path = "/proc/sys/" + key.replace(".", "/")
    with open(path) as f:
        if f.read().strip() == value:
            continue
    with open(path, "w") as f:
        f.write(value)
    changed += 1
print(changed)
"""


def ns_sysctls(ns: str, values: dict[str, str]) -> int:
    """Make the sysctls `values` hold inside namespace `ns`; the number changed."""
    path = os.path.join(netns.NETNS_RUN_DIR, ns)
    r = subprocess.run([sys.executable, "-I", "-S", "-c", _SYSCTL_CHILD, path, json.dumps(values)],
                       capture_output=True, text=True, timeout=30, check=False)
    if r.returncode:
        raise KernelError(errno.EIO, f"sysctls in {ns}: {r.stderr.strip() or r.returncode}")
    return int(r.stdout)


def own_netns_name() -> str | None:
    """The name (under /run/netns) of the namespace this thread is in, if it has one."""
    try:
        me = os.stat("/proc/thread-self/ns/net")
        names = sorted(os.listdir(netns.NETNS_RUN_DIR))
    except OSError:
        return None
    for name in names:
        try:
            st = os.stat(os.path.join(netns.NETNS_RUN_DIR, name))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (me.st_dev, me.st_ino):
            return str(name)
    return None


# ---------------------------------------------------------------- capabilities

KINDS = ("vxlan", "geneve", "gretap", "vlan", "bond", "vrf", "bridge", "veth")
_FEATURES: dict[str, bool] = {}  # filled once per process


def probe_features() -> dict[str, bool]:
    """What this kernel can create, found by creating one device of each kind in a throwaway namespace
    (with everything built in there is no module list to read, and modprobe -n says nothing about what
    the running kernel was built with). Also whether bridge ports take `neigh_suppress`. Cached: the
    kernel does not change under a running process (a module could be loaded later; restart to see it)."""
    if _FEATURES:
        return dict(_FEATURES)
    name = f"nwcaps{os.getpid()}{secrets.token_hex(3)}"
    found = dict.fromkeys((*KINDS, "neigh_suppress"), False)
    try:
        netns.create(name)
    except OSError as exc:
        log.warning("cannot create a namespace to probe kernel features: %s", exc)
        return found
    try:
        with IPRoute(netns=name, flags=0) as ipr:
            tries: dict[str, dict[str, Any]] = {
                "bridge": {}, "veth": {"peer": "c1"}, "vxlan": {"vxlan_id": 1, "vxlan_port": VXLAN_PORT},
                "geneve": {"geneve_id": 1, "geneve_remote": "192.0.2.1"}, "gretap": {}, "bond": {},
                "vrf": {"vrf_table": 10}}
            for kind, args in tries.items():
                try:
                    ipr.link("add", ifname=f"c{kind}", kind=kind, **args)
                    found[kind] = True
                except NetlinkError:
                    pass
            if found["bridge"]:
                br = ipr.link_lookup(ifname="cbridge")[0]
                try:
                    ipr.link("add", ifname="cvlan", kind="vlan", link=br, vlan_id=10)
                    found["vlan"] = True
                except NetlinkError:
                    pass
                if found["veth"]:
                    v = ipr.link_lookup(ifname="cveth")[0]
                    try:
                        ipr.link("set", index=v, master=br)
                        ipr.brport("set", index=v, neigh_suppress=1)
                        got = Link.from_msg(ipr.link("get", index=v)[0]).brport
                        found["neigh_suppress"] = bool(got and got[2])
                    except NetlinkError:
                        pass
    finally:
        with contextlib.suppress(OSError):
            netns.remove(name)
    _FEATURES.update(found)
    return dict(found)


# encaps a network can name -> the kernel device that would carry it (nvgre has none in Linux)
ENCAP_KINDS = {"vxlan": "vxlan", "geneve": "geneve", "gre": "gretap", "nvgre": None}


# ---------------------------------------------------------------- the datapath

Note = Callable[[str, str, object], None]


class KernelDatapath:
    """The Linux kernel as the VTEP, programmed by netlink. `apply` reconciles, `close` leaves the kernel
    forwarding, `teardown` removes everything owned."""

    kind = "kernel"

    def __init__(self, vtep_ip: str, *, underlay_mtu: int = 1500, prefix: str = "nw",
                 netns: str | None = None, resync_s: float = RESYNC_S) -> None:
        """`netns`: the network namespace to work in (None: this process's, which is how the agent runs
        it; tests and the lab run it for a host namespace from outside)."""
        self.vtep_ip = canon_ip(vtep_ip)
        self.v6 = ":" in self.vtep_ip
        self.mtu = underlay_mtu - overhead_bytes("vxlan", "ipv6" if self.v6 else "ipv4")
        self.names = Names(prefix)
        self.prefix = prefix
        self.netns = netns
        self.resync_s = resync_s
        self.ipr = IPRoute(netns=netns, flags=0) if netns else IPRoute()
        self.nl = RawNetlink(netns)
        self.events = LinkEvents(netns, self.names)
        self.writes = 0
        self._pic: Picture | None = None
        self.planner = Planner()
        #: router namespaces: `<this namespace's name>-<prefix>r<l3 vni>` (kernel_router.netns_base)
        self.rbase = netns_base(netns or own_netns_name(), self.vtep_ip)
        self.rpattern = router_netns_pattern(self.rbase, prefix)
        self.routers: dict[str, RouterNs] = {}
        self._plans: dict[str, tuple[Router, frozenset[int], RouterPlan]] = {}
        self._gen = 0  # bumped at every full read of the kernel: router namespaces are read again too

    # ------------------------------------------------------------ reading the kernel
    def _read_links(self) -> dict[str, Link]:
        return {link.name: link for link in (Link.from_msg(m) for m in self.ipr.get_links())
                if self.names.owns(link.name)}

    def _read_vm_end(self, alias: PortAlias, iprs: dict[str | None, Any]) -> VmEnd | None:
        ns = alias.netns
        try:
            if ns not in iprs:
                if ns is None:
                    iprs[ns] = self.ipr
                else:
                    iprs[ns] = IPRoute(netns=ns, flags=0) if ns in netns.listnetns() else None
            ipr = iprs[ns]
            if ipr is None:
                return None
            return _vm_end(ipr.link("get", ifname=alias.port)[0])
        except (NetlinkError, OSError):
            return None

    def _read_vm_ends(self, links: dict[str, Link], keep: dict[str, VmEnd | None] | None = None
                      ) -> dict[str, VmEnd | None]:
        """The VM ends of our veths (those in `keep` are taken from there instead of read)."""
        out: dict[str, VmEnd | None] = {}
        iprs: dict[str | None, Any] = {}
        try:
            for name, link in links.items():
                if not self.names.is_port(name):
                    continue
                if keep is not None and name in keep:
                    out[name] = keep[name]
                    continue
                alias = PortAlias.parse(link.alias)
                out[name] = self._read_vm_end(alias, iprs) if alias else None
        finally:
            for ns, ipr in iprs.items():
                if ns is not None and ipr is not None:
                    ipr.close()
        return out

    def _read_entries(self, links: dict[str, Link]) -> Entries:
        """The neighbour tables of the networks among `links`."""
        ent = Entries()
        for name, link in links.items():
            parsed = self.names.network(name)
            if parsed is None:
                continue
            what, vni = parsed
            if what == "vx" and link.kind == "vxlan":
                group = link.vxlan[4] if link.vxlan else None
                for n in self.nl.fdb(link.index):
                    if n.lladdr is None:
                        continue
                    if n.master is not None and not n.flags & NTF_SELF:  # the bridge's (no NTF_MASTER here)
                        if n.state == NUD_NOARP and not n.flags & NTF_EXT_LEARNED:
                            ent.master.add((vni, n.lladdr))
                    elif n.flags & NTF_SELF and n.state & NUD_PERMANENT and n.dst is not None:
                        if n.lladdr != ZERO_MAC:
                            ent.fdb[vni, n.lladdr] = n.dst
                        elif n.dst != group:  # the group's entry comes with the device
                            ent.flood.setdefault(vni, set()).add(n.dst)
            elif what == "br" and link.kind == "bridge":
                for n in self.nl.neighbours(link.index):
                    if n.state & NUD_PERMANENT and n.dst is not None and n.lladdr is not None:
                        ent.neigh[vni, n.dst] = n.lladdr
        return ent

    def _read(self) -> Picture:
        self.events.drain()  # whatever happened before this read is in it
        self._gen += 1
        links = self._read_links()
        return Picture(links=links, vm=self._read_vm_ends(links), entries=self._read_entries(links),
                       read_at=time.monotonic())

    def _refresh_links(self, pic: Picture, changed: set[str] | None) -> None:
        """Link events arrived (`changed`: the owned names they were about; None: unknown). Re-read the
        links; a network device that is gone, new, or (a bridge) went down - which flushes its
        neighbour entries - loses its entries from the picture and has what it holds now read in."""
        links = self._read_links()
        for name in pic.links.keys() | links.keys():
            parsed = self.names.network(name)
            if parsed is None:
                continue
            old, new = pic.links.get(name), links.get(name)
            if old is None or new is None or old.index != new.index or (old.up and not new.up) \
                    or old.address != new.address:
                what, vni = parsed
                pic.entries.drop_vni(vni, fdb=what == "vx", neigh=what == "br")
                if new is not None:
                    fresh = self._read_entries({name: new})
                    pic.entries.fdb.update(fresh.fdb)
                    pic.entries.master |= fresh.master
                    for v, vteps in fresh.flood.items():
                        pic.entries.flood.setdefault(v, set()).update(vteps)
                    pic.entries.neigh.update(fresh.neigh)
        keep = {name: vm for name, vm in pic.vm.items()
                if changed is not None and name not in changed and name in links
                and name in pic.links and pic.links[name].index == links[name].index}
        pic.vm = self._read_vm_ends(links, keep)
        pic.links = links

    # ------------------------------------------------------------ writing links
    def _fix_host_end(self, host: Any, bridge_index: int, alias: str) -> dict[str, Any]:
        """Make a veth's host end as every host end must be: no IPv6 address generation (set before it is
        up: no link-local address), in `bridge_index`, with `alias`, the tenant MTU, up. Returns what had
        to be set (besides the address generation mode)."""
        if host.addr_gen_mode != IN6_ADDR_GEN_MODE_NONE:
            self._link(self.ipr, "set", index=host.index, af_spec=NO_ADDR_GEN)
        fix: dict[str, Any] = {}
        if host.master != bridge_index:
            fix["master"] = bridge_index
        if host.alias != alias:
            fix["ifalias"] = alias
        if host.mtu != self.mtu:
            fix["mtu"] = self.mtu
        if not host.up:
            fix["state"] = "up"
        if fix:
            self._link(self.ipr, "set", index=host.index, **fix)
        return fix

    def _link(self, ipr: Any, command: str, **kwargs: Any) -> Any:
        self.writes += 1
        return ipr.link(command, **kwargs)

    def _lookup(self, name: str) -> Link:
        return Link.from_msg(self.ipr.link("get", ifname=name)[0])

    def _delete(self, pic: Picture, name: str) -> None:
        link = pic.links.pop(name, None)
        pic.vm.pop(name, None)
        if link is None:
            return
        parsed = self.names.network(name)
        if parsed is not None:  # the kernel drops the device's fdb / neighbour entries with it
            pic.entries.drop_vni(parsed[1], fdb=parsed[0] == "vx", neigh=parsed[0] == "br")
        try:
            self._link(self.ipr, "del", index=link.index)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise

    def _ensure_network(self, pic: Picture, net: Network, note: Note) -> None:
        """Bridge + VXLAN port for one network. Changes only what differs; the VXLAN device is recreated
        only when an attribute differs that we do not change in place (id, addresses, port, learning)."""
        vni = net.vni
        bname, vname = bridge_name(self.prefix, vni), vxlan_name(self.prefix, vni)
        br, vx = pic.links.get(bname), pic.links.get(vname)
        existed = br is not None and vx is not None
        writes0 = self.writes
        if br is not None and br.kind != "bridge":
            self._delete(pic, bname)
            br = None
        address = self._bridge_mac(vni)
        if br is None:
            self._link(self.ipr, "add", ifname=bname, kind="bridge", address=address)
            br = self._lookup(bname)
        if br.address != address:
            # a bridge takes the lowest MAC of its ports unless it was given one, and a MAC change
            # flushes the bridge's neighbour entries, permanent ones too (neigh_changeaddr): one port
            # leaving would wipe the ARP/ND suppression table
            self._link(self.ipr, "set", index=br.index, address=address)
            pic.entries.drop_vni(vni, fdb=False)
        if br.addr_gen_mode != IN6_ADDR_GEN_MODE_NONE:
            # no link-local address: the host must not speak (DAD, MLD, RS) into the tenant network
            self._link(self.ipr, "set", index=br.index, af_spec=NO_ADDR_GEN)
        if br.snooping:
            # no snooping: the bridge would join the router-discovery groups and report them (from a
            # device without addresses) into the tenant network; VXLAN floods multicast either way
            self._link(self.ipr, "set", index=br.index, kind="bridge", br_mcast_snooping=0)
        if br.alias != _bridge_alias(net):
            self._link(self.ipr, "set", index=br.index, ifalias=_bridge_alias(net))
        group = canon_ip(net.multicast_group) if net.multicast_group else None
        underlay = self._underlay_index(vx) if group else None
        learn = int(net.mode == "flood-learn")
        want_vx = (vni, self.vtep_ip, VXLAN_PORT, learn, group, underlay)
        if vx is not None and (vx.kind != "vxlan" or vx.vxlan != want_vx):
            self._delete(pic, vname)
            vx = None
        if vx is None:
            args: dict[str, Any] = {"vxlan_id": vni, "vxlan_port": VXLAN_PORT, "vxlan_learning": learn,
                                    ("vxlan_local6" if self.v6 else "vxlan_local"): self.vtep_ip}
            if group:
                args["vxlan_group6" if ":" in group else "vxlan_group"] = group
                args["vxlan_link"] = underlay
            self._link(self.ipr, "add", ifname=vname, kind="vxlan", mtu=self.mtu, master=br.index, **args)
            pic.entries.drop_vni(vni, neigh=False)
            vx = self._lookup(vname)
        if vx.addr_gen_mode != IN6_ADDR_GEN_MODE_NONE:
            self._link(self.ipr, "set", index=vx.index, af_spec=NO_ADDR_GEN)
        fix: dict[str, Any] = {}
        if vx.mtu != self.mtu:
            fix["mtu"] = self.mtu
        if vx.master != br.index:
            fix["master"] = br.index
        if fix:
            self._link(self.ipr, "set", index=vx.index, **fix)
        want_port = (learn, int(net.unknown_unicast == "flood"), int(net.arp_suppression))
        if vx.brport != want_port or "master" in fix:
            self.writes += 1
            self.ipr.brport("set", index=vx.index, learning=want_port[0], unicast_flood=want_port[1],
                            neigh_suppress=want_port[2])
        if not vx.up:
            self._link(self.ipr, "set", index=vx.index, state="up")
        if not br.up:
            self._link(self.ipr, "set", index=br.index, state="up")
        if self.writes != writes0:
            pic.links[bname], pic.links[vname] = self._lookup(bname), self._lookup(vname)
            note("networks", "updated" if existed else "added", vni)

    def _bridge_mac(self, vni: int) -> str:
        """A fixed, locally administered MAC for a network's bridge (never seen on the wire: the bridge
        has no address and answers ARP/NS with the MAC asked for)."""
        digest = hashlib.sha1(f"{self.vtep_ip}/{vni}".encode()).digest()
        return "02:" + digest[:5].hex(":")

    def _underlay_index(self, vx: Link | None) -> int:
        """The device holding the VTEP address: where the multicast groups are joined. Looked up only
        when the VXLAN device is missing or not bound to the device that holds the address."""
        if vx is not None and vx.vxlan is not None and vx.vxlan[5]:
            with contextlib.suppress(NetlinkError, IndexError):
                for msg in self.ipr.get_addr(index=vx.vxlan[5]):
                    addr = msg.get("IFA_ADDRESS")
                    if addr and canon_ip(addr) == self.vtep_ip:
                        return int(vx.vxlan[5])
        for msg in self.ipr.get_addr():
            addr = msg.get("IFA_ADDRESS")
            if addr and canon_ip(addr) == self.vtep_ip:
                return int(msg["index"])
        raise KernelError(errno.EADDRNOTAVAIL, f"no device holds the VTEP address {self.vtep_ip}")

    def _port_ok(self, pic: Picture, port: Port, hname: str) -> bool:
        """Is the veth pair there, ours, and its VM end in the port's namespace? (else: recreate)"""
        host = pic.links.get(hname)
        if host is None or host.kind != "veth":
            return False
        alias = PortAlias.parse(host.alias)
        vm = pic.vm.get(hname)
        return (alias is not None and (alias.port, alias.netns) == (port.name, port.netns)
                and vm is not None and vm.peer == host.index)

    def _ensure_port(self, pic: Picture, port: Port, br: Link) -> bool:
        """Wire one port; True when something changed. Raises KernelError/NetlinkError with the reason."""
        hname = port_device_name(self.prefix, port.name)
        alias = PortAlias(port.name, port.netns, port.port_id).text()
        if len(alias.encode()) > IFALIASZ:
            raise KernelError(errno.ENAMETOOLONG, "port name, namespace and id do not fit a device alias")
        writes0 = self.writes
        if not self._port_ok(pic, port, hname):
            if port.netns is not None and port.netns not in netns.listnetns():
                raise KernelError(errno.ENOENT, f"network namespace {port.netns!r} does not exist")
            if hname in pic.links:
                self._delete(pic, hname)
            peer: dict[str, Any] = {"ifname": port.name, "address": port.mac, "mtu": self.mtu}
            if port.netns is not None:
                peer["net_ns_fd"] = port.netns
            try:
                self._link(self.ipr, "add", ifname=hname, kind="veth", mtu=self.mtu, peer=peer)
            except NetlinkError as exc:
                if exc.code == errno.EEXIST:
                    raise KernelError(exc.code, f"a device named {port.name} already exists in "
                                                f"{port.netns or 'the host namespace'}") from None
                raise
            pic.links[hname] = self._lookup(hname)
            pic.vm[hname] = None
        host = pic.links[hname]
        self._fix_host_end(host, br.index, alias)
        if self.writes != writes0:
            pic.links[hname] = self._lookup(hname)
        vm = pic.vm.get(hname)
        if vm is None or vm.mac != port.mac or vm.mtu != self.mtu or not vm.up:
            pic.vm[hname] = self._fix_vm_end(port)
        return self.writes != writes0

    def _fix_vm_end(self, port: Port) -> VmEnd:
        """MAC, MTU and up on the VM's end, in the VM's namespace (a veth peer's flags cannot be given
        when it is created there)."""
        own = port.netns is None
        ipr = self.ipr if own else IPRoute(netns=port.netns, flags=0)
        try:
            end = _vm_end(ipr.link("get", ifname=port.name)[0])
            if end.mac != port.mac:
                if end.up:
                    self._link(ipr, "set", index=end.index, state="down")
                self._link(ipr, "set", index=end.index, address=port.mac)
            if end.mtu != self.mtu:
                self._link(ipr, "set", index=end.index, mtu=self.mtu)
            self._link(ipr, "set", index=end.index, state="up")
            return _vm_end(ipr.link("get", index=end.index)[0])
        finally:
            if not own:
                ipr.close()

    # ------------------------------------------------------------ the interface
    def capabilities(self) -> dict[str, Any]:
        feats = probe_features()
        return {"datapath": "kernel", "encaps": ["vxlan"] if feats["vxlan"] else [], "features": feats,
                "arp_suppression": feats["neigh_suppress"], "nd_suppression": feats["neigh_suppress"],
                "multicast": feats["vxlan"], "unknown_unicast_drop": True, "unknown_arp_drop": False,
                # one namespace per router (no VRF here): symmetric IRB only (docs/routing.md)
                "routing": ["symmetric"], "dhcp": False}

    def _unsupported(self, net: Network) -> str | None:
        if net.encap == "vxlan":
            return None
        kind = ENCAP_KINDS.get(net.encap)
        if kind is None or not probe_features().get(kind, False):
            return f"{net.encap} is not available in this host's kernel; use the userspace datapath"
        return f"the kernel datapath carries only vxlan, not {net.encap}; use the userspace datapath"

    def apply(self, want: DatapathState) -> dict[str, Any]:
        """Make the kernel hold exactly `want`, changing only the difference (no write at all when it
        already does). A port that cannot be made is reported in `errors` and the rest applied.
        `writes` counts the netlink write requests sent."""
        writes0 = self.writes
        out: dict[str, Any] = {"changes": 0, "errors": {}, "lost": {}}

        noted: set[tuple[str, object]] = set()

        def note(table: str, what: str, key: object) -> None:
            if (table, key) not in noted:  # one line per object, with what happened to it first
                noted.add((table, key))
                out.setdefault(table, {}).setdefault(what, []).append(key)
                out["changes"] += 1

        want_nets = {n.vni: n for n in want.networks}
        want_ports = {p.name: p for p in want.ports}
        if len(want_nets) != len(want.networks) or len(want_ports) != len(want.ports):
            raise ValueError("a vni or a port name appears twice")
        pic = self._picture()
        try:
            self._apply_links(pic, want_nets, want_ports, out, note)
        except BaseException:
            self._pic = None  # the picture may be wrong now: read the kernel next time
            raise
        vnis = frozenset(v for v, n in want_nets.items() if self._unsupported(n) is None
                         and bridge_name(self.prefix, v) in pic.links
                         and vxlan_name(self.prefix, v) in pic.links)
        ports = [p for p in want_ports.values() if p.name not in out["errors"] and p.vni in vnis]
        plans = self._plan_routers(want.routers, vnis, want_ports, out)
        # the gateway addresses get neighbour entries on their bridge like a local port's, so that ARP
        # and NS for the gateway are answered here and never flooded to the other chassis' legs
        gateways = [Port(name=leg_device_name(self.prefix, plan.l3_vni, vni), vni=vni, mac=leg.mac,
                         ips=leg.ips) for plan in plans.values() for vni, leg in plan.legs.items()]
        ops = self._plan_entries(pic, want, want_nets, ports + gateways, vnis)
        self._write_entries(pic, ops, out, note, ports)
        try:
            self._apply_routers(pic, plans, out, note)
        except BaseException:
            self._pic = None
            raise
        # the link events our own writes caused are in the picture already
        self.events.drain()
        out["writes"] = self.writes - writes0
        return out

    def _picture(self) -> Picture:
        pic = self._pic
        if pic is None or time.monotonic() - pic.read_at > self.resync_s:
            self._pic = pic = self._read()
            self.planner.reset()
            return pic
        changed = self.events.changed()
        if changed is None or changed:
            self._refresh_links(pic, changed)
        return pic

    def _apply_links(self, pic: Picture, want_nets: dict[int, Network], want_ports: dict[str, Port],
                     out: dict[str, Any], note: Note) -> None:
        unsupported = {v: msg for v, n in want_nets.items() if (msg := self._unsupported(n)) is not None}
        ok_nets = {v: n for v, n in want_nets.items() if v not in unsupported}
        for vni, msg in unsupported.items():
            out.setdefault("unsupported", {})[str(vni)] = msg
        for vni, net in ok_nets.items():
            if net.unknown_arp == "drop":
                out.setdefault("unsupported", {})[str(vni)] = (
                    "unknown_arp=drop: the kernel bridge floods ARP/NS for addresses it has no entry for")
        # what is not wanted goes first: ports (or those that moved to another namespace), then networks
        wanted_hosts = {port_device_name(self.prefix, p.name): p
                        for p in want_ports.values() if p.vni in ok_nets}
        for name in [n for n in pic.links if self.names.is_port(n)]:
            port = wanted_hosts.get(name)
            alias = PortAlias.parse(pic.links[name].alias)
            if port is None or alias is None or (alias.port, alias.netns) != (port.name, port.netns):
                self._delete(pic, name)
                note("ports", "removed", alias.port if alias else name)
        for name in list(pic.links):
            parsed = self.names.network(name)
            if parsed is not None and parsed[1] not in ok_nets and name in pic.links:
                self._delete(pic, name)
                if parsed[0] == "br":
                    note("networks", "removed", parsed[1])
        net_errors: dict[int, str] = dict(unsupported)
        for vni, net in ok_nets.items():
            try:
                self._ensure_network(pic, net, note)
            except (NetlinkError, OSError) as exc:
                net_errors[vni] = f"network {vni}: {_reason(exc)}"
                log.error("kernel datapath: vni=%s %s", vni, _reason(exc))
                for name in (vxlan_name(self.prefix, vni), bridge_name(self.prefix, vni)):
                    with contextlib.suppress(NetlinkError):
                        self._delete(pic, name)
        for name, port in want_ports.items():
            if port.vni in net_errors:
                out["errors"][name] = net_errors[port.vni]
                continue
            if port.vni not in want_nets:
                out["errors"][name] = f"no network with vni {port.vni}"
                continue
            existed = port_device_name(self.prefix, name) in pic.links
            try:
                if self._ensure_port(pic, port, pic.links[bridge_name(self.prefix, port.vni)]):
                    note("ports", "updated" if existed else "added", name)
            except (NetlinkError, OSError) as exc:
                if port.netns is not None and port.netns not in netns.listnetns():
                    out["lost"][name] = _reason(exc)  # the VM is gone: DOWN, not a fault of ours
                    continue
                out["errors"][name] = _reason(exc)
                log.error("kernel datapath: port=%s %s", name, _reason(exc))

    def _plan_entries(self, pic: Picture, want: DatapathState, nets: dict[int, Network], ports: list[Port],
                      vnis: frozenset[int]) -> list[Op]:
        flood = {v: {canon_ip(ip) for ip in nets[v].flood} for v in vnis}
        return self.planner.plan(pic.entries, want.remotes, ports, flood, vnis)

    def _write_entries(self, pic: Picture, ops: list[Op], out: dict[str, Any], note: Note,
                       ports: list[Port]) -> None:
        if not ops:
            return
        index = {vni: (pic.links[vxlan_name(self.prefix, vni)].index,
                       pic.links[bridge_name(self.prefix, vni)].index) for vni in {op.vni for op in ops}}
        msgs, by_seq = [], {}
        for op in ops:
            seq = self.nl.next_seq()
            msgs.append(encode_op(op, seq, *index[op.vni]))
            by_seq[seq] = op
        had_fdb = {(op.vni, op.key) for op in ops if op.what == "fdb" and (op.vni, op.key) in pic.entries.fdb}
        self.writes += len(msgs)
        errors = self.nl.write(msgs)
        failed = {by_seq[s] for s in errors if s in by_seq}
        apply_ops(pic.entries, (op for op in ops if op not in failed))
        if errors:
            self._pic = None  # the picture is a guess now: the next apply reads the kernel again
            shown = [f"{_describe(by_seq[s])}: {t}" if s in by_seq else t
                     for s, (_, t) in sorted(errors.items())]
            out["write_errors"] = shown[:20]
            log.error("kernel datapath: %d neighbour-table writes failed, first: %s", len(errors), shown[0])
        port_macs = {(p.vni, p.mac): p.name for p in ports}
        done = [op for op in ops if op not in failed]
        fdb_add = {(op.vni, op.key) for op in done if op.what == "fdb" and op.add}
        fdb_del = {(op.vni, op.key) for op in done if op.what == "fdb" and not op.add}
        for op in done:
            if op.what == "flood":
                note("networks", "updated", op.vni)
                continue
            key = (op.vni, op.value if op.what == "neigh" else op.key)
            if key in port_macs:
                note("ports", "updated", port_macs[key])
            elif op.what == "neigh" and key not in self.planner.fdb and key not in pic.entries.fdb \
                    and key not in fdb_del:
                continue  # the addresses of a port that was removed (noted with it)
            elif key in fdb_del and key not in fdb_add:
                note("remotes", "removed", f"{key[0]}/{key[1]}")
            elif key in fdb_add and key not in had_fdb:
                note("remotes", "added", f"{key[0]}/{key[1]}")
            else:
                note("remotes", "updated", f"{key[0]}/{key[1]}")

    # ------------------------------------------------------------ routers (symmetric IRB, one namespace each)
    def _router_namespaces(self) -> set[str]:
        try:
            return {n for n in netns.listnetns() if self.rpattern.fullmatch(n)}
        except OSError:
            return set()

    def _plan_routers(self, routers: Iterable[Router], vnis: frozenset[int], want_ports: dict[str, Port],
                      out: dict[str, Any]) -> dict[str, RouterPlan]:
        """The routers to build here, by namespace. Asymmetric ones are skipped and reported: their
        networks' ports are in `errors` (the controller would have put them in ERROR for the same reason),
        though still bridged."""
        plans: dict[str, RouterPlan] = {}
        for router in routers:
            ns = router_netns(self.rbase, self.prefix, router.l3_vni)
            problem = None
            if router.irb != "symmetric":
                problem = (f"router {router.name}: {router.irb} IRB, which the kernel datapath cannot do "
                           "(it routes with symmetric IRB only); use the userspace datapath")
            elif ns in plans:
                problem = f"router {router.name}: L3 VNI {router.l3_vni} is also router {plans[ns].name}'s"
            if problem is not None:
                log.warning("kernel datapath: %s", problem)
                out.setdefault("unsupported", {})[f"router {router.name}"] = problem
                attached = {i.vni for i in router.interfaces}
                for port in want_ports.values():
                    if port.vni in attached:
                        out["errors"].setdefault(port.name, problem)
                continue
            local = frozenset(i.vni for i in router.interfaces if i.vni in vnis)
            cached = self._plans.get(ns)
            if cached is not None and cached[0] == router and cached[1] == local:
                plan = cached[2]
            else:
                plan = plan_router(router, self.vtep_ip, local)
                self._plans[ns] = (router, local, plan)
                for text in plan.notes:
                    log.warning("kernel datapath: %s", text)
            if plan.legs:  # no local network of this router: nothing to route for here
                plans[ns] = plan
        for ns in [n for n in self._plans if n not in plans]:
            del self._plans[ns]
        return plans

    def _apply_routers(self, pic: Picture, plans: dict[str, RouterPlan], out: dict[str, Any],
                       note: Note) -> None:
        for ns in sorted((self._router_namespaces() | self.routers.keys()) - plans.keys()):
            note("routers", "removed", self._remove_router(pic, ns))
        legs = {leg_device_name(self.prefix, plan.l3_vni, vni)
                for plan in plans.values() for vni in plan.legs}
        for name in [n for n in pic.links if self.names.is_leg(n) and n not in legs]:
            router = _leg_router(pic.links[name].alias) or name
            self._delete(pic, name)
            note("routers", "updated", router)
        for ns, plan in sorted(plans.items()):
            try:
                added, changed = self._ensure_router(pic, ns, plan, out)
            except (NetlinkError, OSError) as exc:
                out.setdefault("router_errors", {})[plan.name] = _reason(exc)
                log.error("kernel datapath: router=%s %s", plan.name, _reason(exc))
                rs = self.routers.get(ns)
                if rs is not None:
                    rs.read_gen = -1  # read it again next time
                self._pic = None
                continue
            if changed:
                note("routers", "added" if added else "updated", plan.name)

    def _open_router(self, ns: str, l3_vni: int) -> tuple[RouterNs, bool]:
        """The namespace of a router, created (with forwarding on) when missing; True when created."""
        rs = self.routers.get(ns)
        if rs is not None:
            return rs, False
        created = ns not in netns.listnetns()
        if created:
            netns.create(ns)
            self.writes += 1
        rs = RouterNs(ns, l3_vni, IPRoute(netns=ns, flags=0), RawNetlink(ns))
        self.routers[ns] = rs
        if created:
            lo = rs.ipr.link_lookup(ifname="lo")
            if lo:
                self._link(rs.ipr, "set", index=lo[0], state="up")
        return rs, created

    def _read_router(self, rs: RouterNs) -> None:
        links = {m.get("IFLA_IFNAME"): m for m in rs.ipr.get_links()}
        l3 = links.get(l3_device_name(rs.l3_vni))
        rs.l3 = Link.from_msg(l3) if l3 is not None else None
        rs.ends = {name: self._leg_end(rs, msg) for name, msg in links.items()
                   if name and name.startswith(LEG_PREFIX)}
        self._read_router_entries(rs)
        rs.read_gen = self._gen
        rs.applied = None

    def _read_router_entries(self, rs: RouterNs) -> None:
        ent = RouterEntries()
        oif = rs.l3.index if rs.l3 is not None else None
        if oif is not None:
            for n in rs.nl.fdb(oif):
                if n.flags & NTF_SELF and n.state & NUD_PERMANENT and n.dst \
                        and n.lladdr not in (None, ZERO_MAC):
                    ent.fdb[str(n.lladdr)] = n.dst
            for n in rs.nl.neighbours(oif):
                if n.state & NUD_PERMANENT and n.dst is not None and n.lladdr is not None:
                    ent.neigh[n.dst] = n.lladdr
        for buf, off, end in rs.nl.dump(RTM_GETROUTE, route_dump_request()):
            got = parse_route(buf, off, end, oif)
            if got is not None:
                ent.routes[got[0]] = got[1]
        rs.entries = ent

    @staticmethod
    def _leg_end(rs: RouterNs, msg: Any) -> LegEnd:
        addrs = frozenset(f"{canon_ip(a.get('IFA_ADDRESS'))}/{a['prefixlen']}"
                          for a in rs.ipr.get_addr(index=msg["index"])
                          if a["scope"] == 0 and a.get("IFA_ADDRESS"))
        return LegEnd(index=msg["index"], mac=(msg.get("IFLA_ADDRESS") or "").lower(),
                      mtu=msg.get("IFLA_MTU") or 0, up=bool(msg["flags"] & 1), peer=msg.get("IFLA_LINK"),
                      addrs=addrs)

    def _ensure_router(self, pic: Picture, ns: str, plan: RouterPlan,
                       out: dict[str, Any]) -> tuple[bool, bool]:
        """Make one router namespace what `plan` says; (created, anything changed)."""
        writes0 = self.writes
        rs, created = self._open_router(ns, plan.l3_vni)
        fresh = rs.read_gen != self._gen
        if fresh:
            if ns_sysctls(ns, ROUTER_SYSCTLS):
                self.writes += 1
            self._read_router(rs)
        if self._ensure_l3(rs, plan):
            self._read_router_entries(rs)  # a new device: its entries, and the routes through it, are gone
            rs.applied = None
        for vni in plan.legs:
            self._ensure_leg(pic, rs, plan, vni, fresh)
        wanted_ends = {leg_router_name(vni) for vni in plan.legs}
        for name in [n for n in rs.ends if n not in wanted_ends]:
            with contextlib.suppress(NetlinkError):
                self._link(rs.ipr, "del", index=rs.ends.pop(name).index)
        if rs.applied != plan:
            self._write_router_entries(rs, plan, out)
        return created, self.writes != writes0

    def _ensure_l3(self, rs: RouterNs, plan: RouterPlan) -> bool:
        """The L3 VNI's VXLAN device: created from the host namespace straight into the router's (its UDP
        socket stays with the underlay); True when it was (re)created."""
        name = l3_device_name(plan.l3_vni)
        want_vx = (plan.l3_vni, self.vtep_ip, VXLAN_PORT, 0, None, None)
        l3 = rs.l3
        made = False
        if l3 is not None and (l3.kind != "vxlan" or l3.vxlan != want_vx):
            self._link(rs.ipr, "del", index=l3.index)
            l3 = None
        if l3 is None:
            args: dict[str, Any] = {"vxlan_id": plan.l3_vni, "vxlan_port": VXLAN_PORT, "vxlan_learning": 0,
                                    ("vxlan_local6" if self.v6 else "vxlan_local"): self.vtep_ip}
            self._link(self.ipr, "add", ifname=name, kind="vxlan", net_ns_fd=rs.ns, address=plan.rmac,
                       mtu=self.mtu, **args)
            l3 = Link.from_msg(rs.ipr.link("get", ifname=name)[0])
            made = True
        writes0 = self.writes
        if l3.addr_gen_mode != IN6_ADDR_GEN_MODE_NONE:  # no link-local: nothing of ours into the L3 VNI
            self._link(rs.ipr, "set", index=l3.index, af_spec=NO_ADDR_GEN)
        if l3.address != plan.rmac:
            if l3.up:
                self._link(rs.ipr, "set", index=l3.index, state="down")
            self._link(rs.ipr, "set", index=l3.index, address=plan.rmac)
        fix: dict[str, Any] = {}
        if l3.mtu != self.mtu:
            fix["mtu"] = self.mtu
        if l3.alias != plan.name:
            fix["ifalias"] = plan.name
        if fix:
            self._link(rs.ipr, "set", index=l3.index, **fix)
        if not l3.up or l3.address != plan.rmac:
            self._link(rs.ipr, "set", index=l3.index, state="up")
        if self.writes != writes0:
            l3 = Link.from_msg(rs.ipr.link("get", index=l3.index)[0])
        rs.l3 = l3
        return made

    def _ensure_leg(self, pic: Picture, rs: RouterNs, plan: RouterPlan, vni: int, fresh: bool) -> None:
        """A veth from network `vni`'s bridge into the router: the anycast gateway's MAC and addresses."""
        leg = plan.legs[vni]
        hname, rname = leg_device_name(self.prefix, plan.l3_vni, vni), leg_router_name(vni)
        br = pic.links[bridge_name(self.prefix, vni)]
        alias = _leg_alias(plan.name, rs.ns, vni)
        host, end = pic.links.get(hname), rs.ends.get(rname)
        new = False
        if host is None or host.kind != "veth" or host.alias != alias or end is None \
                or end.peer != host.index:
            if host is not None:
                self._delete(pic, hname)
            if end is not None:
                with contextlib.suppress(NetlinkError):
                    self._link(rs.ipr, "del", index=end.index)
            self._link(self.ipr, "add", ifname=hname, kind="veth", mtu=self.mtu,
                       peer={"ifname": rname, "address": leg.mac, "mtu": self.mtu, "net_ns_fd": rs.ns})
            pic.links[hname] = host = self._lookup(hname)
            end = self._leg_end(rs, rs.ipr.link("get", ifname=rname)[0])
            new = True
        writes0 = self.writes
        fix = self._fix_host_end(host, br.index, alias)
        if new or "master" in fix or (fresh and not self._has_gateway_fdb(host.index, leg.mac)):
            self._gateway_fdb(host.index, leg.mac)
        if self.writes != writes0:
            pic.links[hname] = self._lookup(hname)
        # the router's end
        writes0 = self.writes
        if end.mac != leg.mac:
            if end.up:
                self._link(rs.ipr, "set", index=end.index, state="down")
            self._link(rs.ipr, "set", index=end.index, address=leg.mac)
        if end.mtu != self.mtu:
            self._link(rs.ipr, "set", index=end.index, mtu=self.mtu)
        if not end.up or end.mac != leg.mac:
            self._link(rs.ipr, "set", index=end.index, state="up")
        want = set(leg.addrs)
        for addr in sorted(end.addrs - want):
            ip, plen = addr.split("/")
            self.writes += 1
            with contextlib.suppress(NetlinkError):
                rs.ipr.addr("del", index=end.index, address=ip, prefixlen=int(plen))
        for addr in sorted(want - end.addrs):
            ip, plen = addr.split("/")
            self.writes += 1
            extra = {"flags": IFA_F_NODAD} if ":" in ip else {}
            rs.ipr.addr("replace", index=end.index, address=ip, prefixlen=int(plen), **extra)
        if self.writes != writes0 or new:
            end = self._leg_end(rs, rs.ipr.link("get", index=end.index)[0])
        rs.ends[rname] = end

    def _has_gateway_fdb(self, index: int, mac: str) -> bool:
        return any(n.lladdr == mac and n.master is not None and not n.flags & NTF_SELF
                   and n.state & NUD_NOARP for n in self.nl.fdb(index))

    def _gateway_fdb(self, index: int, mac: str) -> None:
        """A static, sticky bridge fdb entry for the gateway MAC on its leg: known before the router has
        sent anything (so the bridge's neighbour suppression answers for the gateway at once), and never
        moved to the VXLAN port by a frame from another chassis' leg with the same (anycast) MAC."""
        for ntf in (NTF_MASTER | NTF_STICKY, NTF_MASTER):
            seq = self.nl.next_seq()
            msg = neigh_message(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, seq, family=AF_BRIDGE,
                                ifindex=index, state=NUD_NOARP, ntf=ntf, attrs=_nla_mac(mac))
            self.writes += 1
            errors = self.nl.write([msg])
            if not errors:
                return
        raise KernelError(*next(iter(errors.values())))

    def _write_router_entries(self, rs: RouterNs, plan: RouterPlan, out: dict[str, Any]) -> None:
        assert rs.l3 is not None
        ops = diff_router(rs.entries, plan.entries)
        if ops:
            msgs, by_seq = [], {}
            for op in ops:
                seq = rs.nl.next_seq()
                by_seq[seq] = op
                if op.what == "route":
                    msgs.append(encode_route(op, seq, rs.l3.index))
                else:
                    msgs.append(encode_op(Op(op.what, op.add, plan.l3_vni, op.key, op.value), seq,
                                          rs.l3.index, rs.l3.index))
            self.writes += len(msgs)
            errors = rs.nl.write(msgs)
            failed = {by_seq[s] for s in errors if s in by_seq}
            apply_router_ops(rs.entries, (op for op in ops if op not in failed))
            if errors:
                shown = [f"{_describe_route(by_seq[s])}: {t}" if s in by_seq else t
                         for s, (_, t) in sorted(errors.items())]
                out.setdefault("router_errors", {})[plan.name] = shown[:20]
                log.error("kernel datapath: router=%s %d writes failed, first: %s", plan.name, len(errors),
                          shown[0])
                rs.read_gen = -1  # read the namespace again next time (and retry)
                return
        rs.applied = plan

    def _remove_router(self, pic: Picture | None, ns: str) -> str:
        """Delete a router namespace and everything in it; the router's name (from its L3 device)."""
        name = ns
        if pic is not None:
            for leg in [n for n in pic.links if self.names.is_leg(n)]:
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    if json.loads(pic.links[leg].alias)["netns"] == ns:
                        self._delete(pic, leg)
        rs = self.routers.pop(ns, None)
        self._plans.pop(ns, None)
        try:
            ipr = rs.ipr if rs is not None else IPRoute(netns=ns, flags=0)
        except OSError:
            ipr = None
        if ipr is not None:
            try:
                for msg in ipr.get_links():
                    if msg.get("IFLA_IFNAME") == "lo":
                        continue
                    if str(msg.get("IFLA_IFNAME", "")).startswith("vx") and msg.get("IFLA_IFALIAS"):
                        name = msg.get("IFLA_IFALIAS")
                    with contextlib.suppress(NetlinkError):
                        self._link(ipr, "del", index=msg["index"])
            finally:
                if rs is not None:
                    rs.close()
                else:
                    ipr.close()
        with contextlib.suppress(FileNotFoundError):
            netns.remove(ns)
        self.writes += 1
        return name

    def state(self) -> DatapathState:
        """What the kernel holds now, read back (not remembered): our networks, ports and remotes."""
        self._pic = pic = self._read()
        self.planner.reset()
        ent = pic.entries
        ips: dict[tuple[int, str], list[str]] = {}
        for (vni, ip), mac in ent.neigh.items():
            ips.setdefault((vni, mac), []).append(ip)
        networks = []
        for name, link in sorted(pic.links.items()):
            parsed = self.names.network(name)
            br = pic.links.get(bridge_name(self.prefix, parsed[1])) if parsed else None
            if parsed is None or parsed[0] != "vx" or link.vxlan is None or link.brport is None or br is None:
                continue
            vni = parsed[1]
            try:
                extra = json.loads(br.alias) if br.alias else {}
            except ValueError:
                extra = {}
            networks.append(Network(
                vni=vni, encap="vxlan", mode="flood-learn" if link.vxlan[3] else "static",
                flood=tuple(sorted(ent.flood.get(vni, ()))), multicast_group=link.vxlan[4],
                arp_suppression=bool(link.brport[2]), unknown_unicast="flood" if link.brport[1] else "drop",
                unknown_arp=extra.get("unknown_arp", "flood")))
        by_index = {link.index: name for name, link in pic.links.items()}
        ports = []
        for name, link in sorted(pic.links.items()):
            alias = PortAlias.parse(link.alias) if self.names.is_port(name) else None
            vm = pic.vm.get(name)
            parsed = self.names.network(by_index.get(link.master or -1, ""))
            if alias is None or vm is None or parsed is None:
                continue
            ports.append(Port(name=alias.port, vni=parsed[1], mac=vm.mac, netns=alias.netns,
                              port_id=alias.port_id, ips=tuple(sorted(ips.get((parsed[1], vm.mac), ())))))
        remotes = tuple(Remote(vni=vni, mac=mac, vtep=vtep, ips=tuple(sorted(ips.get((vni, mac), ()))))
                        for (vni, mac), vtep in sorted(ent.fdb.items()))
        return DatapathState(networks=tuple(networks), ports=tuple(ports), remotes=remotes)

    def stats(self) -> dict[str, object]:
        pic = self._pic
        if pic is None:
            return {"writes": self.writes}
        return {"writes": self.writes, "links": len(pic.links), "fdb": len(pic.entries.fdb),
                "neigh": len(pic.entries.neigh)}

    def teardown(self) -> None:
        """Remove every device this prefix owns (their fdb and neighbour entries go with them)."""
        links = self._read_links()

        def order(name: str) -> int:
            parsed = self.names.network(name)
            return 0 if parsed is None else 1 if parsed[0] == "vx" else 2

        for ns in sorted(self.routers.keys() | self._router_namespaces()):
            with contextlib.suppress(NetlinkError, OSError):
                self._remove_router(None, ns)
        for name in sorted(links, key=order):
            with contextlib.suppress(NetlinkError):
                self._link(self.ipr, "del", index=links[name].index)
        self._pic = None
        self.planner.reset()
        self._plans.clear()

    def close(self) -> None:
        """Let go of the sockets; the kernel keeps forwarding with what it holds."""
        for rs in self.routers.values():
            rs.close()
        self.routers.clear()
        self.events.close()
        self.nl.close()
        self.ipr.close()


def _vm_end(msg: Any) -> VmEnd:
    return VmEnd(index=msg["index"], mac=(msg.get("IFLA_ADDRESS") or "").lower(),
                 mtu=msg.get("IFLA_MTU") or 0, up=bool(msg["flags"] & 1), peer=msg.get("IFLA_LINK"))


def _describe_route(op: RouteOp) -> str:
    return f"{'add' if op.add else 'del'} {op.what} {op.key} {op.value}".rstrip()


def _describe(op: Op) -> str:
    return f"{'add' if op.add else 'del'} {op.what} {op.vni}/{op.key}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, NetlinkError):
        detail = exc.args[1] if len(exc.args) > 1 else ""
        text = os.strerror(exc.code)
        return f"{text} ({detail})" if detail and detail != text else text
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).split())
