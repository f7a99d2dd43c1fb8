"""The per-chassis views and their compiler (`netweave.control`): diffs that compose, the sections a chassis
gets, the work an incremental update does, and the strongest property: after any sequence of changes the
incrementally maintained views equal those a fresh compiler computes from the final model, and the diffs a
chassis was sent take its previous view to its current one."""

from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from netweave.control import views
from netweave.control.compiler import (
    HISTORY,
    Compiler,
    LChassis,
    LNetwork,
    LPort,
    LRouter,
    device_name,
    router_mac,
)
from netweave.control.views import View
from netweave.model import Subnet

# ---------------------------------------------------------------------- views: diff / patch / merge_into
small_json = st.dictionaries(
    st.sampled_from("abc"),
    st.integers(0, 3) | st.text("xy", max_size=2) | st.lists(st.integers(0, 2), max_size=2),
    max_size=3,
)
table = st.dictionaries(st.sampled_from([f"k{i}" for i in range(6)]), small_json, max_size=5)
view_strategy = st.fixed_dictionaries({t: table for t in views.TABLES})


@given(view_strategy, view_strategy)
def test_patch_of_diff_gives_the_new_view(a: View, b: View) -> None:
    d = views.diff(a, b)
    assert views.patch(a, d) == b
    assert views.diff(a, a) == {} and views.diff(b, b) == {}
    assert (d == {}) == (a == b)


@given(view_strategy, view_strategy)
def test_patch_does_not_modify_its_argument(a: View, b: View) -> None:
    before = {t: dict(v) for t, v in a.items()}
    views.patch(a, views.diff(a, b))
    assert a == before


@given(view_strategy, st.lists(view_strategy, min_size=1, max_size=5))
def test_merged_diffs_take_the_first_view_to_the_last(a: View, chain: list[View]) -> None:
    merged: views.Diff = {}
    prev = a
    for nxt in chain:
        views.merge_into(merged, views.diff(prev, nxt))
        prev = nxt
    assert views.patch(a, merged) == chain[-1]


def test_patch_rejects_an_unknown_table() -> None:
    try:
        views.patch(views.empty(), {"bridges": {"set": {}, "del": []}})
    except ValueError as exc:
        assert "bridges" in str(exc)
    else:
        raise AssertionError("expected ValueError")


# ---------------------------------------------------------------------- sections
N1 = "net-1111-aaaa"
P1, P2, P3 = "p1aaaaaaaaaaaaaaaa", "p2bbbbbbbbbbbbbbbb", "p3cccccccccccccccc"
VTEP = {"h1": "10.0.0.1", "h2": "10.0.0.2", "h3": "10.0.0.3", "h4": "10.0.0.4", "h5": "10.0.0.5"}


def chassis(*names: str) -> list[LChassis]:
    return [LChassis(n, VTEP[n]) for n in names]


def three_hosts(net: LNetwork, registered: tuple[str, ...] = ("h1", "h2", "h3")) -> Compiler:
    c = Compiler(epoch="e1")
    c.load(
        revision=1,
        networks=[net],
        ports=[
            LPort(P1, net.id, "02:00:00:00:00:01", "h1", ("10.1.0.1",), name="vm1", netns="ns-vm1"),
            LPort(P2, net.id, "02:00:00:00:00:02", "h2", ("10.1.0.2", "2001:db8::2")),
            LPort(P3, net.id, "02:00:00:00:00:03", "h3", ()),
        ],
        chassis=chassis(*registered),
    )
    return c


