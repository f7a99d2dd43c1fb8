"""The lab as a Neutron API user: it creates tenants' networks, subnets and ports over HTTP (httpx), as
`openstack` would, and finds the ports to test there too, so a port someone adds by hand during the lab
(`openstack port create --host h1 ...`) is measured like the lab's own.
"""

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from netweave.lab.errors import LabError
from netweave.lab.spec import Lab, Network, Router, Subnet, Vm

OWNER = "compute:lab"  # device_owner of the lab's VM ports
ROUTER_INTERFACE = ("network:router_interface_distributed", "network:router_interface")


@dataclass(frozen=True)
class Endpoint:
    """A port bound to a lab host, as the matrix sees it: where it lives and what it should reach."""

    name: str
    port_id: str
    host: str
    netns: str
    network_id: str
    network: str  # network name ("" if the API does not show one)
    tenant: str
    mac: str
    addresses: tuple[tuple[str, int], ...]  # (ip, prefix length of its subnet)
    status: str
    routers: frozenset[str] = frozenset()  # the routers attached to its network
    gateways: tuple[str, ...] = ()  # their addresses on its network: the VM's default routes

    def connected(self, other: "Endpoint") -> bool:
        """Whether `other` should be reachable: the same network, or networks joined by a router."""
        return self.network_id == other.network_id or bool(self.routers & other.routers)

    def on_link(self, ip: str) -> bool:
        """`ip` is inside one of this endpoint's subnets (reached without a router)."""
        addr = ipaddress.ip_address(ip)
        return any(addr in ipaddress.ip_interface(f"{a}/{p}").network for a, p in self.addresses)

    @property
    def tap(self) -> str:
        """The agent names a port's TAP after the port id (15 bytes: `tap` + 11)."""
        return "tap" + self.port_id[:11]

    @property
    def target(self) -> str | None:
        """The address others ping: the first IPv4 one, else the first IPv6 one."""
        v4 = [ip for ip, _ in self.addresses if ipaddress.ip_address(ip).version == 4]
        candidates = v4 or [ip for ip, _ in self.addresses]
        return candidates[0] if candidates else None


