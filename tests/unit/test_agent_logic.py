"""The agent's logic without a controller, a datapath or root: a fake client and a fake driver, views made
by the real compiler. Taking watch answers (full or diffs), reconciling, reporting port status (changes
only), the namespaces it makes for ports (netns calls replaced), and its main loop."""

import threading
from dataclasses import replace
from typing import Any

import pytest

from netweave.agent import agent as agent_mod
from netweave.agent.agent import Agent
from netweave.agent.client import ControllerUnavailable, NotRegistered
from netweave.agent.drivers import DatapathUnavailable
from netweave.control import views
from netweave.control.compiler import Compiler, LChassis, LNetwork, LPort, device_name
from netweave.model import DatapathState


class FakeDriver:
    kind = "userspace"

    def __init__(self) -> None:
        self.applied: list[DatapathState] = []
        self.errors: dict[str, str] = {}
        self.fail: Exception | None = None

    def capabilities(self) -> dict[str, Any]:
        return {"encaps": ["vxlan", "geneve"]}

    def apply(self, state: DatapathState) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        changes = 0 if self.applied and self.applied[-1] == state else 1
        self.applied.append(state)
        return {"changes": changes, "errors": dict(self.errors)}


class FakeClient:
    url = "http://127.0.0.1:9"  # the heartbeat thread makes its own client; it never gets to call

    def __init__(self, chassis: str = "h1", answers: list[Any] | None = None) -> None:
        self.chassis = chassis
        self.calls: list[tuple[str, Any]] = []
        self.reports: list[dict[str, str]] = []
        self.answers = list(answers or [])
        self.report_error: Exception | None = None
        self.agent: Agent | None = None

    def register(self, vtep_ip: str, datapath: str, capabilities: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("register", (vtep_ip, datapath, capabilities)))
        return {}

    def heartbeat(self) -> None:
        self.calls.append(("heartbeat", None))

    def watch(self, since: int, epoch: str, wait_s: float) -> dict[str, Any]:
        self.calls.append(("watch", (since, epoch)))
        if not self.answers:
            assert self.agent is not None
            self.agent.stop()
            return {"revision": since, "epoch": epoch, "diffs": []}
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        out: dict[str, Any] = answer
        return out

    def report_ports(self, statuses: dict[str, str]) -> dict[str, Any]:
        self.calls.append(("report", dict(statuses)))
        if self.report_error is not None:
            raise self.report_error
        self.reports.append(dict(statuses))
        return {"changed": list(statuses), "ignored": []}

    def close(self) -> None:
        self.calls.append(("close", None))


NET = LNetwork("n1", 5000, "vxlan")
PA = LPort("aaaaaaaa-1111", "n1", "02:00:00:00:00:0a", "h1", ("10.0.0.10",), name="vm-a")
PB = LPort("bbbbbbbb-2222", "n1", "02:00:00:00:00:0b", "h1", ("10.0.0.11",), name="vm-b", netns="given")
PR = LPort("rrrrrrrr-3333", "n1", "02:00:00:00:00:0c", "h2", ("10.0.0.12",))


def compiler() -> Compiler:
    c = Compiler(epoch="E")
    c.load(revision=1, networks=[NET], ports=[PA, PB, PR],
           chassis=[LChassis("h1", "192.0.2.1"), LChassis("h2", "192.0.2.2")])
    return c


def make_agent(client: FakeClient | None = None, driver: FakeDriver | None = None,
               prefix: str | None = None) -> tuple[Agent, FakeClient, FakeDriver]:
    client = client or FakeClient()
    driver = driver or FakeDriver()
    agent = Agent(client, driver, vtep_ip="192.0.2.1", vm_netns_prefix=prefix,  # type: ignore[arg-type]
                  heartbeat_s=3600, wait_s=0.01)
    client.agent = agent
    return agent, client, driver


def test_absorb_full_then_diffs() -> None:
    c = compiler()
    agent, _, _ = make_agent()
    first = c.since("h1", agent.revision, agent.epoch)
    assert first is not None and "full" in first
    assert agent.absorb(first) is True
    assert (agent.epoch, agent.revision) == ("E", 1) and agent.view == c.view("h1")[1]
    assert c.since("h1", agent.revision, agent.epoch) is None

    c.update(revision=2, ports={"p9": LPort("p9", "n1", "02:00:00:00:00:99", "h2")})
    c.update(revision=3, ports={PB.id: None})
    answer = c.since("h1", agent.revision, agent.epoch)
    assert answer is not None and len(answer["diffs"]) == 2
    assert agent.absorb(answer) is True
    assert agent.revision == 3 and agent.view == c.view("h1")[1]
    # an empty answer (the long poll timed out) changes nothing
    assert agent.absorb({"revision": 3, "epoch": "E", "diffs": []}) is False
    assert agent.revision == 3
    # a controller restart: a new epoch and a full view replace everything
    fresh = Compiler(epoch="F")
    fresh.load(revision=1, networks=[NET], ports=[PR], chassis=[])
    answer = fresh.since("h1", agent.revision, agent.epoch)
    assert answer is not None and answer["full"] == views.empty()
    assert agent.absorb(answer) is True
    assert (agent.epoch, agent.revision, agent.view) == ("F", 0, views.empty())