def test_controller_network_section() -> None:
    c = three_hosts(LNetwork(N1, 5000, "vxlan"))
    rev, v = c.view("h1")
    assert rev == 1
    assert v["networks"] == {
        "5000": {
            "vni": 5000, "encap": "vxlan", "mode": "static", "arp_suppression": True, "unknown_arp": "drop",
            "unknown_unicast": "drop", "flood": ["10.0.0.2", "10.0.0.3"], "multicast_group": None,
            "geneve_options": [], "subnets": [],
        }
    }
    assert v["ports"] == {
        P1: {"name": "tap" + P1[:11], "vni": 5000, "mac": "02:00:00:00:00:01", "ips": ["10.1.0.1"],
             "netns": "ns-vm1", "port_id": P1, "label": "vm1"}
    }
    assert device_name(P1) == "tapp1aaaaaaaaa" and len(device_name(P1)) == 14
    assert v["remotes"] == {
        "5000/02:00:00:00:00:02": {"vni": 5000, "mac": "02:00:00:00:00:02", "vtep": "10.0.0.2",
                                   "ips": ["10.1.0.2", "2001:db8::2"]},
        "5000/02:00:00:00:00:03": {"vni": 5000, "mac": "02:00:00:00:00:03", "vtep": "10.0.0.3", "ips": []},
    }
    v2 = c.view("h2")[1]
    assert v2["networks"]["5000"]["flood"] == ["10.0.0.1", "10.0.0.3"]
    assert v2["ports"][P2]["label"] == P2[:8], "no name: the id's first 8 characters"
    assert v2["ports"][P2]["netns"] is None
    assert set(v2["remotes"]) == {"5000/02:00:00:00:00:01", "5000/02:00:00:00:00:03"}
    # every view is a valid datapath state
    for host in ("h1", "h2", "h3"):
        state = views.to_state(c.view(host)[1])
        assert [p.port_id for p in state.ports] == [{"h1": P1, "h2": P2, "h3": P3}[host]]


def test_flood_learn_network_has_no_remotes() -> None:
    c = three_hosts(LNetwork(N1, 5000, "geneve", control_plane="flood-learn", arp_suppression=False))
    v = c.view("h1")[1]
    net = v["networks"]["5000"]
    assert (net["mode"], net["unknown_arp"], net["unknown_unicast"]) == ("flood-learn", "flood", "flood")
    assert net["flood"] == ["10.0.0.2", "10.0.0.3"] and net["encap"] == "geneve"
    assert net["arp_suppression"] is False
    assert v["remotes"] == {} and set(v["ports"]) == {P1}


def test_multicast_replication_uses_the_group_and_no_flood_list() -> None:
    net = LNetwork(N1, 5000, "vxlan", control_plane="flood-learn", replication="multicast",
                   multicast_group="239.1.1.1")
    c = three_hosts(net)
    for host in ("h1", "h2", "h3"):
        entry = c.view(host)[1]["networks"]["5000"]
        assert entry["multicast_group"] == "239.1.1.1" and entry["flood"] == []
        views.to_state(c.view(host)[1])  # the datapath accepts it (flood and group are exclusive)
    # controller mode floods broadcast/multicast through the group too (unknown unicast is dropped)
    c = three_hosts(replace(net, control_plane="controller"))
    entry = c.view("h1")[1]["networks"]["5000"]
    assert entry["multicast_group"] == "239.1.1.1" and entry["flood"] == []
    assert entry["unknown_unicast"] == "drop"


def test_unregistered_chassis_left_out_until_it_registers() -> None:
    c = three_hosts(LNetwork(N1, 5000, "vxlan"), registered=("h1", "h2"))
    v1 = c.view("h1")[1]
    assert v1["networks"]["5000"]["flood"] == ["10.0.0.2"]
    assert set(v1["remotes"]) == {"5000/02:00:00:00:00:02"}
    # h3 has a view already (its ports are bound there): it just has no VTEP address yet
    v3 = c.view("h3")[1]
    assert set(v3["ports"]) == {P3} and v3["networks"]["5000"]["flood"] == ["10.0.0.1", "10.0.0.2"]
    before3 = v3
    changed = c.update(revision=2, chassis={"h3": LChassis("h3", "10.0.0.3")})
    assert set(changed) == {"h1", "h2"}, "h3's own view does not change by its registering"
    assert c.view("h3") == (1, before3)
    for host in ("h1", "h2"):
        rev, v = c.view(host)
        assert rev == 2
        assert "10.0.0.3" in v["networks"]["5000"]["flood"]
        assert v["remotes"]["5000/02:00:00:00:00:03"]["vtep"] == "10.0.0.3"
    # deregistering takes it out again
    changed = c.update(revision=3, chassis={"h3": None})
    assert set(changed) == {"h1", "h2"}
    assert c.view("h1")[1] == v1


