"""The agents' API (register, heartbeat, port status, long-poll views) and Neutron's /v2.0/agents, on SQLite
and PostgreSQL; and `openstack network agent list` against a live controller."""

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from netweave.controller.api import create_app
from netweave.controller.store import Store

from .test_networks import create as create_network
from .test_networks import error
from .test_openstack_clients import OPENSTACK, endpoint, osc_json  # noqa: F401 - `endpoint` is a fixture
from .test_subnets_ports import port, subnet

CH = "/netweave/v1/chassis"


def register(client: Any, name: str, vtep_ip: str = "192.0.2.1", **attrs: Any) -> dict[str, Any]:
    r = client.put(f"{CH}/{name}", json={"chassis": {"vtep_ip": vtep_ip, **attrs}})
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()["chassis"]
    return out


@pytest.fixture
def quick(store: Store) -> Iterator[TestClient]:
    """An app whose agents are down 0.5 s after their last heartbeat."""
    with TestClient(create_app(store, agent_down_time_s=0.5)) as c:
        yield c


def test_register_and_agents_in_neutrons_shape(client: TestClient) -> None:
    caps = {"encaps": ["vxlan", "geneve"], "arp_suppression": True}
    a = register(client, "h1", "192.0.2.1", encaps=["vxlan", "geneve", "vxlan"], datapath="kernel",
                 capabilities=caps)
    assert a["host"] == "h1" and a["agent_type"] == "NetWeave agent" and a["binary"] == "netweave-agent"
    assert a["admin_state_up"] is True
    assert a["configurations"] == {"vtep_ip": "192.0.2.1", "tunnel_types": ["vxlan", "geneve"],
                                   "datapath": "kernel", "capabilities": caps, "devices": 0}
    b = register(client, "h2", "2001:db8::0002")
    assert b["configurations"]["vtep_ip"] == "2001:db8::2", "canonical form"
    assert b["configurations"]["tunnel_types"] == ["vxlan"] and b["configurations"]["datapath"] == "userspace"

    listed = client.get("/v2.0/agents").json()["agents"]
    assert sorted(x["host"] for x in listed) == ["h1", "h2"]
    one = next(x for x in listed if x["host"] == "h1")
    assert one["alive"] is True and one["id"] == a["id"]
    assert one == client.get(f"/v2.0/agents/{a['id']}").json()["agent"]
    for key in ("id", "agent_type", "binary", "host", "topic", "alive", "admin_state_up", "availability_zone",
                "configurations", "created_at", "started_at", "heartbeat_timestamp"):
        assert key in one, key
    assert [x["host"] for x in client.get("/v2.0/agents", params={"host": "h2"}).json()["agents"]] == ["h2"]

    # registering again (an agent restart) keeps the id and takes the new settings
    again = register(client, "h1", "192.0.2.11")
    assert again["id"] == a["id"] and again["configurations"]["vtep_ip"] == "192.0.2.11"
    assert again["configurations"]["tunnel_types"] == ["vxlan"], "attributes not given go to their defaults"
    # bound ports are the agent's devices
    net = create_network(client)
    port(client, net["id"], **{"binding:host_id": "h1"})
    assert client.get(f"/v2.0/agents/{a['id']}").json()["agent"]["configurations"]["devices"] == 1

    assert client.delete(f"/v2.0/agents/{a['id']}").status_code == 204
    error(client.get(f"/v2.0/agents/{a['id']}"), 404)
    error(client.delete(f"/v2.0/agents/{a['id']}"), 404)
    assert [x["host"] for x in client.get("/v2.0/agents").json()["agents"]] == ["h2"]
    assert client.post(f"{CH}/h1/heartbeat").status_code == 404
    assert client.delete(f"{CH}/h2").status_code == 204
    assert client.get("/v2.0/agents").json()["agents"] == []


