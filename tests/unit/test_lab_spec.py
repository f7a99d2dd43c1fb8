"""The lab file: every error is one line naming its place; the default lab is valid and as documented."""

import copy
from pathlib import Path
from typing import Any

import pytest

from netweave.lab.errors import SpecError
from netweave.lab.spec import default_lab, load, parse


def base() -> dict[str, Any]:
    return {
        "name": "demo",
        "hosts": [{"name": "h1"}, {"name": "h2"}],
        "tenants": [
            {
                "name": "red",
                "networks": [
                    {"name": "red-web", "subnets": [{"cidr": "10.1.0.0/24"}, {"cidr": "fd00:1::/64"}]},
                    {
                        "name": "red-db",
                        "type": "nvgre",
                        "control_plane": "flood-learn",
                        "replication": "multicast",
                        "multicast_group": "239.1.1.1",
                        "subnets": [{"cidr": "10.2.0.0/24"}],
                    },
                ],
                "vms": [
                    {"name": "r1", "host": "h1", "network": "red-web", "ip": "10.1.0.11"},
                    {"name": "r2", "host": "h2", "network": "red-web"},
                    {"name": "r3", "host": "h2", "network": "red-db", "ip": "10.2.0.3"},
                ],
            },
            {
                "name": "blue",
                "networks": [{"name": "blue-web", "type": "geneve", "subnets": [{"cidr": "10.1.0.0/24"}]}],
                "vms": [{"name": "b1", "host": "h1", "network": "blue-web", "ip": "10.1.0.11"}],
            },
        ],
    }


def with_change(path: str, value: Any) -> dict[str, Any]:
    """`base()` with the value at a dotted path (`tenants.0.vms.1.host`) replaced; `...` deletes it."""
    doc = copy.deepcopy(base())
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return doc


def error(doc: dict[str, Any]) -> str:
    with pytest.raises(SpecError) as info:
        parse(doc)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_base_is_valid_and_keeps_overlapping_tenants() -> None:
    lab = parse(base())
    assert lab.netns("r1") == "demo-r1" and lab.prefix == "demo-"
    assert [t.name for t in lab.tenants] == ["red", "blue"]
    assert lab.tenants[0].networks[0].type == "vxlan"  # defaults
    assert lab.tenants[0].networks[0].control_plane == "controller"
    assert lab.underlay.address(3) == "198.18.0.3" and lab.api.url == "http://127.0.0.1:9696"