def test_unbound_ports_and_networks_without_local_ports() -> None:
    n2 = "net-2222-bbbb"
    c = Compiler()
    c.load(
        revision=1,
        networks=[LNetwork(N1, 5000, "vxlan"), LNetwork(n2, 5001, "vxlan")],
        ports=[
            LPort(P1, N1, "02:00:00:00:00:01", "h1"),
            LPort(P2, N1, "02:00:00:00:00:02", ""),  # unbound
            LPort(P3, n2, "02:00:00:00:00:03", "h2"),
        ],
        chassis=chassis("h1", "h2"),
    )
    v1 = c.view("h1")[1]
    assert set(v1["networks"]) == {"5000"} and v1["remotes"] == {} and set(v1["ports"]) == {P1}
    assert v1["networks"]["5000"]["flood"] == []
    v2 = c.view("h2")[1]
    assert set(v2["networks"]) == {"5001"} and set(v2["ports"]) == {P3}
    assert c.view("")[1] == views.empty() and "" not in c.states
    # binding the unbound port to h2 puts network 5000 on h2's view and h2 in h1's flood set
    changed = c.update(revision=2, ports={P2: LPort(P2, N1, "02:00:00:00:00:02", "h2")})
    assert set(changed) == {"h1", "h2"}
    assert set(c.view("h2")[1]["networks"]) == {"5000", "5001"}
    assert c.view("h1")[1]["networks"]["5000"]["flood"] == ["10.0.0.2"]
    # and unbinding it again removes both
    changed = c.update(revision=3, ports={P2: LPort(P2, N1, "02:00:00:00:00:02", "")})
    assert set(changed) == {"h1", "h2"}
    assert c.view("h1")[1] == v1 and c.view("h2")[1] == v2
    assert changed["h2"]["networks"]["del"] == ["5000"]


# ---------------------------------------------------------------------- incremental work
def two_networks() -> Compiler:
    """N1 on h1, h2; N2 on h3, h4; h5 registered with nothing on it."""
    c = Compiler(epoch="e")
    c.load(
        revision=1,
        networks=[LNetwork("n1", 5001, "vxlan"), LNetwork("n2", 5002, "vxlan")],
        ports=[
            LPort("a1", "n1", "02:00:00:00:01:01", "h1"),
            LPort("a2", "n1", "02:00:00:00:01:02", "h2"),
            LPort("b3", "n2", "02:00:00:00:02:03", "h3"),
            LPort("b4", "n2", "02:00:00:00:02:04", "h4"),
        ],
        chassis=chassis("h1", "h2", "h3", "h4", "h5"),
    )
    return c


def test_port_change_touches_only_its_networks_chassis() -> None:
    c = two_networks()
    assert c.sections_computed == 4
    untouched = {h: c.view(h) for h in ("h3", "h4")}
    changed = c.update(revision=2, ports={"a9": LPort("a9", "n1", "02:00:00:00:01:09", "h1")})
    assert set(changed) == {"h1", "h2"}
    assert c.sections_computed == 4 + 2
    assert changed["h1"] == {"ports": {"set": {"a9": c.view("h1")[1]["ports"]["a9"]}, "del": []}}
    assert changed["h2"]["remotes"]["set"] == {
        "5001/02:00:00:00:01:09": {"vni": 5001, "mac": "02:00:00:00:01:09", "vtep": "10.0.0.1", "ips": []}
    }
    assert {h: c.view(h) for h in ("h3", "h4")} == untouched
    # a port on a new host: that host's section appears, the others' flood sets and remotes change
    changed = c.update(revision=3, ports={"a5": LPort("a5", "n1", "02:00:00:00:01:05", "h5")})
    assert set(changed) == {"h1", "h2", "h5"}
    assert c.sections_computed == 6 + 3
    assert c.view("h1")[1]["networks"]["5001"]["flood"] == ["10.0.0.2", "10.0.0.5"]
    # a change that makes no difference to any view bumps nobody (the port's name is only a label)
    same = c.update(revision=4, ports={"a2": LPort("a2", "n1", "02:00:00:00:01:02", "h2")})
    assert same == {}
    assert c.view("h2")[0] == 3 and c.sections_computed == 9 + 3