def test_register_response_shows_the_agent_alive(client: TestClient) -> None:
    """Registering counts as a heartbeat, already in the answer."""
    assert register(client, "h1")["alive"] is True


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"chassis": {"vtep_ip": "300.1.2.3"}}, "vtep_ip"),
        ({"chassis": {"vtep_ip": "h1.example"}}, "vtep_ip"),
        ({"chassis": {"vtep_ip": "192.0.2.1", "encaps": ["vxlan", "mpls"]}}, "encaps"),
        ({"chassis": {"vtep_ip": "192.0.2.1", "encaps": "vxlan"}}, "encaps"),
        ({"chassis": {"vtep_ip": "192.0.2.1", "datapath": "dpdk"}}, "datapath"),
        ({"chassis": {"vtep_ip": "192.0.2.1", "capabilities": []}}, "capabilities"),
        ({"chassis": {"encaps": ["vxlan"]}}, "vtep_ip"),
        ({"chassis": {"vtep_ip": "192.0.2.1", "colour": "blue"}}, "colour"),
        ({"vtep_ip": "192.0.2.1"}, "chassis"),
        (None, "chassis"),
    ],
)
def test_register_validation(client: TestClient, body: Any, fragment: str) -> None:
    r = client.put(f"{CH}/h1", json=body) if body is not None else client.put(f"{CH}/h1")
    assert fragment in error(r, 400, "HTTPBadRequest")
    assert client.get("/v2.0/agents").json()["agents"] == []


def test_register_rejects_bad_json(client: TestClient) -> None:
    r = client.put(f"{CH}/h1", content=b"{not json", headers={"content-type": "application/json"})
    assert "JSON" in error(r, 400)


def test_heartbeat_and_alive(quick: TestClient) -> None:
    error(quick.post(f"{CH}/nobody/heartbeat"), 404)
    a = register(quick, "h1")

    def alive() -> bool:
        agent: dict[str, Any] = quick.get(f"/v2.0/agents/{a['id']}").json()["agent"]
        return bool(agent["alive"])

    assert alive()
    time.sleep(0.6)
    assert not alive(), "no heartbeat for longer than agent_down_time"
    r = quick.post(f"{CH}/h1/heartbeat")
    assert r.status_code == 204 and r.content == b""
    assert alive()
    assert quick.get(f"/v2.0/agents/{a['id']}").json()["agent"]["heartbeat_timestamp"] is not None


def test_port_status_reports(client: TestClient) -> None:
    register(client, "h1")
    register(client, "h2", "192.0.2.2")
    net = create_network(client)
    p = port(client, net["id"], **{"binding:host_id": "h1"})
    other = port(client, net["id"], **{"binding:host_id": "h2"})
    assert p["status"] == "DOWN" and p["revision_number"] == 0

    r = client.put(f"{CH}/h1/ports", json={"ports": {p["id"]: "ACTIVE"}})
    assert r.status_code == 200 and r.json() == {"changed": [p["id"]], "ignored": []}
    shown = client.get(f"/v2.0/ports/{p['id']}").json()["port"]
    assert shown["status"] == "ACTIVE" and shown["revision_number"] == 1
    # the same again: nothing changes
    r = client.put(f"{CH}/h1/ports", json={"ports": {p["id"]: "ACTIVE"}})
    assert r.json() == {"changed": [], "ignored": []}
    assert client.get(f"/v2.0/ports/{p['id']}").json()["port"]["revision_number"] == 1
    # another chassis cannot change a port it does not own; unknown ports are ignored too
    report = {p["id"]: "ERROR", other["id"]: "ACTIVE", "nope": "DOWN"}
    r = client.put(f"{CH}/h2/ports", json={"ports": report})
    assert r.json() == {"changed": [other["id"]], "ignored": [p["id"], "nope"]}
    assert client.get(f"/v2.0/ports/{p['id']}").json()["port"]["status"] == "ACTIVE"
    # bad reports
    assert "status" in error(client.put(f"{CH}/h1/ports", json={"ports": {p["id"]: "UP"}}), 400)
    error(client.put(f"{CH}/h1/ports", json={"statuses": {}}), 400)
    error(client.put(f"{CH}/h1/ports", json=[p["id"]]), 400)
    error(client.put(f"{CH}/h9/ports", json={"ports": {p["id"]: "ACTIVE"}}), 404)
    assert client.get(f"/v2.0/ports/{p['id']}").json()["port"]["status"] == "ACTIVE"
    # re-binding: DOWN until the new chassis reports it
    r = client.put(f"/v2.0/ports/{p['id']}", json={"port": {"binding:host_id": "h2"}})
    assert r.status_code == 200 and r.json()["port"]["status"] == "DOWN"
    assert client.put(f"{CH}/h1/ports", json={"ports": {p["id"]: "ACTIVE"}}).json()["ignored"] == [p["id"]]
    assert client.put(f"{CH}/h2/ports", json={"ports": {p["id"]: "ACTIVE"}}).json()["changed"] == [p["id"]]
    assert client.get(f"/v2.0/ports/{p['id']}").json()["port"]["status"] == "ACTIVE"


