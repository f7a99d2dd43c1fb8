"""`netweave agent`: one per host. Register the chassis, watch its view, reconcile the datapath to it,
report the ports it wired.

The agent holds no state that matters: after a restart it registers again, fetches its whole view (its
epoch/revision are gone) and applies it, and because `apply` only changes differences, a datapath that is
already right is not touched (no duplicate devices or entries, no lost packets). While the controller is
away the datapath keeps the last view; when it is back the watch resumes from the last revision, or gets
the whole view if the controller restarted (a new epoch) or the agent fell too far behind.
"""

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from pyroute2 import IPRoute, netns

from netweave.agent.client import ControllerClient, ControllerError, ControllerUnavailable, NotRegistered
from netweave.agent.drivers import DatapathUnavailable, Driver
from netweave.control import views
from netweave.control.views import View

log = logging.getLogger(__name__)

WAIT_S = 10.0  # long-poll length; an empty answer also triggers a (no-op) reconcile
HEARTBEAT_S = 5.0
BACKOFF_MAX_S = 2.0


class Agent:
    def __init__(self, client: ControllerClient, driver: Driver, *, vtep_ip: str,
                 vm_netns_prefix: str | None = None, heartbeat_s: float = HEARTBEAT_S,
                 wait_s: float = WAIT_S, on_ready: Callable[[], None] | None = None) -> None:
        self.client = client
        self.driver = driver
        self.chassis = client.chassis
        self.vtep_ip = vtep_ip
        self.prefix = vm_netns_prefix
        self.heartbeat_s = heartbeat_s
        self.wait_s = wait_s
        self.on_ready = on_ready
        self.stopping = threading.Event()
        self.epoch = ""
        self.revision = -1
        self.view: View = views.empty()
        self.applied_revision: int | None = None
        self.reported: dict[str, str] = {}
        self.own_netns: dict[str, str] = {}  # port id -> namespace this agent created for it
        self.registered = threading.Event()
        self.applies = 0

    # ------------------------------------------------------------------ controller side
    def register(self) -> None:
        """Register (again), retrying until the controller and the datapath answer or we stop."""
        delay = 0.2
        while not self.stopping.is_set():
            try:
                caps = self.driver.capabilities()
                self.client.register(self.vtep_ip, self.driver.kind, caps)
                self.registered.set()
                log.info("chassis=%s registered vtep=%s datapath=%s", self.chassis, self.vtep_ip,
                         self.driver.kind)
                return
            except (ControllerUnavailable, DatapathUnavailable, NotRegistered) as exc:
                log.warning("chassis=%s cannot register yet: %s", self.chassis, exc)
            self.stopping.wait(delay)
            delay = min(delay * 2, BACKOFF_MAX_S)

    def _heartbeats(self) -> None:
        hb = ControllerClient(self.client.url, self.chassis)
        try:
            while not self.stopping.wait(self.heartbeat_s):
                try:
                    hb.heartbeat()
                except NotRegistered:
                    self.registered.clear()  # the watch loop registers again
                except (ControllerUnavailable, ControllerError) as exc:
                    log.debug("heartbeat failed: %s", exc)
        finally:
            hb.close()

    def absorb(self, answer: dict[str, Any]) -> bool:
        """Take a watch answer: a full view (resync) or diffs. True when the view changed."""
        if "full" in answer:
            self.view = answer["full"]
        elif answer.get("diffs"):
            for change in answer["diffs"]:
                self.view = views.patch(self.view, change)
        else:
            return False
        self.epoch, self.revision = answer["epoch"], answer["revision"]
        return True

    # ------------------------------------------------------------------ datapath side
    def _netns_for(self, entry: dict[str, Any]) -> str | None:
        return f"{self.prefix}{entry['label']}" if self.prefix else None

    def _ensure_netns(self) -> None:
        """Ports without a namespace in their binding profile get one of ours (`<prefix><label>`), made
        here and removed when the port leaves the view."""
        if not self.prefix:
            return
        wanted = {pid: f"{self.prefix}{e['label']}"
                  for pid, e in self.view["ports"].items() if not e.get("netns")}
        existing = set(netns.listnetns())
        for pid, name in wanted.items():
            if name not in existing:
                netns.create(name)
                with IPRoute(netns=name) as ipr:
                    ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
                self.own_netns[pid] = name
                log.info("chassis=%s port=%s created namespace %s", self.chassis, pid, name)
        for pid in [p for p in self.own_netns if p not in wanted]:
            with contextlib.suppress(OSError):
                netns.remove(self.own_netns[pid])
            del self.own_netns[pid]

    def reconcile(self) -> bool:
        """Apply the current view to the datapath and report port status; False if the datapath is
        not reachable (retried)."""
        try:
            self._ensure_netns()
            state = views.to_state(self.view, self._netns_for)
            result = self.driver.apply(state)
        except DatapathUnavailable as exc:
            log.warning("chassis=%s datapath unavailable: %s", self.chassis, exc)
            return False
        except (ValueError, RuntimeError, OSError) as exc:
            log.error("chassis=%s cannot apply revision %s: %s", self.chassis, self.revision, exc)
            return False
        self.applies += 1
        self.applied_revision = self.revision
        if result.get("changes"):
            log.info("chassis=%s revision=%s applied: %s", self.chassis, self.revision,
                     {k: v for k, v in result.items() if k != "errors"})
        errors: dict[str, str] = result.get("errors", {})
        lost: dict[str, str] = result.get("lost", {})
        for name, msg in errors.items():
            log.error("chassis=%s port device %s: %s", self.chassis, name, msg)
        statuses = {p.port_id: ("ERROR" if p.name in errors else "DOWN" if p.name in lost else "ACTIVE")
                    for p in state.ports if p.port_id}
        self._report(statuses)
        return True

    def _report(self, statuses: dict[str, str]) -> None:
        # forget ports that left the view first: one that comes back (moved away and back, set DOWN by the
        # controller meanwhile) must be reported again
        self.reported = {pid: s for pid, s in self.reported.items() if pid in statuses}
        changed = {pid: s for pid, s in statuses.items() if self.reported.get(pid) != s}
        if not changed:
            return
        try:
            self.client.report_ports(changed)
        except (ControllerUnavailable, NotRegistered, ControllerError) as exc:
            log.warning("chassis=%s status report failed (retried): %s", self.chassis, exc)
            return
        self.reported.update(changed)

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        self.register()
        beat = threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)
        beat.start()
        ready = False
        delay = 0.2
        healthy = True
        while not self.stopping.is_set():
            if not self.registered.is_set():
                self.register()
                self.reported = {}  # a fresh registration: tell the controller everything again
            try:
                answer = self.client.watch(self.revision, self.epoch, self.wait_s if healthy else 1.0)
                delay = 0.2
            except NotRegistered:
                self.registered.clear()
                continue
            except (ControllerUnavailable, ControllerError) as exc:
                log.warning("chassis=%s controller unavailable, datapath keeps the last view: %s",
                            self.chassis, exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            self.absorb(answer)
            healthy = self.reconcile()  # a no-op when nothing changed; repairs a restarted datapath
            if healthy and not ready:
                ready = True
                if self.on_ready is not None:
                    self.on_ready()
        self.client.close()

    def stop(self) -> None:
        self.stopping.set()