def test_chassis_change_touches_only_chassis_sharing_networks() -> None:
    c = two_networks()
    base = c.sections_computed
    changed = c.update(revision=2, chassis={"h1": LChassis("h1", "10.9.9.1")})
    assert set(changed) == {"h2"}, "h1's own view names no address of its own"
    assert c.sections_computed == base + 2
    assert c.view("h2")[1]["networks"]["5001"]["flood"] == ["10.9.9.1"]
    assert c.view("h2")[1]["remotes"]["5001/02:00:00:00:01:01"]["vtep"] == "10.9.9.1"
    assert c.view("h3")[0] == 1 and c.view("h1")[0] == 1
    # a chassis with no ports: registering it computes nothing
    changed = c.update(revision=3, chassis={"h6": LChassis("h6", "10.0.0.6")})
    assert changed == {} and c.sections_computed == base + 2
    assert c.view("h6") == (0, views.empty())
    # a network change: only its chassis
    changed = c.update(revision=4, networks={"n2": LNetwork("n2", 5002, "vxlan", arp_suppression=False)})
    assert set(changed) == {"h3", "h4"} and c.sections_computed == base + 4


def test_vni_change_rekeys_networks_and_remotes() -> None:
    c = two_networks()
    changed = c.update(revision=2, networks={"n1": LNetwork("n1", 6001, "vxlan")})
    assert set(changed) == {"h1", "h2"}
    v = c.view("h1")[1]
    assert set(v["networks"]) == {"6001"} and v["ports"]["a1"]["vni"] == 6001
    assert v["remotes"] == {"6001/02:00:00:00:01:02": {"vni": 6001, "mac": "02:00:00:00:01:02",
                                                        "vtep": "10.0.0.2", "ips": []}}
    assert changed["h1"]["networks"] == {"set": {"6001": v["networks"]["6001"]}, "del": ["5001"]}


def test_network_deletion_empties_its_sections() -> None:
    c = two_networks()
    changed = c.update(revision=2, networks={"n1": None}, ports={"a1": None, "a2": None})
    assert set(changed) == {"h1", "h2"}
    assert c.view("h1") == (2, views.empty()) and c.view("h2") == (2, views.empty())
    assert c.view("h3")[0] == 1


# ---------------------------------------------------------------------- since()
def test_since() -> None:
    c = two_networks()
    rev1, full1 = c.view("h1")
    assert c.since("h1", rev1, "e") is None
    assert c.since("h1", -1, "") == {"revision": rev1, "epoch": "e", "full": full1}
    assert c.since("h1", rev1, "other-epoch") == {"revision": rev1, "epoch": "e", "full": full1}
    assert c.since("h1", rev1 + 5, "e") == {"revision": rev1, "epoch": "e", "full": full1}, "newer: resync"
    # an unknown host: the empty view at revision 0
    assert c.since("nobody", -1, "") == {"revision": 0, "epoch": "e", "full": views.empty()}
    assert c.since("nobody", 0, "e") is None

    sent = []
    for i in range(HISTORY):
        mac = f"02:00:00:00:09:{i:02x}"
        out = c.update(revision=10 + i, ports={f"x{i}": LPort(f"x{i}", "n1", mac, "h2")})
        sent.append(out["h1"])
    assert c.view("h1")[0] == 10 + HISTORY - 1
    behind = c.since("h1", rev1, "e")
    assert behind is not None and behind["revision"] == 10 + HISTORY - 1 and "full" not in behind
    assert behind["diffs"] == sent
    view = full1
    for d in behind["diffs"]:
        view = views.patch(view, d)
    assert view == c.view("h1")[1]
    # from the middle of the history
    mid = c.since("h1", 20, "e")
    assert mid is not None and mid["diffs"] == sent[11:]
    # one more change: the oldest diff is gone, an agent at rev1 needs the whole view
    c.update(revision=10 + HISTORY, ports={"y": LPort("y", "n1", "02:00:00:00:0a:01", "h2")})
    resync = c.since("h1", rev1, "e")
    assert resync == {"revision": 10 + HISTORY, "epoch": "e", "full": c.view("h1")[1]}
    still = c.since("h1", 10, "e")
    assert still is not None and len(still["diffs"]) == HISTORY
    # a revision this chassis never had (between two of its revisions) cannot be continued from
    assert c.since("h1", 5, "e") == {"revision": 10 + HISTORY, "epoch": "e", "full": c.view("h1")[1]}


# ---------------------------------------------------------------------- incremental == from scratch
HOSTS = ("h1", "h2", "h3", "h4")
VTEPS = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.9")  # few: two chassis can share one
MACS = [f"02:00:00:00:00:{i:02x}" for i in range(1, 40)]
NETWORK_IDS = ("na", "nb", "nc")
ROUTER_IDS = ("r1", "r2")
SUBNETS = {
    "na": (Subnet("10.0.0.0/24", "10.0.0.1"), Subnet("fd00::/64", "fd00::ff")),
    "nb": (Subnet("10.0.0.0/25", "10.0.0.126"),),
    "nc": (Subnet("10.0.0.0/24", None),),
}