def test_view_full_then_unknown_chassis(client: TestClient) -> None:
    error(client.get(f"{CH}/h1/view"), 404)
    register(client, "h1")
    empty = client.get(f"{CH}/h1/view", params={"since": -1}).json()
    assert set(empty) == {"revision", "epoch", "full"}
    assert empty["full"] == {"networks": {}, "ports": {}, "remotes": {}, "routers": {}}
    # up to date and no wait: the same revision, no diffs
    same = client.get(f"{CH}/h1/view", params={"since": empty["revision"], "epoch": empty["epoch"]}).json()
    assert same == {"revision": empty["revision"], "epoch": empty["epoch"], "diffs": []}
    # a wrong epoch (a controller restart): the whole view
    other = client.get(f"{CH}/h1/view", params={"since": empty["revision"], "epoch": "old"}).json()
    assert "full" in other and other["epoch"] == empty["epoch"]
    error(client.get(f"{CH}/h1/view", params={"since": "x"}), 400)


def test_chassis_changes_reach_the_other_views(client: TestClient) -> None:
    register(client, "h1", "192.0.2.1")
    h2 = register(client, "h2", "192.0.2.2")
    net = create_network(client)
    vni = str(net["provider:segmentation_id"])
    port(client, net["id"], **{"binding:host_id": "h1"})
    p2 = port(client, net["id"], **{"binding:host_id": "h2"})
    key = f"{vni}/{p2['mac_address']}"

    def h1() -> dict[str, Any]:
        full: dict[str, Any] = client.get(f"{CH}/h1/view", params={"since": -1}).json()["full"]
        return full

    assert h1()["networks"][vni]["flood"] == ["192.0.2.2"] and h1()["remotes"][key]["vtep"] == "192.0.2.2"
    register(client, "h2", "192.0.2.22")  # re-addressed
    assert h1()["networks"][vni]["flood"] == ["192.0.2.22"] and h1()["remotes"][key]["vtep"] == "192.0.2.22"
    assert client.delete(f"/v2.0/agents/{h2['id']}").status_code == 204
    assert h1()["networks"][vni]["flood"] == [] and h1()["remotes"] == {}, "no VTEP to send to"
    register(client, "h2", "192.0.2.2")
    assert h1()["remotes"][key]["vtep"] == "192.0.2.2"
    # an admin-down port leaves its chassis' view and the others'
    client.put(f"/v2.0/ports/{p2['id']}", json={"port": {"admin_state_up": False}})
    assert h1()["remotes"] == {} and client.get(f"{CH}/h2/view").json()["full"]["ports"] == {}


def test_view_long_poll(store: Store) -> None:
    app = create_app(store)
    asyncio.run(_long_poll(app))


