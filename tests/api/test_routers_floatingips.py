"""Routers (interfaces, gateway, extra routes, L3 VNI) and floating IPs over the API."""

from typing import Any

from fastapi.testclient import TestClient

from .test_networks import create as create_network
from .test_networks import error
from .test_subnets_ports import port, subnet


def router(client: TestClient, **attrs: Any) -> dict[str, Any]:
    r = client.post("/v2.0/routers", json={"router": attrs})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()["router"]
    return out


def add(client: TestClient, rid: str, **body: Any) -> Any:
    return client.put(f"/v2.0/routers/{rid}/add_router_interface", json=body)


def remove(client: TestClient, rid: str, **body: Any) -> Any:
    return client.put(f"/v2.0/routers/{rid}/remove_router_interface", json=body)


def external(client: TestClient) -> tuple[dict[str, Any], dict[str, Any]]:
    ext = create_network(client, name="public", **{"router:external": True})
    return ext, subnet(client, ext["id"], "203.0.113.0/24")


def test_router_interfaces(client: TestClient) -> None:
    r1, r2 = router(client, name="r1"), router(client, name="r2")
    assert r1["netweave:l3_vni"] != r2["netweave:l3_vni"] and r1["netweave:irb"] == "symmetric"
    assert r1["external_gateway_info"] is None and r1["distributed"] is True
    net = create_network(client)
    sub = subnet(client, net["id"], "10.10.0.0/24")
    r = add(client, r1["id"], subnet_id=sub["id"])
    assert r.status_code == 200, r.text
    info = r.json()
    assert set(info) == {"id", "network_id", "port_id", "subnet_id", "subnet_ids", "project_id", "tenant_id"}
    assert info["subnet_id"] == sub["id"] and info["id"] == r1["id"]
    iface = client.get(f"/v2.0/ports/{info['port_id']}").json()["port"]
    assert iface["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.10.0.1"}]
    assert iface["device_id"] == r1["id"] and iface["device_owner"].startswith("network:router_interface")
    assert [p["id"] for p in client.get(f"/v2.0/ports?device_id={r1['id']}").json()["ports"]] == [
        info["port_id"]
    ]
    error(add(client, r1["id"], subnet_id=sub["id"]), 400)  # already attached
    error(add(client, r2["id"], subnet_id=sub["id"]), 409, "IpAddressAlreadyAllocated")  # gateway IP taken
    overlapping = subnet(client, create_network(client)["id"], "10.10.0.0/25")
    error(add(client, r1["id"], subnet_id=overlapping["id"]), 400)
    error(client.delete(f"/v2.0/ports/{info['port_id']}"), 409)  # owned by the router
    error(client.delete(f"/v2.0/routers/{r1['id']}"), 409, "RouterInUse")
    error(client.delete(f"/v2.0/networks/{net['id']}"), 409, "NetworkInUse")
    assert remove(client, r1["id"], subnet_id=sub["id"]).status_code == 200
    error(remove(client, r1["id"], subnet_id=sub["id"]), 404)
    assert client.delete(f"/v2.0/routers/{r1['id']}").status_code == 204


def test_interface_by_port_and_extra_routes(client: TestClient) -> None:
    r1 = router(client)
    net = create_network(client)
    subnet(client, net["id"], "10.11.0.0/24")
    p = port(client, net["id"], fixed_ips=[{"ip_address": "10.11.0.200"}])
    assert add(client, r1["id"], port_id=p["id"]).status_code == 200
    error(
        client.put(
            f"/v2.0/routers/{r1['id']}",
            json={"router": {"routes": [{"destination": "10.99.0.0/16", "nexthop": "192.0.2.1"}]}},
        ),
        400,
        "InvalidRoutes",
    )
    ok = client.put(
        f"/v2.0/routers/{r1['id']}",
        json={"router": {"routes": [{"destination": "10.99.0.0/16", "nexthop": "10.11.0.5"}]}},
    )
    assert ok.status_code == 200 and ok.json()["router"]["routes"] == [
        {"destination": "10.99.0.0/16", "nexthop": "10.11.0.5"}
    ]
    error(remove(client, r1["id"], port_id=p["id"]), 409)  # a route needs that interface
    client.put(f"/v2.0/routers/{r1['id']}", json={"router": {"routes": []}})
    assert remove(client, r1["id"], port_id=p["id"]).status_code == 200


