"""The pure parts of the kernel datapath: names, neighbour messages, the diff and the incremental planner
(no root, no kernel)."""

import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from netweave.datapath.kernel import (
    AF_BRIDGE,
    NTF_MASTER,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
    PREFIX_MAX,
    RTM_DELNEIGH,
    RTM_NEWNEIGH,
    Entries,
    Names,
    Neigh,
    Op,
    Planner,
    apply_ops,
    bridge_name,
    canon_ip,
    check_prefix,
    diff_entries,
    encode_op,
    messages,
    parse_neigh,
    port_device_name,
    remote_entries,
    vxlan_name,
)
from netweave.datapath.kernel_router import (
    RTM_DELROUTE,
    RTM_NEWROUTE,
    Leg,
    RouteOp,
    RouterEntries,
    apply_router_ops,
    diff_router,
    encode_route,
    leg_device_name,
    netns_base,
    parse_route,
    plan_router,
    router_netns,
    router_netns_pattern,
)
from netweave.model import Port, Remote, Route, Router, RouterHost, RouterInterface

MAX_VNI = 16777215


def test_names_fit_and_are_recognised() -> None:
    prefix = "a" * PREFIX_MAX
    names = Names(prefix)
    longest = (bridge_name(prefix, MAX_VNI), vxlan_name(prefix, MAX_VNI),
               port_device_name(prefix, "tap0123456789a"))
    for name in longest:
        assert len(name) <= 15 and names.owns(name), name
    assert names.network(bridge_name(prefix, 7)) == ("br", 7)
    assert names.network(vxlan_name(prefix, MAX_VNI)) == ("vx", MAX_VNI)
    assert names.is_port(port_device_name(prefix, "tap1"))
    assert port_device_name(prefix, "tap1") != port_device_name(prefix, "tap2")


def test_other_prefixes_and_devices_are_not_ours() -> None:
    nw = Names("nw")
    others = (port_device_name("nwa", "tap1"), port_device_name("nwp", "tap1"), bridge_name("nwp", 5),
              vxlan_name("nwb", 5))
    for name in ("eth0", "br0", "nwbr", "nwx100", "nwbr100x", "nwabr100", "nwpzzzzzzzzzzzz", *others):
        assert not nw.owns(name), name


