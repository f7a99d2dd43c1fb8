"""Chassis, heartbeats, port status reports and the per-chassis views the agents watch.

`ViewService` keeps the compiler (`netweave.control.compiler`) in step with the store: a flush listener
notes which networks, ports and chassis a write transaction touches; after its commit exactly those rows
are read back and handed to the compiler, which recomputes the affected sections only. Agents long-poll
`GET /netweave/v1/chassis/{name}/view?since=N&epoch=E&wait=S` and are woken as soon as their view changes
(protocol: docs/agent-protocol.md).

One controller process owns the compiler: several API processes on one PostgreSQL would each need their
own change feed (a LISTEN/NOTIFY channel); recorded in docs/architecture.md.
"""

import asyncio
import contextlib
import ipaddress
import logging
import threading
import time
import uuid
from datetime import UTC, datetime
from itertools import chain
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from netweave.control.compiler import Compiler, LChassis, LNetwork, LPort, LRouter
from netweave.controller import db, errors
from netweave.controller.attributes import Attr, check_body, one_of, to_dict, to_str
from netweave.controller.db import Chassis, IPAllocation, Network, Port, Router, Subnet, utcnow
from netweave.controller.routers import ROUTER_INTERFACE_OWNERS
from netweave.controller.store import Store
from netweave.model import IRB_MODES
from netweave.model import Subnet as VtepSubnet

log = logging.getLogger(__name__)

ENCAPS = ("vxlan", "geneve", "gre", "nvgre", "stt", "vlan")
DATAPATHS = ("userspace", "kernel")
PORT_STATUSES = ("ACTIVE", "DOWN", "BUILD", "ERROR")
AGENT_TYPE = "NetWeave agent"


def _ip(name: str, value: Any) -> str:
    try:
        return str(ipaddress.ip_address(to_str(name, value)))
    except ValueError:
        reason = f"'{value}' is not an IP address."
        raise errors.BadRequest(f"Invalid input for {name}. Reason: {reason}") from None


