"""QoS policies and their bandwidth-limit / DSCP-marking rules over the API."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from .test_networks import create as create_network
from .test_networks import error


def policy(client: TestClient, **attrs: Any) -> dict[str, Any]:
    r = client.post("/v2.0/qos/policies", json={"policy": attrs})
    assert r.status_code == 201, r.text
    p: dict[str, Any] = r.json()["policy"]
    return p


def test_policy_with_rules(client: TestClient) -> None:
    q = policy(client, name="q1")
    assert q["rules"] == [] and q["shared"] is False
    base = f"/v2.0/qos/policies/{q['id']}"
    r = client.post(
        f"{base}/bandwidth_limit_rules",
        json={"bandwidth_limit_rule": {"max_kbps": 1000, "max_burst_kbps": 100}},
    )
    assert r.status_code == 201, r.text
    bw = r.json()["bandwidth_limit_rule"]
    assert (bw["max_kbps"], bw["max_burst_kbps"], bw["direction"]) == (1000, 100, "egress")
    assert (
        client.post(
            f"{base}/bandwidth_limit_rules",
            json={"bandwidth_limit_rule": {"max_kbps": 500, "direction": "ingress"}},
        ).status_code
        == 201
    )
    error(client.post(f"{base}/bandwidth_limit_rules", json={"bandwidth_limit_rule": {"max_kbps": 5}}), 409)
    d = client.post(f"{base}/dscp_marking_rules", json={"dscp_marking_rule": {"dscp_mark": 26}})
    assert d.status_code == 201
    shown = client.get(base).json()["policy"]
    assert sorted(r["type"] for r in shown["rules"]) == ["bandwidth_limit", "bandwidth_limit", "dscp_marking"]
    listed = client.get(f"{base}/bandwidth_limit_rules").json()["bandwidth_limit_rules"]
    assert len(listed) == 2
    upd = client.put(
        f"{base}/bandwidth_limit_rules/{bw['id']}", json={"bandwidth_limit_rule": {"max_kbps": 2000}}
    )
    assert upd.json()["bandwidth_limit_rule"]["max_kbps"] == 2000
    assert (
        client.delete(f"{base}/dscp_marking_rules/{d.json()['dscp_marking_rule']['id']}").status_code == 204
    )
    error(client.get(f"{base}/dscp_marking_rules/{bw['id']}"), 404)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("bandwidth_limit_rules", {"bandwidth_limit_rule": {}}),
        ("bandwidth_limit_rules", {"bandwidth_limit_rule": {"max_kbps": -1}}),
        ("bandwidth_limit_rules", {"bandwidth_limit_rule": {"max_kbps": 1, "direction": "up"}}),
        ("bandwidth_limit_rules", {"bandwidth_limit_rule": {"max_kbps": "lots"}}),
        ("dscp_marking_rules", {"dscp_marking_rule": {"dscp_mark": 7}}),
        ("dscp_marking_rules", {"dscp_marking_rule": {"dscp_mark": 26, "extra": 1}}),
    ],
)
def test_bad_rules(client: TestClient, path: str, body: dict[str, Any]) -> None:
    q = policy(client)
    error(client.post(f"/v2.0/qos/policies/{q['id']}/{path}", json=body), 400)
    assert client.get(f"/v2.0/qos/policies/{q['id']}").json()["policy"]["rules"] == []


def test_policy_on_network_and_port_and_in_use(client: TestClient) -> None:
    q = policy(client, name="gold")
    net = create_network(client, qos_policy_id=q["id"])
    assert net["qos_policy_id"] == q["id"]
    p = client.post("/v2.0/ports", json={"port": {"network_id": net["id"], "qos_policy_id": q["id"]}})
    assert p.json()["port"]["qos_policy_id"] == q["id"]
    error(client.delete(f"/v2.0/qos/policies/{q['id']}"), 409, "QosPolicyInUse")
    error(
        client.post("/v2.0/networks", json={"network": {"qos_policy_id": "missing"}}),
        404,
        "QosPolicyNotFound",
    )
    client.delete(f"/v2.0/ports/{p.json()['port']['id']}")
    client.put(f"/v2.0/networks/{net['id']}", json={"network": {"qos_policy_id": None}})
    assert client.delete(f"/v2.0/qos/policies/{q['id']}").status_code == 204
    error(client.get(f"/v2.0/qos/policies/{q['id']}/bandwidth_limit_rules"), 404)


def test_one_default_policy_per_project(client: TestClient) -> None:
    policy(client, is_default=True)
    error(client.post("/v2.0/qos/policies", json={"policy": {"is_default": True}}), 409)