async def _long_poll(app: Any) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver", timeout=30) as c:
        for name, ip in (("h1", "192.0.2.1"), ("h2", "192.0.2.2"), ("h3", "192.0.2.3")):
            r = await c.put(f"{CH}/{name}", json={"chassis": {"vtep_ip": ip}})
            assert r.status_code == 200, r.text
        net = (await c.post("/v2.0/networks", json={"network": {"name": "n"}})).json()["network"]
        await c.post("/v2.0/subnets", json={"subnet": {"network_id": net["id"], "ip_version": 4,
                                                       "cidr": "10.5.0.0/24"}})
        p1 = (await c.post("/v2.0/ports", json={"port": {"network_id": net["id"], "name": "vm1",
                                                          "binding:host_id": "h1"}})).json()["port"]
        vni = net["provider:segmentation_id"]

        first = (await c.get(f"{CH}/h1/view", params={"since": -1})).json()
        assert set(first) == {"revision", "epoch", "full"}
        entry = first["full"]["ports"][p1["id"]]
        assert entry["name"] == "tap" + p1["id"][:11] and entry["label"] == "vm1"
        assert entry["mac"] == p1["mac_address"] and entry["ips"] == ["10.5.0.2"]
        assert first["full"]["networks"][str(vni)]["flood"] == [] and first["full"]["remotes"] == {}
        rev, epoch = first["revision"], first["epoch"]

        # nothing changes: the long poll ends after its wait with no diffs and the same revision
        started = time.monotonic()
        idle = (await c.get(f"{CH}/h1/view", params={"since": rev, "epoch": epoch, "wait": 0.3})).json()
        assert idle == {"revision": rev, "epoch": epoch, "diffs": []}
        assert 0.3 <= time.monotonic() - started < 3

        # a change on another chassis' unrelated network does not wake h1
        other = (await c.post("/v2.0/networks", json={"network": {"name": "o"}})).json()["network"]

        async def watch() -> tuple[float, dict[str, Any]]:
            started = time.monotonic()
            r = await c.get(f"{CH}/h1/view", params={"since": rev, "epoch": epoch, "wait": 5})
            assert r.status_code == 200, r.text
            out: dict[str, Any] = r.json()
            return time.monotonic() - started, out

        async def writes() -> dict[str, Any]:
            await asyncio.sleep(0.3)
            body = {"port": {"network_id": other["id"], "binding:host_id": "h3"}}
            r = await c.post("/v2.0/ports", json=body)
            assert r.status_code == 201, r.text
            await asyncio.sleep(0.3)
            r = await c.post("/v2.0/ports", json={"port": {"network_id": net["id"], "binding:host_id": "h2"}})
            assert r.status_code == 201, r.text
            p2: dict[str, Any] = r.json()["port"]
            return p2

        (elapsed, answer), p2 = await asyncio.gather(watch(), writes())
        assert 0.5 < elapsed < 2.5, f"woken by the port on its network: {elapsed}"
        assert answer["epoch"] == epoch and answer["revision"] > rev and "full" not in answer
        assert len(answer["diffs"]) == 1
        diff = answer["diffs"][0]
        mac, ip = p2["mac_address"], p2["fixed_ips"][0]["ip_address"]
        remote = {"vni": vni, "mac": mac, "vtep": "192.0.2.2", "ips": [ip]}
        assert diff["remotes"]["set"] == {f"{vni}/{mac}": remote}
        assert diff["networks"]["set"][str(vni)]["flood"] == ["192.0.2.2"]
        assert "ports" not in diff

        # a status report changes no view: the next poll does not return early
        r = await c.put(f"{CH}/h1/ports", json={"ports": {p1["id"]: "ACTIVE"}})
        assert r.json()["changed"] == [p1["id"]]
        quiet = (await c.get(f"{CH}/h1/view", params={"since": answer["revision"], "epoch": epoch,
                                                      "wait": 0.2})).json()
        assert quiet == {"revision": answer["revision"], "epoch": epoch, "diffs": []}

        # behind by two changes: both diffs, which together give the current full view
        await c.put(f"/v2.0/ports/{p1['id']}", json={"port": {"name": "renamed"}})
        await c.delete(f"/v2.0/ports/{p2['id']}")
        behind = (await c.get(f"{CH}/h1/view", params={"since": answer["revision"], "epoch": epoch})).json()
        assert len(behind["diffs"]) == 2
        now = (await c.get(f"{CH}/h1/view", params={"since": -1})).json()
        assert now["revision"] == behind["revision"] and now["full"]["remotes"] == {}
        assert now["full"]["ports"][p1["id"]]["label"] == "renamed"


