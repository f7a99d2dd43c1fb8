"""The VTEP's local control socket: one JSON object per line each way (documented in docs/vtep.md).

The agent of a later issue programs the daemon through it, as ovn-controller programs ovs-vswitchd.
Requests are handled inside the forwarding loop between batches, so a change is atomic with respect to
packets: a frame sees the tables before or after it, never half of it.
"""

import contextlib
import json
import os
import socket
from collections.abc import Callable
from typing import Any

from netweave.datapath.userspace import UserspaceDatapath
from netweave.model import Network, Port, Remote
from netweave.model.wire import ips_of, state_from_json, state_to_json

MAX_REQUEST = 1 << 20


class ControlServer:
    def __init__(self, path: str, datapath: UserspaceDatapath) -> None:
        self.path = path
        self.dp = datapath
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o600)
        self.sock.listen(16)
        self.sock.setblocking(False)
        self._buffers: dict[int, bytes] = {}
        self.ops: dict[str, Callable[[dict[str, Any]], Any]] = {
            "stats": lambda a: self.dp.stats(),
            "fib": self._fib,
            "bindings": lambda a: [{"vni": k[0], "ip": k[1], "mac": b.mac, "origin": b.origin}
                                   for k, b in sorted(self.dp.dp.bindings.items())],
            "capabilities": lambda a: self.dp.capabilities(),
            "add_network": self._add_network,
            "remove_network": lambda a: self.dp.remove_network(int(a["vni"])),
            "add_port": lambda a: self.dp.add_port(Port(name=a["name"], vni=int(a["vni"]), mac=a["mac"],
                                                        ips=ips_of(a.get("ip")), netns=a.get("netns"))),
            "remove_port": lambda a: self.dp.remove_port(a["name"]),
            "add_remote": lambda a: self.dp.add_remote(
                Remote(vni=int(a["vni"]), mac=a["mac"], vtep=a["vtep"], ips=ips_of(a.get("ip"))),
                a.get("origin", "static")),
            "remove_remote": lambda a: self.dp.dp.remove_remote(int(a["vni"]), a["mac"]),
            "add_binding": lambda a: self.dp.dp.add_binding(int(a["vni"]), a["ip"], a["mac"]),
            "remove_binding": lambda a: self.dp.dp.remove_binding(int(a["vni"]), a["ip"]),
            "apply": lambda a: self.dp.apply(state_from_json({k: v for k, v in a.items() if k != "op"})),
            "state": lambda a: state_to_json(self.dp.state()),
            "set_flood": lambda a: self.dp.dp.set_flood(int(a["vni"]), vteps=tuple(a.get("flood", ())),
                                                        group=a.get("multicast_group")),
        }
        datapath.register(self.sock, self._accept)

    def _fib(self, a: dict[str, Any]) -> list[dict[str, Any]]:
        vni = a.get("vni")
        return [{"vni": v, "mac": mac, "port": e.port, "vtep": e.vtep, "origin": e.origin}
                for v, mac, e in self.dp.dp.fib.entries(None if vni is None else int(vni))]

    def _add_network(self, a: dict[str, Any]) -> None:
        known = {"vni", "encap", "mode", "flood", "multicast_group", "arp_suppression", "unknown_arp",
                 "unknown_unicast"}
        unknown = set(a) - known - {"op"}
        if unknown:
            raise ValueError(f"unknown network attribute(s): {', '.join(sorted(unknown))}")
        args = {k: v for k, v in a.items() if k in known}
        args["vni"] = int(args["vni"])
        args["flood"] = tuple(args.get("flood", ()))
        self.dp.add_network(Network(**args))

    def _accept(self, sock: socket.socket) -> None:
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        self.dp.register(conn, self._serve)
        self._buffers[conn.fileno()] = b""

    def _serve(self, conn: socket.socket) -> None:
        fd = conn.fileno()
        try:
            chunk = conn.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.dp.unregister(conn)
            self._buffers.pop(fd, None)
            conn.close()
            return
        buf = self._buffers.get(fd, b"") + chunk
        if len(buf) > MAX_REQUEST:
            buf = b""
            self._reply(conn, {"ok": False, "error": "request too large"})
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            self._reply(conn, self.handle(line))
        self._buffers[fd] = buf

    def _reply(self, conn: socket.socket, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode() + b"\n"
        conn.setblocking(True)
        conn.settimeout(2.0)
        try:
            conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.setblocking(False)

    def handle(self, line: bytes) -> dict[str, Any]:
        """One request -> one reply; errors are replies, never exceptions out of the loop."""
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or not isinstance(req.get("op"), str):
                raise ValueError('a request is a JSON object with an "op" string')
            fn = self.ops.get(req["op"])
            if fn is None:
                raise ValueError(f"unknown op {req['op']!r}; known: {', '.join(sorted(self.ops))}")
            return {"ok": True, "result": fn(req)}
        except KeyError as exc:
            return {"ok": False, "error": f"missing or unknown: {exc.args[0]}"}
        except (ValueError, TypeError, OSError) as exc:
            return {"ok": False, "error": " ".join(str(exc).split())}

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class VtepUnreachable(RuntimeError):  # noqa: N818 - a state, like ConnectionError
    """No daemon answered at the socket (not started yet, restarting, gone): try again later."""


def request(path: str, op: str, timeout_s: float = 5.0, **args: Any) -> Any:
    """Client side: send one request to the daemon at `path`; RuntimeError with its message when the
    daemon refuses it, VtepUnreachable (a RuntimeError) when there is no daemon to ask."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        try:
            s.connect(path)
        except OSError as exc:
            raise VtepUnreachable(f"cannot reach the VTEP at {path}: {exc.strerror}") from None
        s.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                raise VtepUnreachable("the VTEP closed the connection without answering")
            buf += chunk
    reply = json.loads(buf)
    if not reply.get("ok"):
        raise RuntimeError(reply.get("error", "request failed"))
    return reply.get("result")