def test_default_lab() -> None:
    lab = default_lab()
    assert lab.name == "demo"
    assert [h.name for h in lab.hosts] == ["h1", "h2", "h3"]
    assert [t.name for t in lab.tenants] == ["red", "blue"]
    types = {t.name: {n.type for n in t.networks} for t in lab.tenants}
    assert types == {"red": {"vxlan"}, "blue": {"vxlan"}}  # what every datapath here carries
    for t in lab.tenants:
        assert {n.name: n.subnets[0].cidr for n in t.networks} == {
            f"{t.name}-web": "10.1.0.0/24",
            f"{t.name}-db": "10.2.0.0/24",
        }
        assert all(n.control_plane == "controller" for n in t.networks)
        assert len(t.vms) == 3
        assert len({vm.host for vm in t.vms}) == 3  # spread over the hosts
        # at least one same-network pair on different hosts
        pairs = [(a, b) for a in t.vms for b in t.vms if a.name < b.name and a.network == b.network]
        assert any(a.host != b.host for a, b in pairs)
    vms = [vm.name for t in lab.tenants for vm in t.vms]
    assert len(vms) == 6 == len(set(vms))


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("tenants.0.vms.1.host", "h9", "tenants[0].vms[1].host: no host named 'h9'"),
        (
            "tenants.0.vms.1.network",
            "blue-web",
            "tenants[0].vms[1].network: no network named 'blue-web' in tenant 'red'",
        ),
        (
            "tenants.0.vms.0.ip",
            "10.9.0.1",
            "tenants[0].vms[0].ip: 10.9.0.1 is outside the subnets of network 'red-web'",
        ),
        (
            "tenants.0.vms.0.ip",
            "10.1.0.0",
            "tenants[0].vms[0].ip: 10.1.0.0 is not a host address of 10.1.0.0/24",
        ),
        ("tenants.0.vms.0.ip", "10.1.0.255", "tenants[0].vms[0].ip: 10.1.0.255 is not a host address"),
        (
            "tenants.0.vms.0.ip",
            "fd00:2::1",
            "tenants[0].vms[0].ip: fd00:2::1 is outside the subnets of network 'red-web'",
        ),
        ("tenants.0.vms.0.ip", "nope", "tenants[0].vms[0].ip: 'nope' is not an IP address"),
        (
            "tenants.0.vms.2.ip",
            "10.1.0.5",
            "tenants[0].vms[2].ip: 10.1.0.5 is outside the subnets of network 'red-db'",
        ),
        ("tenants.0.vms.1.name", "r1", "tenants[0].vms[1].name: 'r1' is already a VM name"),
        ("tenants.1.vms.0.name", "r1", "tenants[1].vms[0].name: 'r1' is already a VM name"),
        ("tenants.0.vms.0.name", "h2", "tenants[0].vms[0].name: 'h2' is already a host name"),
        ("tenants.0.vms.0.name", "ul", "tenants[0].vms[0].name: 'ul' is reserved for the underlay namespace"),
        ("hosts.1.name", "h1", "hosts[1].name: 'h1' is already a host name"),
        ("hosts.1.name", "ul", "hosts[1].name: 'ul' is reserved"),
        (
            "hosts.1.name",
            "a-very-long-hostname",
            "hosts[1].name: 'a-very-long-hostname' is not a valid host/VM name",
        ),
        ("hosts.1.name", "H2", "hosts[1].name: 'H2' is not a valid host/VM name"),
        ("hosts.1.datapath", "dpdk", "hosts[1].datapath: Input should be 'userspace' or 'kernel'"),
        ("hosts.1.color", "red", "hosts[1].color: unknown key"),
        ("hosts", [], "hosts: List should have at least 1 item"),
        ("name", "Demo", "name: 'Demo' is not a valid lab name"),
        ("name", "demo-1", "name: 'demo-1' is not a valid lab name"),
        ("name", "abcdefghijklm", "name: 'abcdefghijklm' is not a valid lab name"),
        ("name", ..., "name: required key missing"),
        (
            "tenants.1.networks.0.name",
            "red-web",
            "tenants[1].networks[0].name: network 'red-web' appears twice",
        ),
        ("tenants.1.name", "red", "tenants[1].name: tenant 'red' appears twice"),
        (
            "tenants.1.networks.0.type",
            "vlan",
            "tenants[1].networks[0].type: Input should be 'vxlan', 'geneve'",
        ),
        (
            "tenants.1.networks.0.subnets",
            [],
            "tenants[1].networks[0].subnets: List should have at least 1 item",
        ),
        (
            "tenants.1.networks.0.subnets.0.cidr",
            "10.1.0.1/24",
            "tenants[1].networks[0].subnets[0].cidr: '10.1.0.1/24' is not a network address",
        ),
        (
            "tenants.1.networks.0.subnets.0.cidr",
            "10.1.0.0/31",
            "tenants[1].networks[0].subnets[0].cidr: 10.1.0.0/31 is too small",
        ),
        (
            "tenants.1.networks.0.replication",
            "multicast",
            "tenants[1].networks[0].replication: multicast replication needs control_plane flood-learn",
        ),
        (
            "tenants.0.networks.1.multicast_group",
            ...,
            "tenants[0].networks[1].multicast_group: required with replication multicast",
        ),
        (
            "tenants.0.networks.1.multicast_group",
            "10.0.0.1",
            "tenants[0].networks[1].multicast_group: 10.0.0.1 is not a multicast address",
        ),
        (
            "tenants.0.networks.1.multicast_group",
            "ff05::1",
            "tenants[0].networks[1].multicast_group: ff05::1 is IPv6, the underlay is IPv4",
        ),
        (
            "tenants.0.networks.1.replication",
            "ingress",
            "tenants[0].networks[1].multicast_group: only used with replication multicast",
        ),
        (
            "tenants.0.networks.1.control_plane",
            "evpn",
            "tenants[0].networks[1].control_plane: Input should be 'controller' or 'flood-learn'",
        ),
        ("underlay", {"ip_version": 5}, "underlay.ip_version: Input should be 4 or 6"),
        ("underlay", {"ip_version": 6, "mtu": 1200}, "underlay.mtu: IPv6 needs at least 1280, not 1200"),
        ("underlay", {"mtu": 100}, "underlay.mtu: Input should be greater than or equal to 576"),
        ("underlay", {"mtu": "1500"}, "underlay.mtu: Input should be a valid integer"),
        ("api", {"listen": "localhost:9696"}, "api.listen: 'localhost:9696' is not IP:PORT"),
        ("api", {"listen": "127.0.0.1:70000"}, "api.listen: '127.0.0.1:70000' is not IP:PORT"),
    ],
)
def test_errors_name_their_place(path: str, value: Any, expected: str) -> None:
    assert error(with_change(path, value)).startswith(expected)


def test_same_ip_twice_in_one_network_but_fine_across_tenants() -> None:
    doc = with_change("tenants.0.vms.1.ip", "10.1.0.11")
    assert error(doc) == "tenants[0].vms[1].ip: 10.1.0.11 is already used by VM 'r1'"
    parse(base())  # r1 and b1 share 10.1.0.11 in different tenants' networks: allowed