@pytest.mark.skipif(OPENSTACK is None, reason="python-openstackclient is not installed")
def test_openstack_network_agent_list(endpoint: str) -> None:  # noqa: F811 - the imported fixture
    r = httpx.put(f"{endpoint.rstrip('/')}{CH}/compute-1",
                  json={"chassis": {"vtep_ip": "192.0.2.21", "encaps": ["vxlan", "geneve"]}})
    assert r.status_code == 200, r.text
    agent_id = r.json()["chassis"]["id"]
    listed = osc_json(endpoint, "network", "agent", "list")
    assert len(listed) == 1
    row = listed[0]
    assert row["ID"] == agent_id and row["Host"] == "compute-1" and row["Agent Type"] == "NetWeave agent"
    assert row["Alive"] in (True, ":-)") and row["State"] in (True, "UP")
    assert row["Binary"] == "netweave-agent"


def test_port_on_a_chassis_that_cannot_carry_its_network_is_error_with_the_reason(client: TestClient) -> None:
    """A kernel-datapath chassis without geneve: its geneve port is never scheduled there (not in its
    view) and shows ERROR with why; its vxlan port is unaffected; moving the port to a chassis that can
    carry it clears the error."""
    for name, ip, datapath, encaps in (("k1", "192.0.2.1", "kernel", ["vxlan"]),
                                       ("u1", "192.0.2.2", "userspace", ["vxlan", "geneve"])):
        r = client.put(f"/netweave/v1/chassis/{name}",
                       json={"chassis": {"vtep_ip": ip, "datapath": datapath, "encaps": encaps}})
        assert r.status_code == 200, r.text
    gen = client.post("/v2.0/networks", json={"network": {"name": "g", "provider:network_type": "geneve"}})
    vx = client.post("/v2.0/networks", json={"network": {"name": "v", "provider:network_type": "vxlan"}})
    ports = {}
    for key, net in (("g", gen.json()["network"]), ("v", vx.json()["network"])):
        r = client.post("/v2.0/ports", json={"port": {"network_id": net["id"], "binding:host_id": "k1"}})
        assert r.status_code == 201, r.text
        ports[key] = r.json()["port"]["id"]
    g = client.get(f"/v2.0/ports/{ports['g']}").json()["port"]
    assert g["status"] == "ERROR"
    assert g["binding:vif_type"] == "binding_failed"
    assert g["binding:vif_details"]["reason"] == (
        "geneve is not available in this host's kernel; use the userspace datapath")
    v = client.get(f"/v2.0/ports/{ports['v']}").json()["port"]
    assert v["status"] == "DOWN" and v["binding:vif_details"] == {}
    view = client.get("/netweave/v1/chassis/k1/view", params={"since": -1}).json()["full"]
    assert set(view["ports"]) == {ports["v"]}
    assert [n["encap"] for n in view["networks"].values()] == ["vxlan"]
    r = client.put(f"/v2.0/ports/{ports['g']}", json={"port": {"binding:host_id": "u1"}})
    assert r.status_code == 200
    g = client.get(f"/v2.0/ports/{ports['g']}").json()["port"]
    assert g["status"] == "DOWN" and g["binding:vif_type"] == "netweave" and g["binding:vif_details"] == {}
    view = client.get("/netweave/v1/chassis/u1/view", params={"since": -1}).json()["full"]
    assert set(view["ports"]) == {ports["g"]}


