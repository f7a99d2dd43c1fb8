"""Subnets (IPAM) and ports (MAC and fixed-IP allocation) over the API, with every error case."""

import ipaddress
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from netweave.controller.db import IPAllocation, Port, Subnet
from netweave.controller.store import Store

from .test_networks import create as create_network
from .test_networks import error


def subnet(client: TestClient, net_id: str, cidr: str, **attrs: Any) -> dict[str, Any]:
    body = {"network_id": net_id, "ip_version": 6 if ":" in cidr else 4, "cidr": cidr, **attrs}
    r = client.post("/v2.0/subnets", json={"subnet": body})
    assert r.status_code == 201, r.text
    sub: dict[str, Any] = r.json()["subnet"]
    return sub


def port(client: TestClient, net_id: str, **attrs: Any) -> dict[str, Any]:
    r = client.post("/v2.0/ports", json={"port": {"network_id": net_id, **attrs}})
    assert r.status_code == 201, r.text
    p: dict[str, Any] = r.json()["port"]
    return p


def rows(store: Store, model: Any) -> int:
    with store.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_subnet_defaults(client: TestClient) -> None:
    net = create_network(client)
    sub = subnet(client, net["id"], "192.0.2.77/24", name="s1")
    assert sub["cidr"] == "192.0.2.0/24", "canonicalised"
    assert sub["gateway_ip"] == "192.0.2.1"
    assert sub["allocation_pools"] == [{"start": "192.0.2.2", "end": "192.0.2.254"}]
    assert (sub["dns_nameservers"], sub["host_routes"], sub["enable_dhcp"]) == ([], [], True)
    assert client.get(f"/v2.0/networks/{net['id']}").json()["network"]["subnets"] == [sub["id"]]
    none_gw = subnet(client, net["id"], "198.51.100.0/24", gateway_ip=None)
    assert none_gw["gateway_ip"] is None
    assert none_gw["allocation_pools"] == [{"start": "198.51.100.1", "end": "198.51.100.254"}]
    v6 = subnet(client, net["id"], "2001:db8:1::/64", ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
    assert v6["gateway_ip"] == "2001:db8:1::1" and v6["ipv6_address_mode"] == "slaac"


def test_subnet_with_pools_dns_routes(client: TestClient) -> None:
    net = create_network(client)
    sub = subnet(
        client,
        net["id"],
        "10.0.0.0/24",
        allocation_pools=[{"start": "10.0.0.100", "end": "10.0.0.110"}],
        dns_nameservers=["10.0.0.53"],
        host_routes=[{"destination": "10.9.0.0/16", "nexthop": "10.0.0.254"}],
    )
    assert sub["host_routes"] == [{"destination": "10.9.0.0/16", "nexthop": "10.0.0.254"}]
    r = client.put(f"/v2.0/subnets/{sub['id']}", json={"subnet": {"name": "renamed", "dns_nameservers": []}})
    assert (
        r.status_code == 200
        and r.json()["subnet"]["name"] == "renamed"
        and r.json()["subnet"]["dns_nameservers"] == []
    )


@pytest.mark.parametrize(
    ("attrs", "status", "fragment"),
    [
        ({"cidr": "10.0.0.0/33"}, 400, "not a valid IP subnet"),
        ({"cidr": "nonsense"}, 400, "not a valid IP subnet"),
        ({"cidr": "2001:db8::/64"}, 400, "not an IPv4 subnet"),
        ({"ip_version": 5}, 400, "ip_version"),
        ({"gateway_ip": "10.1.0.1"}, 400, "not a host"),
        (
            {"gateway_ip": "10.0.0.50", "allocation_pools": [{"start": "10.0.0.2", "end": "10.0.0.100"}]},
            409,
            "conflicts with allocation pool",
        ),
        ({"allocation_pools": [{"start": "10.0.0.20", "end": "10.0.0.10"}]}, 400, "spans beyond"),
        ({"allocation_pools": [{"start": "10.0.0.2", "end": "10.0.1.10"}]}, 400, "spans beyond"),
        (
            {
                "allocation_pools": [
                    {"start": "10.0.0.2", "end": "10.0.0.20"},
                    {"start": "10.0.0.10", "end": "10.0.0.30"},
                ]
            },
            400,
            "overlapping",
        ),
        ({"dns_nameservers": ["not-an-ip"]}, 400, "not a valid IP address"),
        ({"host_routes": [{"destination": "10.9.0.0/16"}]}, 400, "host_routes"),
        ({"ipv6_address_mode": "slaac"}, 400, "IPv6 subnets only"),
        ({"network_id": "00000000-0000-0000-0000-000000000000"}, 404, "could not be found"),
        ({"cidr": None}, 400, "not a valid IP subnet"),
        ({"unknown": 1}, 400, "Unrecognized attribute"),
    ],
)
def test_subnet_errors_change_nothing(
    client: TestClient, store: Store, attrs: dict[str, Any], status: int, fragment: str
) -> None:
    net = create_network(client)
    body = {"network_id": net["id"], "ip_version": 4, "cidr": "10.0.0.0/24", **attrs}
    before = rows(store, Subnet)
    assert fragment in error(client.post("/v2.0/subnets", json={"subnet": body}), status)
    assert rows(store, Subnet) == before


def test_overlapping_subnets_on_one_network_are_refused(client: TestClient) -> None:
    net = create_network(client)
    subnet(client, net["id"], "10.0.0.0/24")
    assert "overlaps" in error(
        client.post(
            "/v2.0/subnets",
            json={"subnet": {"network_id": net["id"], "ip_version": 4, "cidr": "10.0.0.128/25"}},
        ),
        400,
    )
    other = create_network(client)
    subnet(client, other["id"], "10.0.0.0/24")  # the same range on another network is fine


def test_port_gets_mac_and_ips(client: TestClient) -> None:
    net = create_network(client)
    v4 = subnet(client, net["id"], "10.1.0.0/24")
    v6 = subnet(client, net["id"], "2001:db8:2::/64", ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
    p = port(client, net["id"], name="p1", **{"binding:host_id": "h1"})
    assert p["mac_address"].startswith("fa:16:3e:") and p["status"] == "DOWN"
    ips = {f["subnet_id"]: f["ip_address"] for f in p["fixed_ips"]}
    assert ips[v4["id"]] == "10.1.0.2"
    mac = bytearray(bytes.fromhex(p["mac_address"].replace(":", "")))
    mac[0] ^= 2
    iid = (mac[:3] + b"\xff\xfe" + mac[3:]).hex()
    expected = ipaddress.IPv6Address(int(ipaddress.IPv6Address("2001:db8:2::")) | int(iid, 16))
    assert ips[v6["id"]] == str(expected), "SLAAC: EUI-64 from the port's MAC"
    assert p["binding:host_id"] == "h1" and p["binding:vif_type"] == "netweave"
    q = port(client, net["id"])
    assert {f["ip_address"] for f in q["fixed_ips"]} & {"10.1.0.3"}
    assert p["mac_address"] != q["mac_address"]


def test_port_requested_ip_and_mac_and_their_conflicts(client: TestClient, store: Store) -> None:
    net = create_network(client)
    sub = subnet(client, net["id"], "10.2.0.0/24")
    p = port(client, net["id"], mac_address="02:00:00:00:00:aa", fixed_ips=[{"ip_address": "10.2.0.50"}])
    assert p["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.2.0.50"}]
    before = (rows(store, Port), rows(store, IPAllocation))
    error(
        client.post(
            "/v2.0/ports", json={"port": {"network_id": net["id"], "mac_address": "02:00:00:00:00:AA"}}
        ),
        409,
        "MacAddressInUse",
    )
    error(
        client.post(
            "/v2.0/ports",
            json={"port": {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.2.0.50"}]}},
        ),
        409,
        "IpAddressAlreadyAllocated",
    )
    error(
        client.post(
            "/v2.0/ports", json={"port": {"network_id": net["id"], "fixed_ips": [{"ip_address": "10.3.0.5"}]}}
        ),
        400,
    )
    error(client.post("/v2.0/ports", json={"port": {"network_id": net["id"], "mac_address": "zz"}}), 400)
    error(
        client.post(
            "/v2.0/ports", json={"port": {"network_id": net["id"], "mac_address": "01:00:5e:00:00:01"}}
        ),
        400,
    )
    error(client.post("/v2.0/ports", json={"port": {"name": "no network"}}), 400)
    error(client.post("/v2.0/ports", json={"port": {"network_id": "nope"}}), 404, "NetworkNotFound")
    error(
        client.post("/v2.0/ports", json={"port": {"network_id": net["id"], "binding:vnic_type": "weird"}}),
        400,
    )
    assert (rows(store, Port), rows(store, IPAllocation)) == before
    other = create_network(client)
    port(client, other["id"], mac_address="02:00:00:00:00:aa")  # MACs are unique per network only


def test_pool_exhaustion(client: TestClient, store: Store) -> None:
    net = create_network(client)
    subnet(client, net["id"], "10.4.0.0/29", allocation_pools=[{"start": "10.4.0.2", "end": "10.4.0.3"}])
    port(client, net["id"])
    port(client, net["id"])
    before = rows(store, Port)
    error(
        client.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}),
        409,
        "IpAddressGenerationFailure",
    )
    assert rows(store, Port) == before


def test_update_fixed_ips_and_delete_releases_addresses(client: TestClient) -> None:
    net = create_network(client)
    subnet(client, net["id"], "10.5.0.0/24")
    p = port(client, net["id"])
    r = client.put(
        f"/v2.0/ports/{p['id']}", json={"port": {"fixed_ips": [{"ip_address": "10.5.0.99"}], "name": "moved"}}
    )
    assert r.status_code == 200, r.text
    assert [f["ip_address"] for f in r.json()["port"]["fixed_ips"]] == ["10.5.0.99"]
    assert r.json()["port"]["revision_number"] == 1
    q = port(client, net["id"], fixed_ips=[{"ip_address": "10.5.0.2"}])  # the old address is free again
    assert client.delete(f"/v2.0/ports/{p['id']}").status_code == 204
    port(client, net["id"], fixed_ips=[{"ip_address": "10.5.0.99"}])
    assert q["id"]


def test_network_in_use_and_subnet_in_use(client: TestClient) -> None:
    net = create_network(client)
    sub = subnet(client, net["id"], "10.6.0.0/24")
    p = port(client, net["id"])
    msg = error(client.delete(f"/v2.0/networks/{net['id']}"), 409, "NetworkInUse")
    assert "There are one or more ports still in use on the network" in msg
    error(client.delete(f"/v2.0/subnets/{sub['id']}"), 409, "SubnetInUse")
    client.delete(f"/v2.0/ports/{p['id']}")
    assert client.delete(f"/v2.0/networks/{net['id']}").status_code == 204
    error(client.get(f"/v2.0/subnets/{sub['id']}"), 404)  # subnets go with their network


def test_port_filters_as_the_cli_uses_them(client: TestClient) -> None:
    net = create_network(client)
    subnet(client, net["id"], "10.7.0.0/24")
    port(client, net["id"], device_id="router-1")
    port(client, net["id"], device_id="vm-1")
    found = client.get("/v2.0/ports?device_id=router-1").json()["ports"]
    assert len(found) == 1 and found[0]["device_id"] == "router-1"
    listed = client.get(
        "/v2.0/ports?fields=id&fields=name&fields=mac_address&fields=fixed_ips&fields=status"
    ).json()
    assert all(set(p) == {"id", "name", "mac_address", "fixed_ips", "status"} for p in listed["ports"])


def test_twenty_concurrent_clients_get_distinct_addresses(client: TestClient) -> None:
    net = create_network(client)
    subnet(client, net["id"], "10.8.0.0/24")

    def make(i: int) -> tuple[int, dict[str, Any]]:
        r = client.post("/v2.0/ports", json={"port": {"network_id": net["id"], "name": f"c{i}"}})
        return r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(make, range(20)))
    assert all(status == 201 for status, _ in results), [b for s, b in results if s != 201]
    ips = [body["port"]["fixed_ips"][0]["ip_address"] for _, body in results]
    macs = [body["port"]["mac_address"] for _, body in results]
    assert len(set(ips)) == 20 and len(set(macs)) == 20