class CompilerMachine(RuleBasedStateMachine):
    """Random changes to the model, fed to one compiler incrementally; after each, compare with a
    compiler loaded from scratch and replay the diffs each chassis was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.compiler = Compiler(epoch="e")
        self.networks: dict[str, LNetwork] = {}
        self.ports: dict[str, LPort] = {}
        self.chassis: dict[str, LChassis] = {}
        self.routers: dict[str, LRouter] = {}
        self.revision = 0
        self.next_port = 0
        self.next_vni = 7000
        self.agents: dict[str, View] = {}  # what each chassis holds, from the diffs it was sent
        self.snapshots: dict[str, list[tuple[int, View]]] = {}  # (revision, view) each chassis had

    def _update(self, **kw: Any) -> None:
        self.revision += 1
        changed = self.compiler.update(revision=self.revision, **kw)
        for host, d in changed.items():
            assert d, "only chassis whose view changed are returned"
            old = self.agents.get(host, views.empty())
            self.agents[host] = views.patch(old, d)
            assert self.agents[host] != old
            rev, view = self.compiler.view(host)
            assert rev == self.revision
            self.snapshots.setdefault(host, [(0, views.empty())]).append((rev, view))

    @initialize(n=st.integers(1, 3))
    def start(self, n: int) -> None:
        nets = [self._new_network(NETWORK_IDS[i], "vxlan", "controller") for i in range(n)]
        self.networks = {x.id: x for x in nets}
        self.revision = 1
        self.compiler.load(revision=1, networks=nets, ports=[], chassis=[])

    def _new_network(self, nid: str, encap: str, control_plane: str) -> LNetwork:
        self.next_vni += 1
        return LNetwork(nid, self.next_vni, encap, control_plane=control_plane, subnets=SUBNETS[nid])

    # -------- ports
    @precondition(lambda self: self.networks)
    @rule(data=st.data(), host=st.sampled_from((*HOSTS, "")), name=st.sampled_from(("", "vm")),
          ips=st.lists(st.sampled_from(("10.0.0.5", "10.0.0.6", "fd00::1")), max_size=2, unique=True),
          netns=st.sampled_from((None, "ns1")))
    def add_port(self, data: st.DataObject, host: str, name: str, ips: list[str], netns: str | None) -> None:
        nid = data.draw(st.sampled_from(sorted(self.networks)))
        used = {p.mac for p in self.ports.values() if p.network_id == nid}
        free = [m for m in MACS if m not in used]
        if not free:
            return
        self.next_port += 1
        pid = f"port{self.next_port:04d}-{nid}"
        port = LPort(pid, nid, data.draw(st.sampled_from(free)), host, tuple(sorted(ips)), name, netns)
        self.ports[pid] = port
        self._update(ports={pid: port})

    @precondition(lambda self: self.ports)
    @rule(data=st.data(), host=st.sampled_from((*HOSTS, "")))
    def move_port(self, data: st.DataObject, host: str) -> None:
        pid = data.draw(st.sampled_from(sorted(self.ports)))
        self.ports[pid] = replace(self.ports[pid], host=host)
        self._update(ports={pid: self.ports[pid]})

    @precondition(lambda self: self.ports)
    @rule(data=st.data(), ips=st.lists(st.sampled_from(("10.0.0.7", "10.0.0.8")), max_size=2, unique=True))
    def readdress_port(self, data: st.DataObject, ips: list[str]) -> None:
        pid = data.draw(st.sampled_from(sorted(self.ports)))
        self.ports[pid] = replace(self.ports[pid], ips=tuple(sorted(ips)))
        self._update(ports={pid: self.ports[pid]})

    @precondition(lambda self: self.ports)
    @rule(data=st.data())
    def delete_port(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.ports)))
        del self.ports[pid]
        self._update(ports={pid: None})

    # -------- networks
    @precondition(lambda self: len(self.networks) < len(NETWORK_IDS))
    @rule(encap=st.sampled_from(("vxlan", "geneve")), cp=st.sampled_from(("controller", "flood-learn")))
    def add_network(self, encap: str, cp: str) -> None:
        nid = next(n for n in NETWORK_IDS if n not in self.networks)
        self.networks[nid] = self._new_network(nid, encap, cp)
        self._update(networks={nid: self.networks[nid]})

    @precondition(lambda self: self.networks)
    @rule(data=st.data(), cp=st.sampled_from(("controller", "flood-learn", "evpn")),
          multicast=st.booleans(), arp=st.booleans(), new_vni=st.booleans())
    def change_network(self, data: st.DataObject, cp: str, multicast: bool, arp: bool, new_vni: bool) -> None:
        nid = data.draw(st.sampled_from(sorted(self.networks)))
        net = self.networks[nid]
        if new_vni:
            self.next_vni += 1
        self.networks[nid] = replace(
            net, control_plane=cp, arp_suppression=arp, vni=self.next_vni if new_vni else net.vni,
            replication="multicast" if multicast else "ingress",
            multicast_group="239.1.1.1" if multicast else None,
        )
        self._update(networks={nid: self.networks[nid]})

    @precondition(lambda self: self.networks)
    @rule(data=st.data())
    def delete_network(self, data: st.DataObject) -> None:
        """Neutron deletes a network with its (remaining, auto-deleted) ports in one transaction."""
        nid = data.draw(st.sampled_from(sorted(self.networks)))
        del self.networks[nid]
        gone = [pid for pid, p in self.ports.items() if p.network_id == nid]
        for pid in gone:
            del self.ports[pid]
        self._update(networks={nid: None}, ports=dict.fromkeys(gone))

    # -------- routers
    @rule(rid=st.sampled_from(ROUTER_IDS), irb=st.sampled_from(("symmetric", "asymmetric")),
          routes=st.lists(st.sampled_from([("192.168.0.0/16", "10.0.0.9"), ("0.0.0.0/0", "10.0.0.8")]),
                          max_size=2, unique=True))
    def set_router(self, rid: str, irb: str, routes: list[tuple[str, str]]) -> None:
        self.routers[rid] = LRouter(rid, 100000 + ROUTER_IDS.index(rid), irb, tuple(routes))
        self._update(routers={rid: self.routers[rid]})

    @precondition(lambda self: self.routers)
    @rule(data=st.data())
    def delete_router(self, data: st.DataObject) -> None:
        """The API refuses while interfaces remain: they go in the same transaction here."""
        rid = data.draw(st.sampled_from(sorted(self.routers)))
        del self.routers[rid]
        gone = [pid for pid, p in self.ports.items() if p.router == rid]
        for pid in gone:
            del self.ports[pid]
        self._update(routers={rid: None}, ports=dict.fromkeys(gone))

    @precondition(lambda self: self.networks)
    @rule(data=st.data(), rid=st.sampled_from(ROUTER_IDS), v6=st.booleans())
    def attach_interface(self, data: st.DataObject, rid: str, v6: bool) -> None:
        """An interface port (made by add_router_interface): the gateway address, no host."""
        nid = data.draw(st.sampled_from(sorted(self.networks)))
        subnet = [s for s in SUBNETS[nid] if (":" in s.cidr) == v6]
        if not subnet or subnet[0].gateway_ip is None:
            return
        pid = f"if-{rid}-{nid}-{int(v6)}"
        self.ports[pid] = LPort(pid, nid, f"fa:16:3e:00:{ROUTER_IDS.index(rid):02x}:{int(v6):02x}", "",
                                (subnet[0].gateway_ip,), router=rid)
        self._update(ports={pid: self.ports[pid]})

    # -------- chassis
    @rule(host=st.sampled_from(HOSTS), vtep=st.sampled_from(VTEPS),
          routing=st.sampled_from([(), ("symmetric",), ("symmetric", "asymmetric")]))
    def register_chassis(self, host: str, vtep: str, routing: tuple[str, ...]) -> None:
        self.chassis[host] = LChassis(host, vtep, routing=routing)
        self._update(chassis={host: self.chassis[host]})

    @precondition(lambda self: self.chassis)
    @rule(data=st.data())
    def delete_chassis(self, data: st.DataObject) -> None:
        host = data.draw(st.sampled_from(sorted(self.chassis)))
        del self.chassis[host]
        self._update(chassis={host: None})

    # -------- several rows in one transaction
    @precondition(lambda self: self.ports)
    @rule(data=st.data(), host=st.sampled_from(HOSTS), vtep=st.sampled_from(VTEPS), delete=st.booleans())
    def batch(self, data: st.DataObject, host: str, vtep: str, delete: bool) -> None:
        pids = data.draw(st.lists(st.sampled_from(sorted(self.ports)), min_size=1, max_size=3, unique=True))
        ports: dict[str, LPort | None] = {}
        for i, pid in enumerate(pids):
            if delete and i == 0:
                del self.ports[pid]
                ports[pid] = None
            else:
                self.ports[pid] = replace(self.ports[pid], host=host)
                ports[pid] = self.ports[pid]
        self.chassis[host] = LChassis(host, vtep)
        self._update(ports=ports, chassis={host: self.chassis[host]})

    # -------- checks
    @invariant()
    def equals_fresh_compiler(self) -> None:
        fresh = Compiler(epoch="e")
        fresh.load(revision=self.revision, networks=list(self.networks.values()),
                   ports=list(self.ports.values()), chassis=list(self.chassis.values()),
                   routers=list(self.routers.values()))
        for host in {*HOSTS, *self.compiler.states, *fresh.states}:
            got = self.compiler.view(host)[1]
            assert got == fresh.view(host)[1], host
            assert self.agents.get(host, views.empty()) == got, f"{host}: diffs replayed"
            views.to_state(got)  # always a state the datapath accepts

    @invariant()
    def since_catches_up_from_any_earlier_revision(self) -> None:
        for host, snaps in self.snapshots.items():
            rev, current = self.compiler.view(host)
            for old_rev, old_view in snaps:
                out = self.compiler.since(host, old_rev, "e")
                if old_rev == rev:
                    assert out is None
                    continue
                assert out is not None and out["revision"] == rev and out["epoch"] == "e"
                assert "full" not in out, "within HISTORY: diffs"
                view = old_view
                for d in out["diffs"]:
                    view = views.patch(view, d)
                assert view == current


TestCompilerMachine = CompilerMachine.TestCase
TestCompilerMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_same_vni_on_two_networks_resolves_like_a_fresh_compile() -> None:
    """The API gives every overlay network its own VNI (one space for all encapsulations), but a store
    written before that rule may hold two networks with one VNI. A VTEP keys networks by VNI, so a view
    can hold only one of them; it must be the same one however the compiler got there."""
    nets = [LNetwork("nx", 1000, "vxlan"), LNetwork("ng", 1000, "geneve")]
    ports = [LPort("px", "nx", "02:00:00:00:00:01", "h1"), LPort("pg", "ng", "02:00:00:00:00:02", "h1")]
    c = Compiler()
    c.load(revision=1, networks=nets, ports=ports, chassis=chassis("h1"))
    c.update(revision=2, ports={"pg": None})
    fresh = Compiler()
    fresh.load(revision=2, networks=nets, ports=ports[:1], chassis=chassis("h1"))
    assert c.view("h1")[1] == fresh.view("h1")[1]
    assert c.view("h1")[1]["networks"]["1000"]["encap"] == "vxlan"
    c.update(revision=3, ports={"pg": ports[1]})
    again = Compiler()
    again.load(revision=3, networks=nets, ports=ports, chassis=chassis("h1"))
    assert c.view("h1")[1] == again.view("h1")[1]


# ---------------------------------------------------------------------- routers
def routed_pair(routing_h3: tuple[str, ...] = ("symmetric", "asymmetric")) -> Compiler:
    """Router r1 on web (10.1.0.0/24) and db (10.2.0.0/24); VMs: web on h1, db on h2, web on h3."""
    web = LNetwork("web", 5001, "vxlan", subnets=(Subnet("10.1.0.0/24", "10.1.0.1", dhcp=True),))
    db = LNetwork("db", 5002, "geneve", subnets=(Subnet("10.2.0.0/24", "10.2.0.1"),))
    c = Compiler(epoch="e")
    c.load(
        revision=1, networks=[web, db],
        ports=[
            LPort("if-web", "web", "fa:16:3e:00:00:01", "", ("10.1.0.1",), router="r1"),
            LPort("if-db", "db", "fa:16:3e:00:00:02", "", ("10.2.0.1",), router="r1"),
            LPort(P1, "web", "02:00:00:00:00:01", "h1", ("10.1.0.5",)),
            LPort(P2, "db", "02:00:00:00:00:02", "h2", ("10.2.0.5", "10.9.9.9")),
            LPort(P3, "web", "02:00:00:00:00:03", "h3", ("10.1.0.6",)),
        ],
        chassis=[LChassis("h1", VTEP["h1"]), LChassis("h2", VTEP["h2"]),
                 LChassis("h3", VTEP["h3"], datapath="kernel", routing=routing_h3)],
        routers=[LRouter("r1", 100001, "symmetric", (("192.168.0.0/16", "10.2.0.5"),))],
    )
    return c


def test_router_section_on_every_chassis_of_its_networks() -> None:
    c = routed_pair()
    h1 = c.view("h1")[1]
    assert set(h1["networks"]) == {"5001"}, "symmetric IRB: a chassis needs only its own subnets"
    assert h1["networks"]["5001"]["subnets"][0]["dhcp"] is True
    r1 = h1["routers"]["r1"]
    assert r1["l3_vni"] == 100001 and r1["irb"] == "symmetric" and r1["rmac"] == router_mac(VTEP["h1"])
    assert r1["interfaces"] == [
        {"vni": 5002, "cidr": "10.2.0.0/24", "gateway_ip": "10.2.0.1", "mac": "fa:16:3e:00:00:02",
         "encap": "geneve"},
        {"vni": 5001, "cidr": "10.1.0.0/24", "gateway_ip": "10.1.0.1", "mac": "fa:16:3e:00:00:01",
         "encap": "vxlan"},
    ]
    assert {(h["ip"], h["vtep"], h["rmac"]) for h in r1["hosts"]} == {
        ("10.1.0.5", VTEP["h1"], router_mac(VTEP["h1"])), ("10.1.0.6", VTEP["h3"], router_mac(VTEP["h3"])),
        ("10.2.0.5", VTEP["h2"], router_mac(VTEP["h2"]))}, "10.9.9.9 is on no attached subnet"
    assert r1["routes"] == [{"destination": "192.168.0.0/16", "nexthop": "10.2.0.5"}]
    assert c.view("h2")[1]["routers"]["r1"]["rmac"] == router_mac(VTEP["h2"]) != r1["rmac"]
    router = views.to_state(h1).routers[0]
    assert router.name == "r1" and len(router.hosts) == 3


def test_chassis_that_cannot_route_gets_no_router_and_its_ports_say_why() -> None:
    c = routed_pair(routing_h3=())
    assert c.view("h3")[1]["networks"] == {} and c.view("h3")[1]["routers"] == {}
    assert "cannot route" in c.binding_errors[P3]
    assert {h["ip"] for h in c.view("h1")[1]["routers"]["r1"]["hosts"]} == {"10.1.0.5", "10.2.0.5"}
    c.update(revision=2, ports={"if-web": None})  # web detached: h3's port is fine again
    assert P3 not in c.binding_errors and "5001" in c.view("h3")[1]["networks"]
    assert c.view("h1")[1]["routers"] == {}, "h1 has no port on db: r1 is not its router any more"
    assert c.view("h2")[1]["routers"]["r1"]["interfaces"][0]["vni"] == 5002


def test_router_change_touches_only_its_chassis() -> None:
    c = routed_pair()
    changed = c.update(revision=2, routers={"r1": LRouter("r1", 100001, "asymmetric")})
    assert set(changed) == {"h1", "h2", "h3"}
    assert all(set(d) == {"routers"} for d in changed.values())
    assert c.update(revision=3, routers={"r9": LRouter("r9", 100009)}) == {}, "no interfaces: nowhere"
    changed = c.update(revision=4, routers={"r1": None})
    assert all(c.view(h)[1]["routers"] == {} for h in ("h1", "h2", "h3"))


def test_chassis_that_routes_symmetric_only_refuses_an_asymmetric_router() -> None:
    c = routed_pair(routing_h3=("symmetric",))
    assert "r1" in c.view("h3")[1]["routers"] and P3 not in c.binding_errors
    c.update(revision=2, routers={"r1": LRouter("r1", 100001, "asymmetric")})
    assert c.view("h3")[1]["routers"] == {} and "asymmetric IRB" in c.binding_errors[P3]
    assert {h["ip"] for h in c.view("h1")[1]["routers"]["r1"]["hosts"]} == {"10.1.0.5", "10.2.0.5"}
    c.update(revision=3, routers={"r1": LRouter("r1", 100001, "symmetric")})
    assert P3 not in c.binding_errors and "r1" in c.view("h3")[1]["routers"]
