"""Datapath drivers as the agent sees them: `capabilities()`, `apply(state)` (idempotent reconcile).

The userspace driver does not forward anything itself: it programs the long-lived `netweave vtep` daemon
over its control socket, so the agent can die and restart while packets keep flowing. The kernel driver
programs Linux itself, which forwards on its own.
"""

from typing import Any, Protocol

from netweave.model import DatapathState
from netweave.model.wire import state_to_json
from netweave.vtep.control import VtepUnreachable, request


class DatapathUnavailable(Exception):  # noqa: N818 - a state
    """The datapath cannot be programmed now (the VTEP daemon is not running yet)."""


class Driver(Protocol):
    kind: str

    def capabilities(self) -> dict[str, Any]: ...

    def apply(self, state: DatapathState) -> dict[str, Any]: ...


class UserspaceDriver:
    kind = "userspace"

    def __init__(self, control_socket: str) -> None:
        self.control_socket = control_socket

    def _request(self, op: str, **args: Any) -> Any:
        try:
            return request(self.control_socket, op, timeout_s=30.0, **args)
        except VtepUnreachable as exc:
            raise DatapathUnavailable(str(exc)) from None
        except OSError as exc:
            raise DatapathUnavailable(f"{self.control_socket}: {exc}") from None

    def capabilities(self) -> dict[str, Any]:
        caps: dict[str, Any] = self._request("capabilities")
        return caps

    def apply(self, state: DatapathState) -> dict[str, Any]:
        out: dict[str, Any] = self._request("apply", **state_to_json(state))
        return out


class KernelDriver:
    """The Linux kernel as the datapath (vxlan, bridge, fdb, neighbours), programmed in-process: the
    kernel keeps forwarding while the agent is away, so nothing else needs to be long-lived."""

    kind = "kernel"

    def __init__(self, vtep_ip: str, *, underlay_mtu: int = 1500) -> None:
        from netweave.datapath.kernel import KernelDatapath  # noqa: PLC0415 - pyroute2 work only here

        self.datapath = KernelDatapath(vtep_ip, underlay_mtu=underlay_mtu)

    def capabilities(self) -> dict[str, Any]:
        return self.datapath.capabilities()

    def apply(self, state: DatapathState) -> dict[str, Any]:
        return self.datapath.apply(state)