def test_overlapping_subnets_in_one_network_are_rejected() -> None:
    doc = with_change("tenants.1.networks.0.subnets", [{"cidr": "10.1.0.0/24"}, {"cidr": "10.1.0.128/25"}])
    assert (
        error(doc)
        == "tenants[1].networks[0].subnets[1].cidr: 10.1.0.128/25 overlaps subnets[0] (10.1.0.0/24)"
    )


def test_ipv6_underlay_and_multicast_group() -> None:
    doc = with_change("underlay", {"ip_version": 6, "mtu": 9000})
    doc["tenants"][0]["networks"][1]["multicast_group"] = "ff05::1:3"
    lab = parse(doc)
    assert lab.underlay.address(10) == "2001:db8::a" and lab.underlay.prefixlen == 64


def test_ipv6_vm_address() -> None:
    parse(with_change("tenants.0.vms.1.ip", "fd00:1::20"))


def test_several_errors_say_how_many_more() -> None:
    doc = with_change("hosts.0.color", "red")
    doc["hosts"][1]["size"] = 3
    assert error(doc) == "hosts[0].color: unknown key (and 1 more)"


def test_load_file_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(SpecError, match=r"nope.yaml: No such file"):
        load(missing)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml: not valid YAML"):
        load(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n")
    with pytest.raises(SpecError, match=r"list.yaml: expected a mapping at the top level"):
        load(listy)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(
        "name: x\nhosts: [{name: h1}]\ntenants: [{name: t, vms: [{name: v, host: h2, network: n}]}]\n"
    )
    with pytest.raises(SpecError) as info:
        load(wrong)
    assert str(info.value) == f"{wrong}: tenants[0].vms[0].host: no host named 'h2'"


def test_load_the_documented_example(tmp_path: Path) -> None:
    f = tmp_path / "lab.yaml"
    f.write_text(
        """
name: demo
underlay: {ip_version: 4, mtu: 1500}
api: {listen: "127.0.0.1:9696"}
hosts: [{name: h1}, {name: h2}, {name: h3, datapath: userspace}]
tenants:
  - name: red
    networks:
      - name: red-web
        type: vxlan
        control_plane: flood-learn
        replication: multicast
        multicast_group: 239.1.1.1
        subnets: [{cidr: 10.1.0.0/24}]
    vms:
      - {name: r1, host: h1, network: red-web, ip: 10.1.0.11}
      - {name: r2, host: h2, network: red-web}
"""
    )
    lab = load(f)
    assert lab.tenants[0].vms[0].ip == "10.1.0.11" and lab.tenants[0].vms[1].ip is None
    assert load(None) == default_lab()


def leaf_spine(**underlay: Any) -> dict[str, Any]:
    doc = base()
    doc["tenants"][0]["networks"][1] = {"name": "red-db", "subnets": [{"cidr": "10.2.0.0/24"}]}
    doc["underlay"] = {"shape": "leaf-spine", **underlay}
    doc["hosts"] = [{"name": "h1"}, {"name": "h2"}, {"name": "h3", "leaf": 1}]
    return doc


def test_leaf_spine_addresses_round_robin_and_explicit_leaf() -> None:
    lab = parse(leaf_spine(spines=2, leaves=2))
    assert lab.leaf_spine and lab.underlay.spines == 2
    assert [lab.leaf_of(i) for i in (1, 2, 3)] == [1, 2, 1]
    assert [lab.vtep_ip(i) for i in (1, 2, 3)] == ["198.18.1.1", "198.18.2.1", "198.18.1.2"]
    assert lab.underlay.link_addresses(1, 1) == ("198.18.255.1", "198.18.255.0")
    assert lab.underlay.link_addresses(2, 2) == ("198.18.255.7", "198.18.255.6")
    assert lab.underlay.leaf_gateway(2) == "198.18.2.254"
    assert parse(base()).vtep_ip(2) == "198.18.0.2"  # the segment, unchanged


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"hosts.2.leaf": 3}, "hosts[2].leaf: no leaf 3 (underlay has 2 leaves)"),
        ({"hosts.2.leaf": 0}, "hosts[2].leaf: Input should be greater than or equal to 1"),
        ({"underlay.ip_version": 6}, "underlay.ip_version: the leaf-spine underlay is IPv4 only"),
        ({"underlay.shape": "ring"}, "underlay.shape: Input should be 'segment' or 'leaf-spine'"),
        ({"underlay.spines": 0}, "underlay.spines: Input should be greater than or equal to 1"),
        (
            {"underlay.spines": 16, "underlay.leaves": 9},
            "underlay: 16 spines x 9 leaves: more than 128 links",
        ),
        ({"hosts.0.name": "spine1"}, "hosts[0].name: 'spine1' is reserved for the leaf-spine namespaces"),
        ({"hosts.0.fixed_source_port": 0}, "hosts[0].fixed_source_port: Input should be greater than"),
        (
            {"hosts.0.datapath": "kernel", "hosts.0.fixed_source_port": 4000},
            "hosts[0].fixed_source_port: only with datapath userspace",
        ),
    ],
)
def test_leaf_spine_errors_name_their_place(change: dict[str, Any], expected: str) -> None:
    doc = leaf_spine(spines=2, leaves=2)
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    if "hosts.0.name" in change:  # keep the VMs' references valid
        for vm in doc["tenants"][0]["vms"] + doc["tenants"][1]["vms"]:
            vm["host"] = change["hosts.0.name"] if vm["host"] == "h1" else vm["host"]
    assert error(doc).startswith(expected)


