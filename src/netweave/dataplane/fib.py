"""The L2 FIB: (vni, mac) -> a local port or a remote VTEP, with learning, moves and ageing.

Entries have an origin. Learned entries age out and move when the MAC shows up elsewhere; static
(configuration) and control (controller, EVPN) entries are never overridden by learning, so a spoofed
source MAC cannot hijack a known address.
"""

from dataclasses import dataclass
from typing import Literal

Origin = Literal["learned", "static", "control"]
LearnResult = Literal["new", "moved", "refreshed", "ignored"]


@dataclass(slots=True)
class FibEntry:
    port: str | None  # local port name, or
    vtep: str | None  # remote VTEP IP
    origin: Origin
    last_seen: float

    @property
    def destination(self) -> str:
        return self.port if self.port is not None else f"vtep:{self.vtep}"


class L2Fib:
    """Owned by one Dataplane; every change bumps `revision` so cached decisions are invalidated."""

    def __init__(self, aging_s: float = 300.0) -> None:
        self.aging_s = aging_s
        self.revision = 0
        self._entries: dict[tuple[int, bytes], FibEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, vni: int, mac: bytes) -> FibEntry | None:
        return self._entries.get((vni, mac))

    def set(self, vni: int, mac: bytes, *, port: str | None = None, vtep: str | None = None,
            origin: Origin = "static", now: float = 0.0) -> None:
        """Install a configured or control-plane entry (replaces whatever was there)."""
        if (port is None) == (vtep is None):
            raise ValueError("a FIB entry points at exactly one of a port or a VTEP")
        self._entries[(vni, mac)] = FibEntry(port, vtep, origin, now)
        self.revision += 1

    def remove(self, vni: int, mac: bytes) -> bool:
        if self._entries.pop((vni, mac), None) is None:
            return False
        self.revision += 1
        return True

    def learn(self, vni: int, mac: bytes, now: float, *, port: str | None = None,
              vtep: str | None = None) -> LearnResult:
        """Learn `mac` as seen behind `port` or `vtep`. Multicast/broadcast sources are never learned."""
        if mac[0] & 1:
            return "ignored"
        key = (vni, mac)
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = FibEntry(port, vtep, "learned", now)
            self.revision += 1
            return "new"
        if entry.origin != "learned":
            return "ignored"
        if entry.port == port and entry.vtep == vtep:
            entry.last_seen = now  # no revision bump: the forwarding decision is unchanged
            return "refreshed"
        entry.port, entry.vtep, entry.last_seen = port, vtep, now
        self.revision += 1
        return "moved"

    def age(self, now: float) -> list[tuple[int, bytes]]:
        """Remove learned entries not seen for `aging_s`; returns the keys removed."""
        limit = now - self.aging_s
        gone = [k for k, e in self._entries.items() if e.origin == "learned" and e.last_seen < limit]
        for k in gone:
            del self._entries[k]
        if gone:
            self.revision += 1
        return gone

    def flush(self, vni: int | None = None, *, port: str | None = None, origin: Origin | None = None) -> int:
        """Remove entries matching every given criterion (a VNI, a port, an origin)."""
        gone = [k for k, e in self._entries.items()
                if (vni is None or k[0] == vni) and (port is None or e.port == port)
                and (origin is None or e.origin == origin)]
        for k in gone:
            del self._entries[k]
        if gone:
            self.revision += 1
        return len(gone)

    def entries(self, vni: int | None = None) -> list[tuple[int, str, FibEntry]]:
        return [(k[0], k[1].hex(":"), e) for k, e in sorted(self._entries.items())
                if vni is None or k[0] == vni]