def test_prefix_is_checked() -> None:
    for bad in ("", "NW", "1nw", "n-w", "a" * (PREFIX_MAX + 1)):
        try:
            check_prefix(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def _decode(msg: bytes) -> tuple[int, int, Neigh]:
    [(kind, flags, seq, off, end)] = list(messages(msg))
    assert end == len(msg) and seq == 42
    return kind, flags, parse_neigh(msg, off, end)


def test_messages_are_what_bridge_and_ip_send() -> None:
    kind, _, n = _decode(encode_op(Op("fdb", True, 100, "02:00:00:00:00:01", "2001:db8::2"), 42, 7, 9))
    assert kind == RTM_NEWNEIGH
    assert (n.family, n.ifindex, n.state, n.flags, n.lladdr, n.dst) == (
        AF_BRIDGE, 7, NUD_PERMANENT, NTF_SELF, "02:00:00:00:00:01", "2001:db8::2")
    _, _, n = _decode(encode_op(Op("master", True, 100, "02:00:00:00:00:01"), 42, 7, 9))
    assert (n.family, n.ifindex, n.state, n.flags, n.dst) == (AF_BRIDGE, 7, NUD_NOARP, NTF_MASTER, None)
    _, _, n = _decode(encode_op(Op("flood", True, 100, "198.18.0.2"), 42, 7, 9))
    assert (n.lladdr, n.dst) == ("00:00:00:00:00:00", "198.18.0.2")
    kind, _, n = _decode(encode_op(Op("neigh", False, 100, "10.0.0.1", "02:00:00:00:00:01"), 42, 7, 9))
    assert kind == RTM_DELNEIGH
    assert (n.family, n.ifindex, n.dst, n.lladdr) == (socket.AF_INET, 9, "10.0.0.1", None)


def test_addresses_compare_in_the_kernels_spelling() -> None:
    assert canon_ip("2001:DB8:0::1") == "2001:db8::1"
    fdb, neigh = remote_entries([Remote(vni=1, mac="02:00:00:00:00:01", vtep="2001:DB8::2", ips=("FE80::1",)),
                                 Remote(vni=2, mac="02:00:00:00:00:02", vtep="198.18.0.2")], [1])
    assert fdb == {(1, "02:00:00:00:00:01"): "2001:db8::2"} and neigh == {(1, "fe80::1"): "02:00:00:00:00:01"}


def test_diff_orders_deletions_before_additions() -> None:
    have = Entries(fdb={(1, "m1"): "v1", (1, "m2"): "v1"}, master={(1, "m1"), (1, "m2")},
                   flood={1: {"v1", "v2"}}, neigh={(1, "10.0.0.1"): "m1", (1, "10.0.0.2"): "m2"})
    want = Entries(fdb={(1, "m1"): "v2", (1, "m3"): "v1"}, master={(1, "m1"), (1, "m3")},
                   flood={1: {"v1", "v3"}}, neigh={(1, "10.0.0.1"): "m1", (1, "10.0.0.3"): "m3"})
    ops = diff_entries(have, want)
    groups = [(op.add, op.what) for op in ops]
    assert sorted(set(groups), key=groups.index) == [
        (False, "neigh"), (False, "master"), (False, "fdb"), (False, "flood"),
        (True, "fdb"), (True, "master"), (True, "flood"), (True, "neigh")], groups
    assert len(ops) == 9
    assert Op("fdb", True, 1, "m1", "v2") in ops, "a moved MAC is one replace, not delete + add"
    apply_ops(have, ops)
    assert have == want
    assert diff_entries(have, want) == []


def test_diff_can_be_limited_to_keys() -> None:
    have = Entries(fdb={(1, "m1"): "v1"}, master={(1, "m1")})
    want = Entries(fdb={(1, "m2"): "v1"}, master={(1, "m2")})
    assert {op.key for op in diff_entries(have, want, fdb_keys=[(1, "m2")], neigh_keys=[])} == {"m2"}


macs = st.sampled_from([f"02:00:00:00:00:{i:02x}" for i in range(6)])
ips = st.sampled_from([f"10.0.0.{i}" for i in range(6)] + ["2001:db8::1", "2001:DB8::2"])
vteps = st.sampled_from(["198.18.0.2", "198.18.0.3", "2001:db8::9"])
vni_st = st.sampled_from([1, 2])
remote_st = st.builds(Remote, vni=vni_st, mac=macs, vtep=vteps, ips=st.lists(ips, max_size=2).map(tuple))
port_st = st.builds(Port, name=st.sampled_from(["tapa", "tapb"]), vni=vni_st, mac=macs,
                    ips=st.lists(ips, max_size=2).map(tuple))


def _one_owner_per_address(remotes: list[Remote]) -> bool:
    keys = [(r.vni, canon_ip(ip)) for r in remotes for ip in set(r.ips)]
    return len(keys) == len(set(keys))


state_st = st.tuples(
    st.lists(remote_st, max_size=6, unique_by=lambda r: (r.vni, r.mac)).filter(_one_owner_per_address),
    st.lists(port_st, max_size=2, unique_by=lambda p: p.name),
    st.dictionaries(vni_st, st.sets(vteps, max_size=2)),
    st.sampled_from([frozenset({1, 2}), frozenset({1}), frozenset({1, 2})]),
)


@settings(max_examples=300)
@given(st.lists(state_st, min_size=1, max_size=6))
def test_incremental_plans_end_where_full_comparisons_do(
        states: list[tuple[list[Remote], list[Port], dict[int, set[str]], frozenset[int]]]) -> None:
    """Whatever sequence of states: the incremental planner's writes leave the same entries as comparing
    everything each time, and those are exactly what the state asks for."""
    inc, full = Planner(), Planner()
    have_inc, have_full = Entries(), Entries()
    for remotes, ports, flood, vnis in states:
        apply_ops(have_inc, inc.plan(have_inc, remotes, ports, flood, vnis))
        full.reset()
        apply_ops(have_full, full.plan(have_full, remotes, ports, flood, vnis))
        fdb, neigh = remote_entries(remotes, vnis)
        neigh.update(((p.vni, canon_ip(ip)), p.mac) for p in ports for ip in p.ips if p.vni in vnis)
        expected = Entries(fdb=fdb, master=set(fdb), neigh=neigh,
                           flood={v: {canon_ip(x) for x in s} for v, s in flood.items() if s and v in vnis})
        assert have_full == expected
        assert have_inc == expected
        assert inc.plan(have_inc, remotes, ports, flood, vnis) == [], "nothing left to do"


# ---------------------------------------------------------------- routers (kernel_router)


def _router() -> Router:
    return Router("r1", 100001, "0e:00:00:00:00:01", interfaces=(
        RouterInterface(5001, "10.1.0.0/24", "10.1.0.1", "fa:16:3e:00:00:01"),
        RouterInterface(5001, "2001:DB8:1::/64", "2001:DB8:1::1", "fa:16:3e:00:00:01"),
        RouterInterface(5002, "10.2.0.0/24", "10.2.0.1", "fa:16:3e:00:00:02")), hosts=(
        RouterHost("10.1.0.5", 5001, "02:00:00:00:01:05", "198.18.0.1", "0e:00:00:00:00:01"),
        RouterHost("10.2.0.6", 5002, "02:00:00:00:02:06", "198.18.0.2", "0e:00:00:00:00:02"),
        RouterHost("2001:DB8:2::6", 5002, "02:00:00:00:02:06", "198.18.0.2", "0e:00:00:00:00:02"),
        RouterHost("10.2.0.7", 5002, "02:00:00:00:02:07", "198.18.0.3", "0e:00:00:00:00:03")),
        routes=(Route("172.16.0.0/16", "10.2.0.6"),))


def test_router_plan_legs_for_local_networks_routes_for_remote_hosts() -> None:
    plan = plan_router(_router(), "198.18.0.1", {5001})
    assert plan.legs == {5001: Leg(5001, "fa:16:3e:00:00:01", ("10.1.0.1/24", "2001:db8:1::1/64"))}
    assert plan.entries.routes == {"10.2.0.6/32": "", "2001:db8:2::6/128": "", "10.2.0.7/32": "",
                                   "172.16.0.0/16": "10.2.0.6"}, "no route for the local VM"
    assert plan.entries.neigh == {"10.2.0.6": "0e:00:00:00:00:02", "2001:db8:2::6": "0e:00:00:00:00:02",
                                  "10.2.0.7": "0e:00:00:00:00:03"}
    assert plan.entries.fdb == {"0e:00:00:00:00:02": "198.18.0.2", "0e:00:00:00:00:03": "198.18.0.3"}
    both = plan_router(_router(), "198.18.0.2", {5001, 5002})
    assert set(both.legs) == {5001, 5002} and "10.2.0.6/32" not in both.entries.routes
    assert both.entries.routes["10.1.0.5/32"] == "" and not both.notes


def test_router_diff_orders_routes_around_their_entries() -> None:
    have = RouterEntries(routes={"10.0.0.1/32": "", "10.0.0.2/32": ""},
                         neigh={"10.0.0.1": "m1", "10.0.0.2": "m2"}, fdb={"m1": "v1", "m2": "v2"})
    want = RouterEntries(routes={"10.0.0.1/32": "", "10.0.0.3/32": ""},
                         neigh={"10.0.0.1": "m1", "10.0.0.3": "m3"}, fdb={"m1": "v9", "m3": "v3"})
    ops = diff_router(have, want)
    assert [(o.what, o.add, o.key) for o in ops] == [
        ("route", False, "10.0.0.2/32"), ("neigh", False, "10.0.0.2"), ("fdb", False, "m2"),
        ("fdb", True, "m1"), ("fdb", True, "m3"), ("neigh", True, "10.0.0.3"), ("route", True, "10.0.0.3/32")]
    apply_router_ops(have, ops)
    assert have == want and diff_router(have, want) == []


def test_route_messages_round_trip() -> None:
    for op, oif, value in ((RouteOp("route", True, "10.2.0.6/32"), 7, ""),
                           (RouteOp("route", True, "172.16.0.0/16", "10.2.0.6"), 7, "10.2.0.6"),
                           (RouteOp("route", True, "2001:db8:2::6/128"), 9, "")):
        msg = encode_route(op, 42, oif)
        [(kind, _, seq, off, end)] = list(messages(msg))
        assert (kind, seq, end) == (RTM_NEWROUTE, 42, len(msg))
        assert parse_route(msg, off, end, oif) == (op.key, value)
    [(kind, _, _, off, end)] = list(messages(encode_route(RouteOp("route", False, "10.2.0.6/32"), 1, 7)))
    assert kind == RTM_DELROUTE


def test_router_names_are_per_chassis_and_fit() -> None:
    assert netns_base("t1a2b3c-h1", "198.18.0.1") == "t1a2b3c-h1-"
    assert netns_base(None, "2001:db8::1") == "2001-db8-1-"
    ns = router_netns(netns_base("t1a2b3c-h1", "x"), "nw", 100001)
    assert ns == "t1a2b3c-h1-nwr100001" and router_netns_pattern("t1a2b3c-h1-", "nw").fullmatch(ns)
    assert not router_netns_pattern("t1a2b3c-h1-", "nw").fullmatch("t1a2b3c-h2-nwr100001")
    prefix = "a" * PREFIX_MAX
    leg = leg_device_name(prefix, 16777215, 16777215)
    assert len(leg) <= 15 and Names(prefix).is_leg(leg) and Names(prefix).owns(leg)
    assert not Names(prefix).is_port(leg) and Names(prefix).network(leg) is None
    assert leg_device_name("nw", 100001, 5001) != leg_device_name("nw", 100002, 5001)