def test_reconcile_reports_active_and_error_and_only_changes() -> None:
    c = compiler()
    agent, client, driver = make_agent()
    agent.absorb(c.since("h1", -1, "") or {})
    driver.errors = {device_name(PB.id): "no such namespace: given"}
    assert agent.reconcile() is True
    state = driver.applied[-1]
    assert {p.port_id: p.netns for p in state.ports} == {PA.id: None, PB.id: "given"}
    assert [r.vtep for r in state.remotes] == ["192.0.2.2"] and state.networks[0].flood == ("192.0.2.2",)
    assert client.reports == [{PA.id: "ACTIVE", PB.id: "ERROR"}]
    assert agent.applied_revision == 1 and agent.applies == 1

    assert agent.reconcile() is True, "same view again"
    assert len(driver.applied) == 2 and client.reports == [{PA.id: "ACTIVE", PB.id: "ERROR"}]

    driver.errors = {}
    agent.reconcile()
    assert client.reports[-1] == {PB.id: "ACTIVE"}, "only the port whose status changed"
    # a new port on this chassis: reported once
    c.update(revision=2, ports={"cccccccc-4444": LPort("cccccccc-4444", "n1", "02:00:00:00:00:0d", "h1")})
    agent.absorb(c.since("h1", agent.revision, agent.epoch) or {})
    agent.reconcile()
    agent.reconcile()
    assert client.reports[1:] == [{PB.id: "ACTIVE"}, {"cccccccc-4444": "ACTIVE"}]


def test_a_failed_report_is_retried_on_the_next_reconcile() -> None:
    agent, client, _ = make_agent()
    agent.absorb(compiler().since("h1", -1, "") or {})
    client.report_error = ControllerUnavailable("down")
    assert agent.reconcile() is True, "the datapath was programmed; only the report failed"
    assert client.reports == [] and agent.reported == {}
    client.report_error = None
    agent.reconcile()
    assert client.reports == [{PA.id: "ACTIVE", PB.id: "ACTIVE"}]


def test_port_that_leaves_and_comes_back_is_reported_again() -> None:
    """A port moved away and back (the controller set it DOWN on the re-binding) is reported ACTIVE
    again: what was reported for ports that left the view is forgotten."""
    c = compiler()
    agent, client, _ = make_agent()
    agent.absorb(c.since("h1", -1, "") or {})
    agent.reconcile()
    assert client.reports == [{PA.id: "ACTIVE", PB.id: "ACTIVE"}]
    c.update(revision=2, ports={PA.id: replace(PA, host="h2")})
    agent.absorb(c.since("h1", agent.revision, agent.epoch) or {})
    agent.reconcile()
    assert len(client.reports) == 1, "a port leaving is not reported (the controller sets it DOWN)"
    c.update(revision=3, ports={PA.id: PA})
    agent.absorb(c.since("h1", agent.revision, agent.epoch) or {})
    agent.reconcile()
    assert client.reports[1:] == [{PA.id: "ACTIVE"}]


def test_port_that_comes_back_after_another_change_is_reported_again() -> None:
    c = compiler()
    agent, client, _ = make_agent()
    agent.absorb(c.since("h1", -1, "") or {})
    agent.reconcile()
    c.update(revision=2, ports={PA.id: replace(PA, host="h2"),
                                "dddddddd-5555": LPort("dddddddd-5555", "n1", "02:00:00:00:00:0e", "h1")})
    agent.absorb(c.since("h1", agent.revision, agent.epoch) or {})
    agent.reconcile()
    assert client.reports[-1] == {"dddddddd-5555": "ACTIVE"} and PA.id not in agent.reported
    c.update(revision=3, ports={PA.id: PA})
    agent.absorb(c.since("h1", agent.revision, agent.epoch) or {})
    agent.reconcile()
    assert client.reports[-1] == {PA.id: "ACTIVE"}


