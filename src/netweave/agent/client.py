"""The agent's side of the controller's agent API (docs/agent-protocol.md), over TCP or a Unix socket."""

from typing import Any

import httpx

PREFIX = "/netweave/v1/chassis"


class ControllerUnavailable(Exception):  # noqa: N818 - a state, not a bug
    """The controller cannot be reached (down, restarting, network): retry later."""


class NotRegistered(Exception):  # noqa: N818
    """The controller does not know this chassis (a fresh store, or it was deleted): register again."""


class ControllerError(Exception):
    """The controller refused a request; the message is its own."""


def make_client(url: str, timeout_s: float = 10.0) -> httpx.Client:
    """`http://host:port` or `unix:/path/to/controller.sock`."""
    if url.startswith("unix:"):
        path = url.removeprefix("unix:").removeprefix("//")
        if not path:
            raise ValueError(f"--controller {url!r}: no socket path")
        return httpx.Client(transport=httpx.HTTPTransport(uds=path), base_url="http://controller",
                            timeout=timeout_s)
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"--controller {url!r}: expected http://HOST:PORT or unix:/PATH")
    return httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)


class ControllerClient:
    def __init__(self, url: str, chassis: str) -> None:
        self.url = url
        self.chassis = chassis
        self.http = make_client(url)

    def _call(self, method: str, path: str, *, timeout_s: float | None = None, **kwargs: Any) -> Any:
        try:
            if timeout_s is not None:
                kwargs["timeout"] = timeout_s
            r = self.http.request(method, f"{PREFIX}/{self.chassis}{path}", **kwargs)
        except httpx.TransportError as exc:
            raise ControllerUnavailable(f"{self.url}: {exc.__class__.__name__}: {exc}") from None
        if r.status_code == 404 and path != "":
            raise NotRegistered(self.chassis)
        if r.status_code >= 500:
            raise ControllerUnavailable(f"{self.url}: HTTP {r.status_code}")
        if r.status_code >= 400:
            try:
                message = r.json()["NeutronError"]["message"]
            except (ValueError, KeyError, TypeError):
                message = r.text
            raise ControllerError(f"HTTP {r.status_code}: {message}")
        return r.json() if r.content else None

    def register(self, vtep_ip: str, datapath: str, capabilities: dict[str, Any]) -> dict[str, Any]:
        body = {"chassis": {"vtep_ip": vtep_ip, "encaps": list(capabilities.get("encaps", ["vxlan"])),
                            "datapath": datapath, "capabilities": capabilities}}
        out: dict[str, Any] = self._call("PUT", "", json=body)
        return out

    def heartbeat(self) -> None:
        self._call("POST", "/heartbeat")

    def watch(self, since: int, epoch: str, wait_s: float) -> dict[str, Any]:
        params = {"since": since, "epoch": epoch, "wait": wait_s}
        out: dict[str, Any] = self._call("GET", "/view", params=params, timeout_s=wait_s + 10)
        return out

    def report_ports(self, statuses: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = self._call("PUT", "/ports", json={"ports": statuses})
        return out

    def close(self) -> None:
        self.http.close()
