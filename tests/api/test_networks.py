"""Networks over the HTTP API: Neutron's shapes, the provider extension, our attributes, errors."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from netweave.controller.db import GlobalRevision, Network
from netweave.controller.store import Store


def create(client: TestClient, **attrs: Any) -> dict[str, Any]:
    r = client.post("/v2.0/networks", json={"network": attrs})
    assert r.status_code == 201, r.text
    net: dict[str, Any] = r.json()["network"]
    return net


def error(r: Any, status: int, etype: str | None = None) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["NeutronError"]
    assert set(err) == {"type", "message", "detail"}
    if etype:
        assert err["type"] == etype
    message: str = err["message"]
    return message


def count(store: Store) -> int:
    with store.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Network)) or 0)


def test_version_document_and_extensions(client: TestClient) -> None:
    v = client.get("/").json()
    assert v == {
        "versions": [
            {"id": "v2.0", "status": "CURRENT", "links": [{"href": "http://testserver/v2.0/", "rel": "self"}]}
        ]
    }
    aliases = {e["alias"] for e in client.get("/v2.0/extensions").json()["extensions"]}
    assert {"provider", "netweave", "net-mtu"} <= aliases
    assert client.get("/v2.0/extensions/provider").status_code == 200
    error(client.get("/v2.0/extensions/nonexistent"), 404)


def test_create_defaults_to_vxlan_with_allocated_vni_and_computed_mtu(client: TestClient) -> None:
    a = create(client, name="a")
    b = create(client, name="b")
    assert a["provider:network_type"] == "vxlan" and a["provider:physical_network"] is None
    assert a["mtu"] == 1450, "1500 minus VXLAN's 50 bytes, from the codecs"
    assert a["provider:segmentation_id"] != b["provider:segmentation_id"]
    assert (a["status"], a["admin_state_up"], a["shared"], a["subnets"], a["revision_number"]) == (
        "ACTIVE",
        True,
        False,
        [],
        0,
    )
    assert a["netweave:control_plane"] == "controller" and a["netweave:arp_suppression"] is True
    assert a["created_at"].endswith("Z") and a["project_id"] == a["tenant_id"] == "netweave"


@pytest.mark.parametrize(("ntype", "mtu"), [("geneve", 1450), ("gre", 1458), ("nvgre", 1458)])
def test_overlay_types_get_their_own_mtu(client: TestClient, ntype: str, mtu: int) -> None:
    assert create(client, **{"provider:network_type": ntype})["mtu"] == mtu


def test_provider_vlan_and_string_segmentation_id(client: TestClient, store: Store) -> None:
    net = create(
        client,
        **{
            "provider:network_type": "vlan",
            "provider:physical_network": "physnet1",
            "provider:segmentation_id": "100",
        },
    )
    assert net["provider:segmentation_id"] == 100 and net["mtu"] == 1500
    before = count(store)
    r = client.post(
        "/v2.0/networks",
        json={
            "network": {
                "provider:network_type": "vlan",
                "provider:physical_network": "physnet1",
                "provider:segmentation_id": 100,
            }
        },
    )
    error(r, 409, "SegmentationIdInUse")
    assert count(store) == before


@pytest.mark.parametrize(
    ("attrs", "status", "fragment"),
    [
        (
            {
                "provider:network_type": "vlan",
                "provider:physical_network": "physnet1",
                "provider:segmentation_id": 4095,
            },
            400,
            "out of the vlan range",
        ),
        (
            {"provider:network_type": "vxlan", "provider:segmentation_id": 16777216},
            400,
            "out of the vxlan range",
        ),
        ({"provider:network_type": "vlan"}, 400, "physical_network is required"),
        ({"provider:network_type": "vxlan", "provider:physical_network": "physnet1"}, 400, "not allowed"),
        ({"provider:network_type": "vlan", "provider:physical_network": "nope"}, 400, "unknown"),
        ({"provider:network_type": "lisp"}, 400, "lisp"),
        ({"provider:segmentation_id": "ten"}, 400, "not an integer"),
        ({"admin_state_up": "maybe"}, 400, "boolean"),
        ({"name": 5}, 400, "not a valid string"),
        ({"mtu": 1451}, 400, "MTU"),
        ({"bogus": 1}, 400, "Unrecognized attribute"),
        ({"status": "DOWN"}, 400, "Unrecognized attribute"),
        ({"netweave:replication": "multicast"}, 400, "multicast_group"),
        ({"netweave:multicast_group": "10.0.0.1"}, 400, "not a multicast address"),
        ({"netweave:control_plane": "bgp"}, 400, "not in"),
    ],
)
def test_bad_input_is_rejected_and_changes_nothing(
    client: TestClient, store: Store, attrs: dict[str, Any], status: int, fragment: str
) -> None:
    before = count(store)
    message = error(client.post("/v2.0/networks", json={"network": attrs}), status)
    assert fragment in message
    assert count(store) == before


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'{"network": 5}', b'{"net": {}}', b""])
def test_malformed_bodies(client: TestClient, raw: bytes) -> None:
    error(client.post("/v2.0/networks", content=raw, headers={"content-type": "application/json"}), 400)


def test_show_update_delete(client: TestClient) -> None:
    net = create(client, name="x", tags=["blue", "prod"])
    shown = client.get(f"/v2.0/networks/{net['id']}").json()["network"]
    assert shown == net
    assert client.get(f"/v2.0/networks/{net['id']}?fields=name").json() == {"network": {"name": "x"}}
    r = client.put(
        f"/v2.0/networks/{net['id']}", json={"network": {"name": "y", "netweave:arp_suppression": False}}
    )
    assert r.status_code == 200
    upd = r.json()["network"]
    assert (upd["name"], upd["netweave:arp_suppression"], upd["revision_number"]) == ("y", False, 1)
    error(client.put(f"/v2.0/networks/{net['id']}", json={"network": {"provider:segmentation_id": 5}}), 400)
    assert client.delete(f"/v2.0/networks/{net['id']}").status_code == 204
    error(client.get(f"/v2.0/networks/{net['id']}"), 404, "NetworkNotFound")
    error(client.delete(f"/v2.0/networks/{net['id']}"), 404, "NetworkNotFound")
    assert "could not be found" in error(client.get("/v2.0/networks/demo"), 404)


def test_filters_fields_sorting_pagination(client: TestClient) -> None:
    ids = [create(client, name=f"n{i}", shared=i % 2 == 0)["id"] for i in range(5)]
    assert {n["name"] for n in client.get("/v2.0/networks?name=n1&name=n3").json()["networks"]} == {
        "n1",
        "n3",
    }
    assert len(client.get("/v2.0/networks?shared=True").json()["networks"]) == 3
    assert len(client.get("/v2.0/networks?shared=true&name=n0").json()["networks"]) == 1
    names = [n["name"] for n in client.get("/v2.0/networks?sort_key=name&sort_dir=desc").json()["networks"]]
    assert names == ["n4", "n3", "n2", "n1", "n0"]
    seen, url = [], "/v2.0/networks?limit=2&sort_key=name&sort_dir=asc&fields=id&fields=name"
    while url:
        page = client.get(url).json()
        seen += [n["name"] for n in page["networks"]]
        assert all(set(n) == {"id", "name"} for n in page["networks"])
        nxt = [link["href"] for link in page.get("networks_links", []) if link["rel"] == "next"]
        url = nxt[0] if nxt else ""
    assert seen == ["n0", "n1", "n2", "n3", "n4"]
    assert len(ids) == 5
    error(client.get("/v2.0/networks?limit=x"), 400)
    error(client.get("/v2.0/networks?sort_key=name&sort_dir=up"), 400)
    error(client.get("/v2.0/networks?marker=nope&limit=1"), 400)


def test_project_from_header_and_global_revision(client: TestClient, store: Store) -> None:
    r = client.post("/v2.0/networks", json={"network": {}}, headers={"X-Project-Id": "tenant-a"})
    net = r.json()["network"]
    assert net["project_id"] == "tenant-a"
    with store.sessions() as s:
        rev = s.get(GlobalRevision, 1)
        assert rev is not None and rev.value == 1
    client.put(f"/v2.0/networks/{net['id']}", json={"network": {"name": "z"}})
    client.post("/v2.0/networks", json={"network": {"bogus": 1}})  # failed: no bump
    with store.sessions() as s:
        assert s.get(GlobalRevision, 1).value == 2  # type: ignore[union-attr]


def test_configured_segment_ranges(tmp_path: Any) -> None:
    from netweave.controller.api import create_app
    from netweave.controller.typedrivers import TypeConfig

    types = TypeConfig(default_type="geneve")
    types.set_range("geneve:7000:7001")
    with pytest.raises(ValueError, match="geneve IDs"):
        types.set_range("geneve:0:5")
    with pytest.raises(ValueError, match="TYPE:MIN:MAX"):
        types.set_range("lisp:1:2")
    s = Store(f"sqlite:///{tmp_path / 'r.db'}")
    s.upgrade()
    with TestClient(create_app(s, types)) as c:
        ids = [create(c)["provider:segmentation_id"] for _ in range(2)]
        assert ids == [7000, 7001]
        error(c.post("/v2.0/networks", json={"network": {}}), 409, "NoNetworkAvailable")