@pytest.mark.parametrize("exc", [DatapathUnavailable("socket gone"), RuntimeError("apply failed")])
def test_reconcile_false_when_the_datapath_fails(exc: Exception) -> None:
    agent, client, driver = make_agent()
    agent.absorb(compiler().since("h1", -1, "") or {})
    driver.fail = exc
    assert agent.reconcile() is False
    assert client.reports == [] and agent.applied_revision is None and agent.applies == 0


def test_reconcile_false_for_a_malformed_view() -> None:
    agent, client, driver = make_agent()
    view = compiler().view("h1")[1]
    bad = views.patch(view, {"ports": {"set": {PA.id: {**view["ports"][PA.id], "mac": "nope"}}, "del": []}})
    agent.absorb({"revision": 1, "epoch": "E", "full": bad})
    assert agent.reconcile() is False
    assert driver.applied == [] and client.reports == []


class FakeNetns:
    def __init__(self, existing: set[str]) -> None:
        self.names = set(existing)
        self.created: list[str] = []
        self.removed: list[str] = []

    def listnetns(self) -> list[str]:
        return sorted(self.names)

    def create(self, name: str) -> None:
        self.names.add(name)
        self.created.append(name)

    def remove(self, name: str) -> None:
        self.names.discard(name)
        self.removed.append(name)


class FakeIPRoute:
    uplinks: list[str] = []

    def __init__(self, netns: str) -> None:
        self.netns = netns

    def __enter__(self) -> "FakeIPRoute":
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def link_lookup(self, ifname: str) -> list[int]:
        return [1]

    def link(self, op: str, index: int, state: str) -> None:
        FakeIPRoute.uplinks.append(f"{self.netns}:{op}:{index}:{state}")


def test_vm_netns_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNetns({"vm-vm-b"})
    FakeIPRoute.uplinks = []
    monkeypatch.setattr(agent_mod, "netns", fake)
    monkeypatch.setattr(agent_mod, "IPRoute", FakeIPRoute)
    c = compiler()
    noname = LPort("eeeeeeee-6666", "n1", "02:00:00:00:00:0f", "h1")
    c.update(revision=2, ports={noname.id: noname})
    agent, _, driver = make_agent(prefix="vm-")
    agent.absorb(c.since("h1", -1, "") or {})
    assert agent.reconcile() is True
    netns_of = {p.port_id: p.netns for p in driver.applied[-1].ports}
    assert netns_of == {PA.id: "vm-vm-a", PB.id: "given", noname.id: "vm-eeeeeeee"}
    assert sorted(fake.created) == ["vm-eeeeeeee", "vm-vm-a"], "the one from the profile is not ours"
    assert sorted(FakeIPRoute.uplinks) == ["vm-eeeeeeee:set:1:up", "vm-vm-a:set:1:up"]
    assert agent.own_netns == {PA.id: "vm-vm-a", noname.id: "vm-eeeeeeee"}
    agent.reconcile()
    assert len(fake.created) == 2, "existing namespaces are not made again"
    c.update(revision=3, ports={PA.id: None})
    agent.absorb(c.since("h1", agent.revision, agent.epoch) or {})
    agent.reconcile()
    assert fake.removed == ["vm-vm-a"] and agent.own_netns == {noname.id: "vm-eeeeeeee"}


def test_run_registers_watches_reconciles_and_registers_again() -> None:
    c = compiler()
    full = c.since("h1", -1, "")
    c.update(revision=2, ports={PB.id: None})
    diffs = c.since("h1", 1, "E")
    client = FakeClient(answers=[full, ControllerUnavailable("blip"), NotRegistered("h1"), diffs])
    ready = threading.Event()
    agent, _, driver = make_agent(client)
    agent.on_ready = ready.set
    runner = threading.Thread(target=agent.run)
    runner.start()
    runner.join(10)
    assert not runner.is_alive()
    assert ready.is_set()
    kinds = [k for k, _ in client.calls]
    assert kinds.count("register") == 2 and kinds[-1] == "close"
    assert client.calls[0] == ("register", ("192.0.2.1", "userspace", {"encaps": ["vxlan", "geneve"]}))
    watches = [a for k, a in client.calls if k == "watch"]
    assert watches[:4] == [(-1, ""), (1, "E"), (1, "E"), (1, "E")]
    assert agent.view == c.view("h1")[1] and agent.revision == 2
    # after registering again it tells the controller everything again
    assert client.reports == [{PA.id: "ACTIVE", PB.id: "ACTIVE"}, {PA.id: "ACTIVE"}]
    assert driver.applied[-1].ports == tuple(p for p in driver.applied[0].ports if p.port_id == PA.id)