class Api:
    """A small Neutron client: every failure becomes one LabError line naming the request."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, path: str, *, project: str | None = None, body: Any = None) -> Any:
        headers = {"X-Project-Id": project} if project else {}
        try:
            r = self.http.request(method, path, headers=headers, json=body)
        except httpx.HTTPError as exc:
            why = str(exc) or type(exc).__name__
            raise LabError(f"controller at {self.url}: {method} {path}: {why}") from None
        if r.status_code >= 400:
            try:
                msg = r.json()["NeutronError"]["message"]
            except (ValueError, KeyError, TypeError):
                msg = r.text[:200]
            raise LabError(f"{method} {path}: {r.status_code} {' '.join(str(msg).split())}")
        return r.json() if r.content else None

    def answers(self) -> bool:
        """The controller serves its API (its "listening" line comes before the socket is bound)."""
        try:
            return self.http.get("/v2.0/networks", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def create_network(self, tenant: str, net: Network) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": net.name,
            "provider:network_type": net.type,
            "netweave:control_plane": net.control_plane,
            "netweave:replication": net.replication,
        }
        if net.multicast_group is not None:
            body["netweave:multicast_group"] = net.multicast_group
        out: dict[str, Any] = self.call("POST", "/v2.0/networks", project=tenant, body={"network": body})
        return out["network"]  # type: ignore[no-any-return]

    def create_subnet(
        self, tenant: str, network_id: str, subnet: Subnet, dhcp: bool = False
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "network_id": network_id,
            "cidr": subnet.cidr,
            "ip_version": subnet.network.version,
            "enable_dhcp": dhcp,
        }
        if subnet.ipv6_mode is not None:
            body["ipv6_address_mode"] = body["ipv6_ra_mode"] = subnet.ipv6_mode
        out: dict[str, Any] = self.call("POST", "/v2.0/subnets", project=tenant, body={"subnet": body})
        return out["subnet"]  # type: ignore[no-any-return]

    def create_router(self, tenant: str, router: Router) -> dict[str, Any]:
        body = {"name": router.name, "netweave:irb": router.irb}
        out: dict[str, Any] = self.call("POST", "/v2.0/routers", project=tenant, body={"router": body})
        return out["router"]  # type: ignore[no-any-return]

    def add_router_interface(self, tenant: str, router_id: str, subnet_id: str) -> None:
        self.call("PUT", f"/v2.0/routers/{router_id}/add_router_interface", project=tenant,
                  body={"subnet_id": subnet_id})

    def create_port(self, lab: Lab, tenant: str, vm: Vm, network_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "network_id": network_id,
            "name": vm.name,
            "binding:host_id": vm.host,
            "binding:profile": {"netns": lab.netns(vm.name)},
            "device_owner": OWNER,
            "device_id": vm.name,
        }
        if vm.ip is not None:
            body["fixed_ips"] = [{"ip_address": vm.ip}]
        out: dict[str, Any] = self.call("POST", "/v2.0/ports", project=tenant, body={"port": body})
        return out["port"]  # type: ignore[no-any-return]

    def collection(self, name: str) -> list[dict[str, Any]]:
        out: dict[str, Any] = self.call("GET", f"/v2.0/{name}")
        return list(out[name])

    def agents_alive(self) -> set[str]:
        return {a["host"] for a in self.collection("agents") if a.get("alive")}


def port_netns(lab: Lab, port: dict[str, Any]) -> str:
    """Where the agent puts a port's TAP: the namespace its binding profile names (the lab's own
    ports), else `<lab>-<port name or id[:8]>`, which the agent creates."""
    profile = port.get("binding:profile") or {}
    if isinstance(profile, dict) and isinstance(profile.get("netns"), str) and profile["netns"]:
        return str(profile["netns"])
    return lab.netns(port.get("name") or port["id"][:8])


def discover(api: Api, lab: Lab) -> list[Endpoint]:
    """Every port bound to a lab host that a VM would use (not the `network:*` ports of routers and
    DHCP): the lab's VMs first, in file order, then the others by name."""
    hosts = {h.name for h in lab.hosts}
    prefix = {s["id"]: ipaddress.ip_network(s["cidr"]).prefixlen for s in api.collection("subnets")}
    net_names = {n["id"]: n.get("name", "") for n in api.collection("networks")}
    ports = api.collection("ports")
    routers: dict[str, set[str]] = {}
    gateways: dict[str, list[str]] = {}
    for p in ports:
        if p.get("device_owner") in ROUTER_INTERFACE:
            routers.setdefault(p["network_id"], set()).add(p["device_id"])
            gateways.setdefault(p["network_id"], []).extend(f["ip_address"] for f in p.get("fixed_ips", []))
    out = []
    for p in ports:
        if p.get("binding:host_id") not in hosts or str(p.get("device_owner", "")).startswith("network:"):
            continue
        out.append(
            Endpoint(
                name=p.get("name") or p["id"][:8],
                port_id=p["id"],
                host=p["binding:host_id"],
                netns=port_netns(lab, p),
                network_id=p["network_id"],
                network=net_names.get(p["network_id"], ""),
                tenant=p.get("project_id") or "",
                mac=str(p["mac_address"]).lower(),
                addresses=tuple((f["ip_address"], prefix[f["subnet_id"]]) for f in p.get("fixed_ips", [])),
                status=p.get("status", ""),
                routers=frozenset(routers.get(p["network_id"], ())),
                gateways=tuple(gateways.get(p["network_id"], ())),
            )
        )
    order = {vm.name: i for i, vm in enumerate(vm for t in lab.tenants for vm in t.vms)}
    return sorted(out, key=lambda e: (order.get(e.name, len(order)), e.name, e.port_id))


def wait_active(
    api: Api, port_ids: dict[str, str], timeout_s: float, check: Callable[[], None] | None = None
) -> None:
    """Until every port (id -> name) is ACTIVE, i.e. its chassis's agent has wired it. `check()` is
    called on every round so a dead agent fails the wait at once instead of at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        ports = {p["id"]: p for p in api.collection("ports") if p["id"] in port_ids}
        status = {pid: p.get("status", "") for pid, p in ports.items()}
        waiting = {pid: status.get(pid, "deleted") for pid in port_ids if status.get(pid) != "ACTIVE"}
        if not waiting:
            return
        failed = [  # the controller could not bind it (e.g. its chassis lacks the encapsulation): final
            f"{port_ids[pid]}: {ports[pid].get('binding:vif_details', {}).get('reason', 'ERROR')}"
            for pid in waiting if status.get(pid) == "ERROR"
        ]
        if failed:
            raise LabError(f"ports in ERROR: {'; '.join(sorted(failed))}")
        if time.monotonic() > deadline:
            names = ", ".join(sorted(f"{port_ids[pid]} ({s})" for pid, s in waiting.items()))
            raise LabError(f"ports not ACTIVE after {timeout_s:.0f} s: {names}")
        if check is not None:
            check()
        time.sleep(0.25)