def test_gateway_and_floating_ips(client: TestClient) -> None:
    ext, ext_sub = external(client)
    r1 = router(client, external_gateway_info={"network_id": ext["id"]})
    gw = r1["external_gateway_info"]
    assert gw["network_id"] == ext["id"] and gw["enable_snat"] is True
    assert gw["external_fixed_ips"][0]["subnet_id"] == ext_sub["id"]
    net = create_network(client)
    sub = subnet(client, net["id"], "10.12.0.0/24")
    add(client, r1["id"], subnet_id=sub["id"])
    vm = port(client, net["id"])
    r = client.post(
        "/v2.0/floatingips", json={"floatingip": {"floating_network_id": ext["id"], "port_id": vm["id"]}}
    )
    assert r.status_code == 201, r.text
    fip = r.json()["floatingip"]
    assert fip["router_id"] == r1["id"] and fip["fixed_ip_address"] == vm["fixed_ips"][0]["ip_address"]
    assert fip["floating_ip_address"].startswith("203.0.113.") and fip["status"] == "ACTIVE"
    error(
        client.post(
            "/v2.0/floatingips", json={"floatingip": {"floating_network_id": ext["id"], "port_id": vm["id"]}}
        ),
        409,
    )
    error(client.post("/v2.0/floatingips", json={"floatingip": {"floating_network_id": net["id"]}}), 400)
    error(client.delete(f"/v2.0/routers/{r1['id']}"), 409)
    upd = client.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": None}})
    assert upd.json()["floatingip"]["port_id"] is None and upd.json()["floatingip"]["status"] == "DOWN"
    client.put(f"/v2.0/floatingips/{fip['id']}", json={"floatingip": {"port_id": vm["id"]}})
    client.delete(f"/v2.0/ports/{vm['id']}")  # takes the association with it
    assert client.get(f"/v2.0/floatingips/{fip['id']}").json()["floatingip"]["port_id"] is None
    assert client.delete(f"/v2.0/floatingips/{fip['id']}").status_code == 204
    error(client.get(f"/v2.0/floatingips/{fip['id']}"), 404)


def test_floating_ip_needs_a_router_path(client: TestClient) -> None:
    ext, _ = external(client)
    net = create_network(client)
    subnet(client, net["id"], "10.13.0.0/24")
    vm = port(client, net["id"])
    error(
        client.post(
            "/v2.0/floatingips", json={"floatingip": {"floating_network_id": ext["id"], "port_id": vm["id"]}}
        ),
        404,
        "ExternalGatewayForFloatingIPNotFound",
    )
    fip = client.post(
        "/v2.0/floatingips",
        json={"floatingip": {"floating_network_id": ext["id"], "floating_ip_address": "203.0.113.77"}},
    )
    assert fip.status_code == 201 and fip.json()["floatingip"]["floating_ip_address"] == "203.0.113.77"
    error(
        client.post(
            "/v2.0/floatingips",
            json={"floatingip": {"floating_network_id": ext["id"], "floating_ip_address": "203.0.113.77"}},
        ),
        409,
    )


def test_gateway_needs_an_external_network(client: TestClient) -> None:
    net = create_network(client)
    error(
        client.post("/v2.0/routers", json={"router": {"external_gateway_info": {"network_id": net["id"]}}}),
        400,
    )
    error(
        client.post("/v2.0/routers", json={"router": {"external_gateway_info": {"network_id": "nope"}}}), 404
    )
    error(client.post("/v2.0/routers", json={"router": {"netweave:irb": "sideways"}}), 400)