def _encaps(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(v in ENCAPS for v in value):
        raise errors.BadRequest(f"Invalid input for {name}. Reason: a list of {list(ENCAPS)} is expected.")
    return list(dict.fromkeys(value))


CHASSIS_ATTRS = {
    "vtep_ip": Attr(_ip, default=None),
    "encaps": Attr(_encaps, default=["vxlan"]),
    "datapath": Attr(one_of(*DATAPATHS), default="userspace"),
    "capabilities": Attr(to_dict, default={}),
}


def vtep_subnet(row: Subnet) -> VtepSubnet:
    """A subnet as the VTEPs need it for native DHCP/RA."""
    return VtepSubnet(cidr=row.cidr, gateway_ip=row.gateway_ip, dhcp=row.enable_dhcp,
                      dns=tuple(row.dns_nameservers),
                      host_routes=tuple((r["destination"], r["nexthop"]) for r in row.host_routes),
                      ipv6_address_mode=row.ipv6_address_mode, ipv6_ra_mode=row.ipv6_ra_mode)


def logical_network(row: Network, subnets: list[Subnet] | None = None) -> LNetwork | None:
    if row.segmentation_id is None or row.network_type not in ("vxlan", "geneve", "gre", "nvgre"):
        return None  # flat/VLAN networks have no overlay segment a VTEP carries
    return LNetwork(id=row.id, vni=row.segmentation_id, encap=row.network_type,
                    control_plane=row.control_plane, replication=row.replication,
                    multicast_group=row.multicast_group, arp_suppression=row.arp_suppression,
                    subnets=tuple(vtep_subnet(s) for s in sorted(subnets or (), key=lambda s: s.created_at)))


def logical_chassis(row: Chassis) -> LChassis:
    """`capabilities.routing`: true/absent (every IRB mode), false (none) or a list of IRB modes."""
    caps = row.capabilities if isinstance(row.capabilities, dict) else {}
    routing = caps.get("routing", True)
    if isinstance(routing, list):
        modes = tuple(m for m in IRB_MODES if m in routing)
    else:
        modes = IRB_MODES if routing else ()
    return LChassis(row.name, row.vtep_ip, encaps=tuple(row.encaps), datapath=row.datapath, routing=modes)


def logical_router(row: Router) -> LRouter | None:
    if not row.admin_state_up:
        return None  # a router that is administratively down routes nowhere
    return LRouter(id=row.id, l3_vni=row.l3_vni, irb=row.irb,
                   routes=tuple((r["destination"], r["nexthop"]) for r in row.routes))


def logical_port(row: Port) -> LPort:
    netns = row.binding_profile.get("netns") if isinstance(row.binding_profile, dict) else None
    router = row.device_id if row.device_owner in ROUTER_INTERFACE_OWNERS and row.device_id else ""
    return LPort(id=row.id, network_id=row.network_id, mac=row.mac_address,
                 host=row.binding_host_id if row.admin_state_up and not router else "",
                 ips=tuple(sorted(a.ip_address for a in row.fixed_ips)), name=row.name,
                 netns=netns if isinstance(netns, str) and netns else None, router=router)


def _subnets_by_network(s: Session, network_ids: Any = None) -> dict[str, list[Subnet]]:
    query = select(Subnet)
    if network_ids is not None:
        query = query.where(Subnet.network_id.in_(network_ids))
    out: dict[str, list[Subnet]] = {}
    for sub in s.scalars(query):
        out.setdefault(sub.network_id, []).append(sub)
    return out


class ViewService:
    """The compiler, fed from the store's commits, and the wake-ups of the agents watching it."""

    def __init__(self, store: Store, *, agent_down_time_s: float = 15.0) -> None:
        self.store = store
        self.compiler = Compiler(epoch=uuid.uuid4().hex[:12])
        self.lock = threading.RLock()  # a binding-error write inside refresh() refreshes again
        self.agent_down_time_s = agent_down_time_s
        self.heartbeats: dict[str, float] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self._events: dict[str, asyncio.Event] = {}
        self.compile_cpu_s = 0.0
        self.compiles = 0
        store.on_flush(self._collect)
        store.committed.append(self._committed)

    # ------------------------------------------------------------------ compiler input
    def load(self) -> None:
        with self.lock, self.store.sessions() as s:
            subnets = _subnets_by_network(s)
            rows = s.scalars(select(Network))
            nets = [n for n in (logical_network(row, subnets.get(row.id)) for row in rows) if n is not None]
            self.compiler.load(
                revision=self.store.revision(s),
                networks=nets,
                ports=[logical_port(p) for p in s.scalars(select(Port))],
                chassis=[logical_chassis(c) for c in s.scalars(select(Chassis))],
                routers=[r for r in map(logical_router, s.scalars(select(Router))) if r is not None],
            )
            self._write_binding_errors()

    @staticmethod
    def _collect(session: Session) -> None:
        dirty = session.info.setdefault(
            "dirty", {"networks": set(), "ports": set(), "chassis": set(), "routers": set()})
        for obj in chain(session.new, session.dirty, session.deleted):
            if isinstance(obj, Network):
                dirty["networks"].add(obj.id)
            elif isinstance(obj, Subnet):
                dirty["networks"].add(obj.network_id)  # the subnets travel with their network
            elif isinstance(obj, Router):
                dirty["routers"].add(obj.id)
            elif isinstance(obj, Port):
                dirty["ports"].add(obj.id)
            elif isinstance(obj, IPAllocation):
                dirty["ports"].add(obj.port_id)
            elif isinstance(obj, Chassis):
                dirty["chassis"].add(obj.name)

    def _committed(self, info: dict[str, Any]) -> None:
        dirty = info.get("dirty")
        if dirty and any(dirty.values()):
            self.refresh(dirty, info.get("revision"))

    def refresh(self, dirty: dict[str, set[str]], revision: int | None) -> None:
        """Read the touched rows as committed and recompute the views they concern."""
        started = time.process_time()
        with self.lock:
            with self.store.sessions() as s:
                nets: dict[str, LNetwork | None] = dict.fromkeys(dirty["networks"])
                subnets = _subnets_by_network(s, dirty["networks"]) if dirty["networks"] else {}
                for n in s.scalars(select(Network).where(Network.id.in_(dirty["networks"]))):
                    nets[n.id] = logical_network(n, subnets.get(n.id))
                routers: dict[str, LRouter | None] = dict.fromkeys(dirty.get("routers", ()))
                for r in s.scalars(select(Router).where(Router.id.in_(list(routers)))):
                    routers[r.id] = logical_router(r)
                ports: dict[str, LPort | None] = dict.fromkeys(dirty["ports"])
                for p in s.scalars(select(Port).where(Port.id.in_(dirty["ports"]))):
                    ports[p.id] = logical_port(p)
                chassis: dict[str, LChassis | None] = dict.fromkeys(dirty["chassis"])
                for c in s.scalars(select(Chassis).where(Chassis.name.in_(dirty["chassis"]))):
                    chassis[c.name] = logical_chassis(c)
                if revision is None:
                    revision = self.store.revision(s)
            changed = self.compiler.update(revision=revision, networks=nets, ports=ports, chassis=chassis,
                                           routers=routers)
            self._write_binding_errors()
        self.compile_cpu_s += time.process_time() - started
        self.compiles += 1
        if changed:
            log.info("revision=%s views changed: %s", revision, ",".join(sorted(changed)))
            self._wake(changed)

    def _write_binding_errors(self) -> None:
        """Ports bound to a chassis that cannot carry their network: status ERROR with the reason (and
        back to DOWN, waiting for the agent, when that changes). Its own transaction, after the one that
        caused it; it changes no view, so it causes nothing further."""
        changes = self.compiler.take_binding_changes()
        if not changes:
            return
        with self.store.transaction() as session:
            for port in session.scalars(select(Port).where(Port.id.in_(list(changes)))):
                reason = changes[port.id]
                status = "ERROR" if reason else "DOWN"
                if (port.status, port.status_reason) != (status, reason):
                    port.status, port.status_reason = status, reason
                    port.revision_number += 1
                    port.updated_at = utcnow()
                    log.warning("port=%s host=%s status=%s %s", port.id, port.binding_host_id, status,
                                reason or "")
            self.store.bump(session)

    # ------------------------------------------------------------------ watchers
    def _wake(self, hosts: Any) -> None:
        loop = self.loop
        if loop is None:
            return
        for host in hosts:
            loop.call_soon_threadsafe(self._set, host)

    def _set(self, host: str) -> None:
        ev = self._events.pop(host, None)
        if ev is not None:
            ev.set()

    def registered(self, host: str) -> bool:
        with self.lock:
            return host in self.compiler.chassis

    def beat(self, host: str) -> None:
        self.heartbeats[host] = time.time()

    def alive(self, host: str) -> bool:
        last = self.heartbeats.get(host)
        return last is not None and time.time() - last < self.agent_down_time_s

    async def watch(self, host: str, since: int, epoch: str, wait_s: float) -> dict[str, Any]:
        """The changes of `host`'s view since (`epoch`, `since`), waiting up to `wait_s` for one."""
        self.loop = asyncio.get_running_loop()
        deadline = self.loop.time() + wait_s
        while True:
            self.beat(host)
            ev = self._events.setdefault(host, asyncio.Event())  # taken before looking: no lost wake-up
            with self.lock:
                out = self.compiler.since(host, since, epoch)
            if out is not None:
                return out
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                return {"revision": since, "epoch": epoch, "diffs": []}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(ev.wait(), min(remaining, self.agent_down_time_s / 3))


# ---------------------------------------------------------------------- store operations
def get(session: Session, name: str) -> Chassis:
    row = session.scalar(select(Chassis).where(Chassis.name == name))
    if row is None:
        raise errors.resource_not_found("Chassis", name)
    return row


def register(session: Session, name: str, raw: Any) -> Chassis:
    """Create or update chassis `name` (an agent (re)starting)."""
    if not name or len(name) > 255:
        raise errors.BadRequest("Invalid chassis name.")
    body = check_body(raw, "chassis", CHASSIS_ATTRS, creating=True)
    if body["vtep_ip"] is None:
        raise errors.BadRequest("Failed to parse request. Required attribute 'vtep_ip' not specified")
    row = session.scalar(select(Chassis).where(Chassis.name == name))
    if row is None:
        row = Chassis(id=str(uuid.uuid4()), name=name, created_at=utcnow())
        session.add(row)
    for key in ("vtep_ip", "encaps", "datapath", "capabilities"):
        if getattr(row, key, None) != body[key]:
            setattr(row, key, body[key])
    row.started_at = utcnow()
    session.flush()
    return row


def report_ports(session: Session, name: str, raw: Any) -> dict[str, Any]:
    """An agent's report `{"ports": {port id: status}}`: only ports bound to that chassis are changed
    (one writer per row: the chassis owns its ports' status)."""
    get(session, name)
    if not isinstance(raw, dict) or not isinstance(raw.get("ports"), dict):
        raise errors.BadRequest('Expected {"ports": {"<port id>": "ACTIVE|DOWN|BUILD|ERROR"}}')
    wanted: dict[str, str] = raw["ports"]
    for status in wanted.values():
        if status not in PORT_STATUSES:
            raise errors.BadRequest(f"Invalid port status {status!r}: one of {list(PORT_STATUSES)}.")
    out: dict[str, list[str]] = {"changed": [], "ignored": []}
    rows = {p.id: p for p in session.scalars(select(Port).where(Port.id.in_(list(wanted))))}
    for pid, status in wanted.items():
        port = rows.get(pid)
        if port is None or port.binding_host_id != name:
            out["ignored"].append(pid)
        elif port.status != status:
            port.status = status
            port.status_reason = None
            port.revision_number += 1
            port.updated_at = utcnow()
            out["changed"].append(pid)
    return out


def _ts(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        value = datetime.fromtimestamp(value, UTC).replace(tzinfo=None, microsecond=0)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def show_agent(row: Chassis, service: ViewService, ports: int) -> dict[str, Any]:
    """A chassis in the shape of Neutron's agent resource (`openstack network agent list`)."""
    return {
        "id": row.id,
        "agent_type": AGENT_TYPE,
        "binary": "netweave-agent",
        "host": row.name,
        "topic": "N/A",
        "admin_state_up": True,
        "alive": service.alive(row.name),
        "availability_zone": None,
        "description": None,
        "configurations": {
            "vtep_ip": row.vtep_ip,
            "tunnel_types": list(row.encaps),
            "datapath": row.datapath,
            "capabilities": dict(row.capabilities),
            "devices": ports,
        },
        "created_at": _ts(row.created_at),
        "started_at": _ts(row.started_at),
        "heartbeat_timestamp": _ts(service.heartbeats.get(row.name)),
        "resources_synced": None,
    }


def bound_ports(session: Session) -> dict[str, int]:
    out: dict[str, int] = {}
    for host in session.scalars(select(db.Port.binding_host_id).where(db.Port.binding_host_id != "")):
        out[host] = out.get(host, 0) + 1
    return out