def test_routers_subnets_and_interfaces_reach_the_views(client: TestClient) -> None:
    """The store feeds routers, subnets and interface ports to the compiler: a router appears in the view of
    each chassis with a VM on one of its networks, with gateway, MAC, host routes and extra routes, and
    follows every change (interface added/removed, routes, IRB mode, admin state, subnet DNS)."""
    register(client, "h1", "192.0.2.1")
    register(client, "h2", "192.0.2.2")
    web, db = create_network(client, name="web"), create_network(client, name="db")
    s_web = subnet(client, web["id"], "10.1.0.0/24", dns_nameservers=["192.0.2.53"])
    s_db = subnet(client, db["id"], "10.2.0.0/24")
    vm1 = port(client, web["id"], **{"binding:host_id": "h1"})
    vm2 = port(client, db["id"], **{"binding:host_id": "h2"})
    r = client.post("/v2.0/routers", json={"router": {"name": "r1"}}).json()["router"]

    def view(host: str) -> dict[str, Any]:
        full: dict[str, Any] = client.get(f"{CH}/{host}/view", params={"since": -1}).json()["full"]
        return full

    vni_web = str(web["provider:segmentation_id"])
    assert view("h1")["routers"] == {}
    assert view("h1")["networks"][vni_web]["subnets"] == [
        {"cidr": "10.1.0.0/24", "gateway_ip": "10.1.0.1", "dhcp": True, "dns": ["192.0.2.53"],
         "host_routes": [], "ipv6_address_mode": None, "ipv6_ra_mode": None}]
    iface = client.put(f"/v2.0/routers/{r['id']}/add_router_interface", json={"subnet_id": s_web["id"]})
    assert iface.status_code == 200, iface.text
    client.put(f"/v2.0/routers/{r['id']}/add_router_interface", json={"subnet_id": s_db["id"]})
    for host in ("h1", "h2"):
        entry = view(host)["routers"][r["id"]]
        assert entry["l3_vni"] == r["netweave:l3_vni"] and entry["irb"] == "symmetric"
        assert {i["gateway_ip"] for i in entry["interfaces"]} == {"10.1.0.1", "10.2.0.1"}
        assert {(h["ip"], h["vtep"]) for h in entry["hosts"]} == {
            (vm1["fixed_ips"][0]["ip_address"], "192.0.2.1"),
            (vm2["fixed_ips"][0]["ip_address"], "192.0.2.2")}
    assert view("h1")["routers"][r["id"]]["rmac"] != view("h2")["routers"][r["id"]]["rmac"]
    vm2_ip = vm2["fixed_ips"][0]["ip_address"]
    client.put(f"/v2.0/routers/{r['id']}", json={"router": {
        "routes": [{"destination": "172.16.0.0/16", "nexthop": vm2_ip}], "netweave:irb": "asymmetric"}})
    entry = view("h1")["routers"][r["id"]]
    assert entry["routes"] == [{"destination": "172.16.0.0/16", "nexthop": vm2_ip}]
    assert entry["irb"] == "asymmetric"
    client.put(f"/v2.0/routers/{r['id']}", json={"router": {"routes": []}})
    client.put(f"/v2.0/routers/{r['id']}/remove_router_interface", json={"subnet_id": s_db["id"]})
    assert view("h2")["routers"] == {}, "h2 has no VM on the router's remaining network"
    assert [i["gateway_ip"] for i in view("h1")["routers"][r["id"]]["interfaces"]] == ["10.1.0.1"]
    client.put(f"/v2.0/routers/{r['id']}", json={"router": {"admin_state_up": False}})
    assert view("h1")["routers"] == {}
