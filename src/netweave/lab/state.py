"""What a lab owns, written down before it exists, and the sweep that removes it.

The run directory `/run/netweave/lab/<name>/` holds `state.json`, the controller's database and sockets
and one log per process. Every namespace is recorded *before* it is created and every process as soon
as it is started, so `down` after a `kill -9` of the lab (even mid-build) finds everything. Ownership is
proven, never guessed from a process name (containerlab's ownership tags, DESIGN.md):

- a process is the lab's if its command line contains the run directory (every command the lab starts
  names a file in it), so a recycled PID is never killed;
- a namespace is the lab's if state.json names it or its name starts with `<name>-` (the lab name has no
  `-`, so the prefix is the lab's alone; the agents create VM namespaces for foreign ports under it);
- a process is in the lab if its `/proc/PID/ns/net` is one of those namespaces.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netweave.lab import netns
from netweave.lab.errors import LabError

RUN_ROOT = Path("/run/netweave/lab")
STATE_FILE = "state.json"
TERM_GRACE_S = 5.0


def run_dir(name: str) -> Path:
    return RUN_ROOT / name


@dataclass
class Proc:
    role: str  # controller | vtep | agent
    pid: int
    log: str
    host: str | None = None
    netns: str | None = None


@dataclass
class State:
    """The lab as built so far. `save()` after every change: the file is the lab's memory across crashes."""

    name: str
    api_url: str
    spec: dict[str, Any]
    namespaces: list[str] = field(default_factory=list)
    procs: list[Proc] = field(default_factory=list)
    networks: dict[str, str] = field(default_factory=dict)  # lab network name -> network id
    subnets: dict[str, list[str]] = field(default_factory=dict)  # lab network name -> its subnet ids
    ports: dict[str, str] = field(default_factory=dict)  # VM name -> port id
    started_at: float = field(default_factory=time.time)

    @property
    def rundir(self) -> Path:
        return run_dir(self.name)

    @property
    def tag(self) -> str:
        """The string every command line of this lab's processes contains."""
        return f"{self.rundir}/"

    def save(self) -> None:
        self.rundir.mkdir(parents=True, exist_ok=True)
        tmp = self.rundir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(self.rundir / STATE_FILE)  # atomic: a crash leaves the old file or the new one

    @classmethod
    def load(cls, name: str) -> "State | None":
        """The recorded state, or None if there is none (or it is unreadable: `down` still sweeps)."""
        try:
            raw = json.loads((run_dir(name) / STATE_FILE).read_text())
            raw["procs"] = [Proc(**p) for p in raw.get("procs", [])]
            return cls(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def add_netns(self, ns: str) -> None:
        """Record, then create: a crash between the two leaves a name `down` tolerates."""
        if ns not in self.namespaces:
            self.namespaces.append(ns)
            self.save()
        netns.create(ns)

    def start(
        self, role: str, argv: list[str], *, host: str | None = None, ns: str | None = None
    ) -> subprocess.Popen[bytes]:
        """Start a lab process in its own session (a Ctrl-C of `lab up` must not take the lab down),
        output to `<rundir>/<role or host.role>.log`, and record its PID at once."""
        if not any(self.tag in arg for arg in argv):
            raise AssertionError(f"a lab command line must name the run dir: {argv}")
        log = self.rundir / (f"{host}.{role}.log" if host else f"{role}.log")
        # nsenter --net execs (same PID) and, unlike `ip netns exec`, keeps the root mount namespace: a
        # namespace an agent creates (bind mount under /run/netns) must be visible to the VTEP and to us
        cmd = (["nsenter", f"--net={netns.NETNS_DIR / ns}", "--"] if ns else []) + argv
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # "ready"/"listening" must reach the log now
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.procs.append(Proc(role=role, pid=proc.pid, log=str(log), host=host, netns=ns))
        self.save()
        return proc

    def live(self) -> list[Proc]:
        """Recorded processes that are still running (and still ours)."""
        return [p for p in self.procs if owned(p.pid, self.tag)]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Running, not a zombie (a zombie holds no namespace and cannot be killed any deader)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def owned(pid: int, tag: str) -> bool:
    return pid != os.getpid() and alive(pid) and tag in _cmdline(pid)


def _pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _in_netns(ids: set[tuple[int, int]]) -> list[int]:
    out = []
    for pid in _pids():
        try:
            st = os.stat(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in ids and pid != os.getpid() and alive(pid):
            out.append(pid)
    return out


def _signal(pid: int, sig: int) -> None:
    """Signal the process group the lab started (the process is its leader), else the process alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
                return
        except ProcessLookupError:
            return
        os.kill(pid, sig)


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if alive(p)]
    return left


@dataclass
class DownReport:
    processes: int = 0
    namespaces: int = 0
    rundir: bool = False
    stuck: list[str] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.processes or self.namespaces or self.rundir)


def down(name: str) -> DownReport:
    """Remove everything lab `name` made: its processes, namespaces (and so every device in them) and
    run directory. Idempotent, and works without state.json (the prefix and tag sweeps)."""
    report = DownReport()
    state = State.load(name)
    tag = f"{run_dir(name)}/"
    # 1. the lab's own processes: recorded ones whose command line still proves them ours, plus any
    #    `-m netweave.cli` process naming the run dir (started in the instant before it was recorded)
    recorded = [p.pid for p in state.procs] if state else []
    ours = {pid for pid in recorded if owned(pid, tag)}
    ours |= {pid for pid in _pids() if "-m netweave.cli " in _cmdline(pid) and owned(pid, tag)}
    for pid in ours:
        _signal(pid, signal.SIGTERM)
    stubborn = [pid for pid in _wait_gone(sorted(ours), TERM_GRACE_S) if owned(pid, tag)]
    for pid in stubborn:
        _signal(pid, signal.SIGKILL)
    _wait_gone(stubborn, TERM_GRACE_S)
    report.processes += len(ours)
    # 2. whatever else runs inside the lab's namespaces (pings, shells, a VM's own processes)
    names = set(state.namespaces if state else []) | {n for n in netns.names() if n.startswith(f"{name}-")}
    ids = {i for i in (netns.identity(n) for n in names) if i is not None}
    inside = [pid for pid in (_in_netns(ids) if ids else []) if pid not in ours]
    for pid in inside:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    report.processes += len(inside)
    _wait_gone(inside, TERM_GRACE_S)
    # still ours by command line, or still inside (a PID that exited and was reused is neither)
    left = {pid for pid in ours if owned(pid, tag)} | set(_in_netns(ids) if ids else [])
    report.stuck += [f"process {pid}" for pid in sorted(left)]
    # 3. the namespaces: their devices (veths, bridge, TAPs) go with them
    for ns in sorted(names):
        if netns.remove(ns):
            report.namespaces += 1
    # 4. the run directory (database, sockets, logs, state.json) last: until here it is the record
    rd = run_dir(name)
    if rd.exists():
        shutil.rmtree(rd, ignore_errors=True)
        report.rundir = True
        if rd.exists():
            report.stuck.append(str(rd))
    if report.stuck:
        raise LabError(f"lab {name}: could not remove {', '.join(report.stuck)}")
    return report


def already_up(name: str) -> bool:
    state = State.load(name)
    return state is not None and bool(state.live())


def leftovers(name: str) -> bool:
    """Anything of lab `name` still around (a crashed run): the run dir or a namespace with its prefix."""
    return run_dir(name).exists() or any(n.startswith(f"{name}-") for n in netns.names())
