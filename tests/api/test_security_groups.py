"""Security groups and rules over the API: Neutron's defaults, validation, conflicts, port association."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from .test_networks import create as create_network
from .test_networks import error


def group(client: TestClient, **attrs: Any) -> dict[str, Any]:
    r = client.post("/v2.0/security-groups", json={"security_group": attrs})
    assert r.status_code == 201, r.text
    g: dict[str, Any] = r.json()["security_group"]
    return g


def rule(client: TestClient, **attrs: Any) -> Any:
    return client.post("/v2.0/security-group-rules", json={"security_group_rule": attrs})


def test_default_group_appears_with_its_rules(client: TestClient) -> None:
    groups = client.get("/v2.0/security-groups").json()["security_groups"]
    assert [g["name"] for g in groups] == ["default"]
    rules = {
        (r["direction"], r["ethertype"], r["remote_group_id"]) for r in groups[0]["security_group_rules"]
    }
    gid = groups[0]["id"]
    assert rules == {
        ("egress", "IPv4", None),
        ("egress", "IPv6", None),
        ("ingress", "IPv4", gid),
        ("ingress", "IPv6", gid),
    }
    assert client.get("/v2.0/security-groups").json()["security_groups"][0]["id"] == gid, "created once"
    error(client.post("/v2.0/security-groups", json={"security_group": {"name": "default"}}), 409)
    error(client.delete(f"/v2.0/security-groups/{gid}"), 409)


def test_new_group_gets_egress_rules_and_rules_validate(client: TestClient) -> None:
    g = group(client, name="web")
    assert {(r["direction"], r["ethertype"]) for r in g["security_group_rules"]} == {
        ("egress", "IPv4"),
        ("egress", "IPv6"),
    }
    r = rule(
        client,
        security_group_id=g["id"],
        direction="ingress",
        protocol="tcp",
        port_range_min=22,
        port_range_max=22,
        remote_ip_prefix="198.51.100.7/24",
        ethertype="IPv4",
    )
    assert r.status_code == 201, r.text
    created = r.json()["security_group_rule"]
    assert created["remote_ip_prefix"] == "198.51.100.0/24" and created["protocol"] == "tcp"
    error(
        rule(
            client,
            security_group_id=g["id"],
            direction="ingress",
            protocol="tcp",
            port_range_min=22,
            port_range_max=22,
            remote_ip_prefix="198.51.100.0/24",
        ),
        409,
        "SecurityGroupRuleExists",
    )
    shown = client.get(f"/v2.0/security-groups/{g['id']}").json()["security_group"]
    assert len(shown["security_group_rules"]) == 3
    assert client.delete(f"/v2.0/security-group-rules/{created['id']}").status_code == 204
    assert (
        len(client.get(f"/v2.0/security-groups/{g['id']}").json()["security_group"]["security_group_rules"])
        == 2
    )


@pytest.mark.parametrize(
    ("attrs", "status"),
    [
        ({"direction": "sideways"}, 400),
        ({"direction": "ingress", "protocol": "carrier-pigeon"}, 400),
        ({"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80}, 400),
        ({"direction": "ingress", "protocol": "tcp", "port_range_min": 0, "port_range_max": 80}, 400),
        ({"direction": "ingress", "protocol": "icmp", "port_range_min": 300}, 400),
        ({"direction": "ingress", "port_range_min": 80, "port_range_max": 80}, 400),
        ({"direction": "ingress", "remote_ip_prefix": "2001:db8::/64"}, 400),
        ({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "x"}, 400),
        ({"direction": "ingress", "remote_group_id": "00000000-0000-0000-0000-000000000000"}, 404),
        ({"direction": "ingress", "ethertype": "IPv5"}, 400),
        ({"protocol": "tcp"}, 400),
    ],
)
def test_bad_rules(client: TestClient, attrs: dict[str, Any], status: int) -> None:
    g = group(client, name="g")
    before = len(g["security_group_rules"])
    error(rule(client, security_group_id=g["id"], **attrs), status)
    assert (
        len(client.get(f"/v2.0/security-groups/{g['id']}").json()["security_group"]["security_group_rules"])
        == before
    )


def test_ports_get_the_default_group_and_groups_in_use_stay(client: TestClient) -> None:
    net = create_network(client)
    p = client.post("/v2.0/ports", json={"port": {"network_id": net["id"]}}).json()["port"]
    default = [
        g for g in client.get("/v2.0/security-groups").json()["security_groups"] if g["name"] == "default"
    ]
    assert p["security_groups"] == [default[0]["id"]]
    web = group(client, name="web")
    r = client.put(f"/v2.0/ports/{p['id']}", json={"port": {"security_groups": [web["id"]]}})
    assert r.status_code == 200 and r.json()["port"]["security_groups"] == [web["id"]]
    error(client.delete(f"/v2.0/security-groups/{web['id']}"), 409, "SecurityGroupInUse")
    error(client.put(f"/v2.0/ports/{p['id']}", json={"port": {"security_groups": ["nope"]}}), 404)
    off = client.post("/v2.0/ports", json={"port": {"network_id": net["id"], "port_security_enabled": False}})
    assert off.json()["port"]["security_groups"] == []
    error(
        client.post(
            "/v2.0/ports",
            json={
                "port": {
                    "network_id": net["id"],
                    "port_security_enabled": False,
                    "security_groups": [web["id"]],
                }
            },
        ),
        409,
    )
    client.delete(f"/v2.0/ports/{p['id']}")
    assert client.delete(f"/v2.0/security-groups/{web['id']}").status_code == 204