def test_leaf_spine_settings_need_that_shape() -> None:
    assert error(with_change("hosts.0.leaf", 1)) == "hosts[0].leaf: only with underlay shape leaf-spine"
    for lab in (parse(base()), parse(leaf_spine())):  # what state.json keeps parses again
        assert parse(lab.model_dump(mode="json")) == lab


def test_leaf_spine_has_no_multicast_replication() -> None:
    doc = leaf_spine()
    doc["tenants"][0]["networks"][1] = base()["tenants"][0]["networks"][1]
    assert error(doc) == (
        "tenants[0].networks[1].replication: multicast replication needs the segment underlay"
    )


def test_routers_and_dhcp_in_the_example_lab() -> None:
    lab = load(Path(__file__).parents[2] / "examples" / "routed.yaml")
    red, blue = lab.tenants
    router = red.router_of("red-db")
    assert router is not None and router.irb == "symmetric" and red.router_of("nope") is None
    assert blue.routers[0].irb == "asymmetric" and all(n.dhcp for n in blue.networks)
    assert blue.networks[1].subnets[1].ipv6_mode == "dhcpv6-stateful"
    assert lab.vm_network("b2") == blue.networks[1] and lab.vm_network("nobody") is None


@pytest.mark.parametrize(("tenant", "expected"), [
    ({"routers": [{"name": "r", "networks": ["web", "nope"]}]},
     "tenants[0].routers[0].networks[1]: no network named 'nope' in tenant 't'"),
    ({"routers": [{"name": "r", "networks": ["web"]}, {"name": "s", "networks": ["web"]}]},
     "tenants[0].routers[1].networks[0]: network 'web' is already on router 'r'"),
    ({"routers": [{"name": "r", "networks": ["web"]}, {"name": "r", "networks": ["db"]}]},
     "tenants[0].routers[1].name: router 'r' appears twice in tenant 't'"),
    ({"routers": [{"name": "r", "networks": ["web", "db"], "irb": "both"}]}, "tenants[0].routers[0].irb"),
    ({"routers": [{"name": "r", "networks": ["web", "same"]}]}, "overlaps 10.1.0.0/24 of network 'web'"),
    ({"routers": [{"name": "r", "networks": ["web"]}], "vms": [{"name": "v", "host": "h1", "network": "web",
                                                                "ip": "10.1.0.1"}]},
     "tenants[0].vms[0].ip: 10.1.0.1 is the gateway address of 10.1.0.0/24 (the network has a router)"),
])
def test_router_errors_name_their_place(tenant: dict[str, Any], expected: str) -> None:
    doc = {"name": "x", "hosts": [{"name": "h1"}], "tenants": [{
        "name": "t", "networks": [{"name": "web", "subnets": [{"cidr": "10.1.0.0/24"}]},
                                  {"name": "db", "subnets": [{"cidr": "10.2.0.0/24"}]},
                                  {"name": "same", "subnets": [{"cidr": "10.1.0.0/25"}]}],
        **tenant}]}
    with pytest.raises(SpecError) as err:
        parse(doc)
    assert expected in str(err.value)


def test_ipv6_mode_only_on_ipv6_subnets() -> None:
    doc = {"name": "x", "hosts": [{"name": "h1"}], "tenants": [{"name": "t", "networks": [
        {"name": "n", "subnets": [{"cidr": "10.1.0.0/24", "ipv6_mode": "slaac"}]}]}]}
    with pytest.raises(SpecError, match=r"subnets\[0\].ipv6_mode: only for IPv6 subnets"):
        parse(doc)
    doc["tenants"][0]["networks"][0]["subnets"] = [{"cidr": "fd00::/56", "ipv6_mode": "slaac"}]
    with pytest.raises(SpecError, match="slaac needs a /64"):
        parse(doc)
