"""The userspace datapath: the `dataplane` pipeline on real I/O (TAPs for VM ports, sockets for tunnels).

One thread, one selector. Each readable descriptor is drained in a batch (up to BATCH frames) before the
next, so a busy port cannot starve the others for long. Every frame goes through `Dataplane.from_port` /
`from_tunnel`; on the flow-cached path that is a dict lookup, the rest is encapsulation and syscalls.
Malformed underlay packets are counted (`bad_header`, `wrong_encap`, `critical_option`) and dropped.
"""

import dataclasses
import errno
import logging
import os
import selectors
import struct
import time
from collections.abc import Callable
from typing import Any

from pyroute2 import netns

from netweave.datapath.gro import PLAIN, VNET_HDR_LEN, Coalescer
from netweave.datapath.sockets import UnderlaySockets
from netweave.datapath.tap import NamespaceGone, Tap, TapError, open_tap
from netweave.dataplane import PORT, VTEP, Dataplane
from netweave.dataplane.pipeline import TUNNEL_TARGET
from netweave.model import DatapathState, Network, Port, Remote, Router
from netweave.packet import DecodeError, Geneve, Gre, Vxlan, flow_hash, nvgre_key
from netweave.packet.encap import EPHEMERAL_LOW, EPHEMERAL_SPAN
from netweave.packet.l2 import ETH_P_TEB
from netweave.packet.tunnel import GENEVE_PORT, VXLAN_FLAG_I, VXLAN_PORT

log = logging.getLogger(__name__)

BATCH = 64
MAX_FRAME = 65536
AGE_EVERY_S = 5.0
_UDP = struct.Struct("!HHHH")
_VXLAN_FIELDS = Vxlan._unpack_fixed  # the declaration's generated decoder, without the classmethod hop
EPHEMERAL_MASK = EPHEMERAL_SPAN - 1  # entropy_port(h) == EPHEMERAL_LOW | (h & mask): the span is 2**14
assert EPHEMERAL_LOW & EPHEMERAL_MASK == 0 and EPHEMERAL_SPAN & EPHEMERAL_MASK == 0


class _Encapsulator:
    """Per-network sender: the tunnel header is built once from the codecs, per packet only the UDP
    source port (or NVGRE FlowID) changes with the inner flow. `fixed_source_port` pins the UDP source
    port instead (every flow of the network then hashes onto one underlay ECMP path: for comparison)."""

    def __init__(self, net: Network, sockets: UnderlaySockets, fixed_source_port: int | None = None) -> None:
        self.encap = net.encap
        self.sockets = sockets
        self.fixed_source_port = fixed_source_port
        if net.encap == "vxlan":
            self.header, self.dport = Vxlan(vni=net.vni).build(), VXLAN_PORT
        elif net.encap == "geneve":
            opts = list(net.geneve_options)
            self.header = Geneve(vni=net.vni, options=opts, c=int(any(o.critical for o in opts))).build()
            self.dport = GENEVE_PORT
        elif net.encap == "gre":
            self.header, self.dport = Gre(key=net.vni, protocol=ETH_P_TEB).build(), 0
        else:
            self.header, self.dport = b"", 0
            self.vni = net.vni
        self.udp_len = 8 + len(self.header)
        self._udp_sendto = sockets.udp_tx.sendto

    def send(self, frame: bytes, dst: str) -> int:
        h = flow_hash(frame)
        if self.dport:
            # one copy of the frame: the 16 header bytes are joined first
            sport = self.fixed_source_port or EPHEMERAL_LOW | (h & EPHEMERAL_MASK)
            hdr = _UDP.pack(sport, self.dport, self.udp_len + len(frame), 0)
            return self._udp_sendto((hdr + self.header) + frame, (dst, 0))
        if self.encap == "nvgre":
            hdr = Gre(key=nvgre_key(self.vni, h & 0xFF), protocol=ETH_P_TEB).build()
            return self.sockets.gre_tx.sendto(hdr + frame, (dst, 0))
        return self.sockets.gre_tx.sendto(self.header + frame, (dst, 0))


class UserspaceDatapath:
    """Owns the TAPs, the underlay sockets and the Dataplane tables; `run()` forwards until `stop()`."""

    def __init__(
        self,
        vtep_ip: str,
        *,
        underlay_mtu: int = 1500,
        aging_s: float = 300.0,
        fixed_source_port: int | None = None,
    ) -> None:
        #: None: the outer UDP source port is hashed from the inner flow (RFC 7348); else always this port
        self.fixed_source_port = fixed_source_port
        self.dp = Dataplane(vtep_ip, underlay_mtu=underlay_mtu, aging_s=aging_s)
        self.sockets = UnderlaySockets(vtep_ip)
        self.sel = selectors.DefaultSelector()
        self.taps: dict[str, Tap] = {}
        #: receive coalescing per TAP: segments decapsulated in one batch reach the VM as one frame
        self.gro: dict[str, Coalescer] = {}
        self._tap_by_fd: dict[int, str] = {}
        self.encaps: dict[int, _Encapsulator] = {}
        #: senders for routed frames on VNIs that are not local networks: routers' L3 VNIs (VXLAN) and,
        #: for asymmetric IRB, the other subnets of a router
        self.route_encaps: dict[int, _Encapsulator] = {}
        self._stopping = False
        self._last_age = time.monotonic()
        self._vni_encap: dict[int, str] = {}
        decaps = {"vxlan": self._decap_vxlan, "geneve": self._decap_geneve, "gre": self._decap_gre}
        for sock, encap in self.sockets.receivers():
            self.sel.register(sock, selectors.EVENT_READ, (self._on_underlay, (sock, decaps[encap])))

    # ---------------------------------------------------------------- configuration
    def capabilities(self) -> dict[str, Any]:
        return {"datapath": "userspace", "encaps": ["vxlan", "geneve", "gre", "nvgre"],
                "arp_suppression": True, "nd_suppression": True, "multicast": True, "routing": True,
                "dhcp": True}

    def add_network(self, net: Network) -> None:
        self.dp.add_network(net)
        self.encaps[net.vni] = _Encapsulator(net, self.sockets, self.fixed_source_port)
        self._vni_encap[net.vni] = net.encap
        if net.multicast_group:
            self.sockets.join(net.multicast_group)

    def remove_network(self, vni: int) -> None:
        ports = [p for p, spec in self.dp.ports.items() if spec.vni == vni]
        for name in ports:
            self.remove_port(name)
        self.dp.remove_network(vni)
        self.encaps.pop(vni, None)
        self._vni_encap.pop(vni, None)

    def add_port(self, port: Port) -> None:
        """Create (or re-attach to) the port's TAP in its namespace; MTU = the network's tenant MTU."""
        if port.vni not in self.dp.networks:
            raise KeyError(f"no network with vni {port.vni}")
        if port.name in self.taps:
            self.remove_port(port.name)
        tap = open_tap(port.name, port.netns, mac=port.mac, mtu=self.dp.inner_mtu(port.vni), vnet_hdr=True)
        self.dp.add_port(port)
        self.taps[port.name] = tap
        self.gro[port.name] = Coalescer()
        self._tap_by_fd[tap.fd] = port.name
        self.sel.register(tap.fd, selectors.EVENT_READ, (self._on_tap, port.name))
        log.info("port=%s vni=%s netns=%s %s", port.name, port.vni, port.netns,
                 "created" if tap.created else "re-attached")

    def remove_port(self, name: str, *, delete_device: bool = True) -> None:
        tap = self.taps.pop(name, None)
        self.gro.pop(name, None)
        if tap is not None:
            self.sel.unregister(tap.fd)
            self._tap_by_fd.pop(tap.fd, None)
            tap.close(remove=delete_device)
        if name in self.dp.ports:
            self.dp.remove_port(name)

    def _lost(self, name: str, exc: OSError) -> None:
        """The TAP failed under us (its namespace was deleted with the VM: reads fail with EBADFD). Stop
        polling it, or the loop would spin on it; the port is forgotten, so the next `apply` tries it
        again and reports it lost (DOWN) while its namespace is missing."""
        log.warning("port=%s device lost: %s", name, exc.strerror or exc)
        tap = self.taps.pop(name, None)
        self.gro.pop(name, None)
        if tap is not None:
            self.sel.unregister(tap.fd)
            self._tap_by_fd.pop(tap.fd, None)
            tap.close(remove=False)
        if name in self.dp.ports:
            self.dp.remove_port(name)

    def add_remote(self, remote: Remote, origin: str = "static") -> None:
        self.dp.add_remote(remote, origin)

    def set_routers(self, routers: tuple[Router, ...]) -> None:
        """Hold exactly `routers` (replacing changed ones whole) and the tunnel senders they need."""
        want = {r.name: r for r in routers}
        for name in [n for n, t in self.dp.routers.items() if want.get(n) != t.spec]:
            self.dp.remove_router(name)
        for name, router in want.items():
            if name not in self.dp.routers:
                self.dp.add_router(router)
        needed = {r.l3_vni: Network(vni=r.l3_vni, encap="vxlan") for r in routers}
        for r in routers:
            for iface in r.interfaces:
                needed.setdefault(iface.vni, Network(vni=iface.vni, encap=iface.encap))
        self.route_encaps = {vni: self.route_encaps[vni] if vni in self.route_encaps and
                             self.route_encaps[vni].encap == net.encap else
                             _Encapsulator(net, self.sockets, self.fixed_source_port)
                             for vni, net in needed.items()}

    def remotes(self) -> dict[tuple[int, str], Remote]:
        """The remote MACs configured (not learned): FIB entries to a VTEP plus their bindings."""
        ips: dict[tuple[int, str], list[str]] = {}
        for (vni, ip), b in self.dp.bindings.items():
            if b.origin != "learned":
                ips.setdefault((vni, b.mac), []).append(ip)
        return {(vni, mac): Remote(vni=vni, mac=mac, vtep=e.vtep, ips=tuple(sorted(ips.get((vni, mac), ()))))
                for vni, mac, e in self.dp.fib.entries() if e.vtep is not None and e.origin != "learned"}

    def state(self) -> DatapathState:
        return DatapathState(networks=tuple(n.spec for n in self.dp.networks.values()),
                             ports=tuple(self.dp.ports.values()), remotes=tuple(self.remotes().values()),
                             routers=tuple(t.spec for t in self.dp.routers.values()))

    def apply(self, want: DatapathState) -> dict[str, Any]:
        """Make the datapath hold exactly `want`: compare with what it holds and change only the
        difference (nothing at all when they are equal). A port whose device cannot be made is reported
        in `errors` and the rest still applied. Existing TAPs are kept when only a port's bindings change,
        so the VM never sees its link flap."""
        out: dict[str, Any] = {"changes": 0, "errors": {}, "lost": {}}

        def note(table: str, what: str, key: object) -> None:
            out.setdefault(table, {}).setdefault(what, []).append(key)
            out["changes"] += 1

        want_nets = {n.vni: n for n in want.networks}
        want_ports = {p.name: p for p in want.ports}
        want_remotes = {(r.vni, r.mac): dataclasses.replace(r, ips=tuple(sorted(r.ips)))
                        for r in want.remotes}
        if len(want_nets) != len(want.networks) or len(want_ports) != len(want.ports):
            raise ValueError("a vni or a port name appears twice")
        for name in [n for n, p in self.dp.ports.items()
                     if n not in want_ports or want_ports[n].vni not in want_nets]:
            self.remove_port(name)
            note("ports", "removed", name)
        for vni in [v for v in self.dp.networks if v not in want_nets]:
            self.remove_network(vni)
            note("networks", "removed", vni)
        for vni, net in want_nets.items():
            old = self.dp.networks.get(vni)
            if old is None or old.spec != net:
                self.add_network(net)
                note("networks", "added" if old is None else "updated", vni)
        # our TAP's open file keeps its namespace alive after `ip netns del`: a name gone from the list is a
        # VM gone, and letting go of the TAP is what lets the kernel finish deleting it
        namespaces = set(netns.listnetns())
        for name, port in want_ports.items():
            if port.netns is not None and port.netns not in namespaces:
                if name in self.taps:
                    self._lost(name, OSError(errno.ENOENT, f"network namespace {port.netns!r} was deleted"))
                out["lost"][name] = f"network namespace {port.netns!r} does not exist"
                continue
            have = self.dp.ports.get(name)
            if have == port and name in self.taps:
                continue
            try:
                if have is not None and name in self.taps and (have.vni, have.mac, have.netns) == (
                        port.vni, port.mac, port.netns):
                    self.dp.add_port(port)  # bindings or id changed: the TAP stays as it is
                else:
                    self.add_port(port)
            except NamespaceGone as exc:
                out["lost"][name] = str(exc)  # the VM is gone (or not yet there): DOWN, not ERROR
                if name in self.dp.ports:
                    self.dp.remove_port(name)
                continue
            except (TapError, KeyError, ValueError) as exc:
                out["errors"][name] = " ".join(str(exc).split())
                continue
            note("ports", "added" if have is None else "updated", name)
        have_remotes = self.remotes()
        for key in [k for k in have_remotes if k not in want_remotes]:
            self.dp.remove_remote(*key)
            note("remotes", "removed", f"{key[0]}/{key[1]}")
        for key, remote in want_remotes.items():
            if have_remotes.get(key) != remote:
                if key in have_remotes:
                    self.dp.remove_remote(*key)
                self.add_remote(remote, "control")
                note("remotes", "added" if key not in have_remotes else "updated", f"{key[0]}/{key[1]}")
        have_routers = {n: t.spec for n, t in self.dp.routers.items()}
        want_routers = {r.name: r for r in want.routers}
        if have_routers != want_routers:
            for name in sorted(set(have_routers) | set(want_routers)):
                if have_routers.get(name) != want_routers.get(name):
                    what = "removed" if name not in want_routers else (
                        "added" if name not in have_routers else "updated")
                    note("routers", what, name)
            self.set_routers(want.routers)
        return out

    def register(self, fileobj: Any, callback: Callable[[Any], None]) -> None:
        """Let a service (the control socket) share the loop: `callback(fileobj)` when readable."""
        self.sel.register(fileobj, selectors.EVENT_READ, (lambda _e, f=fileobj: callback(f), None))

    def unregister(self, fileobj: Any) -> None:
        self.sel.unregister(fileobj)

    def stats(self) -> dict[str, object]:
        return self.dp.snapshot()

    # ---------------------------------------------------------------- forwarding
    def _emit(self, targets: tuple[tuple[int, str], ...], frame: bytes, vni: int) -> None:
        """Send `frame` to every target and count what was really sent (a full queue is a drop)."""
        counters = self.dp.counters
        n = len(frame)
        for kind, name in targets:
            try:
                if kind == PORT:
                    tap = self.taps.get(name)
                    if tap is None:
                        continue
                    for held in self.gro[name].flush():  # keep the order of what was coalesced
                        os.write(tap.fd, held)
                    os.write(tap.fd, PLAIN + frame)
                    c = counters.port[name]
                elif kind == TUNNEL_TARGET:  # routed: the VNI is in the target, "<vni> <vtep>"
                    out_vni, vtep = name.split(" ", 1)
                    routed_vni = int(out_vni)
                    enc = self.encaps.get(routed_vni) or self.route_encaps[routed_vni]
                    enc.send(frame, vtep)
                    c = counters.vni.get(routed_vni) or counters.vni[vni]
                else:
                    self.encaps[vni].send(frame, name)
                    c = counters.vni[vni]
            except OSError as exc:
                reason = "tx_full" if exc.errno in (errno.EAGAIN, errno.ENOBUFS) else "tx_error"
                counters.drop(reason, vni, name if kind == PORT else None)
                continue
            c["tx_frames"] += 1
            c["tx_bytes"] += n

    def _on_tap(self, name: str) -> None:
        tap = self.taps.get(name)
        if tap is None:
            return
        dp, now, fd, read = self.dp, time.monotonic(), tap.fd, os.read
        vni = dp.ports[name].vni
        from_port, send, vc = dp.from_port, self.encaps[vni].send, dp.counters.vni[vni]
        for _ in range(BATCH):
            try:
                frame = read(fd, MAX_FRAME + VNET_HDR_LEN)[VNET_HDR_LEN:]
            except BlockingIOError:
                return
            except OSError as exc:
                self._lost(name, exc)
                return
            targets, out = from_port(name, frame, now)
            if len(targets) == 1 and targets[0][0] == VTEP:  # the fast path: one remote VTEP
                try:
                    send(out, targets[0][1])
                except OSError:
                    self._emit(targets, out, vni)  # retried there, and counted as a drop if it fails
                    continue
                vc["tx_frames"] += 1
                vc["tx_bytes"] += len(out)
            elif targets:
                # local ports, floods, and replies the VTEP built (ARP/ND, ICMP too-big)
                self._emit(targets, out, vni)

    def _on_underlay(self, rx: "tuple[Any, Callable[[bytes], tuple[int, bytes, str]]]") -> None:
        try:
            self._underlay_batch(*rx)
        finally:
            for name, gro in self.gro.items():  # nothing waits for the next batch
                if gro.flow is not None:
                    tap = self.taps[name]
                    for frame in gro.flush():
                        try:
                            os.write(tap.fd, frame)
                        except OSError:
                            self.dp.counters.drop("tx_full", None, name)

    def _underlay_batch(self, sock: Any, decap: "Callable[[bytes], tuple[int, bytes, str]]") -> None:
        dp, now, vni_encap = self.dp, time.monotonic(), self._vni_encap
        taps, write, port_counters, gro = self.taps, os.write, dp.counters.port, self.gro
        for _ in range(BATCH):
            try:
                data, addr = sock.recvfrom(MAX_FRAME)
            except BlockingIOError:
                return
            except OSError as exc:
                log.warning("underlay receive failed: %s", exc)
                return
            try:
                vni, inner, kind = decap(data)
            except DecodeError:
                dp.counters.drop("bad_header")
                continue
            expected = vni_encap.get(vni)
            if expected is not None and expected != kind:
                dp.counters.drop("wrong_encap", vni)
                continue
            targets, out = dp.from_tunnel(addr[0], vni, inner, now)
            if len(targets) == 1:  # the fast path: one local port
                name = targets[0][1]
                tap = taps.get(name)
                if tap is not None:
                    try:
                        for frame in gro[name].push(out):
                            write(tap.fd, frame)
                    except OSError:
                        dp.counters.drop("tx_full", vni, name)
                        continue
                    pc = port_counters[name]
                    pc["tx_frames"] += 1
                    pc["tx_bytes"] += len(out)
            elif targets:
                self._emit(targets, out, vni)

    @staticmethod
    def _decap_vxlan(data: bytes) -> tuple[int, bytes, str]:
        flags, _, vni, _ = _VXLAN_FIELDS(data, 0)
        if not flags & VXLAN_FLAG_I:
            raise DecodeError("VXLAN I flag clear")
        return vni, data[Vxlan.size:], "vxlan"

    @staticmethod
    def _decap_geneve(data: bytes) -> tuple[int, bytes, str]:
        gen, off, _ = Geneve.parse(data)
        if gen.protocol != ETH_P_TEB or any(o.critical for o in gen.options):
            raise DecodeError("Geneve: not Ethernet, or a critical option we do not implement")
        return gen.vni, data[off:], "geneve"

    def _decap_gre(self, data: bytes) -> tuple[int, bytes, str]:
        """GRE and NVGRE share the wire format: a key that is a configured GRE network's VNI is GRE,
        otherwise its upper 24 bits are an NVGRE VSID."""
        off = 0
        if not self.sockets.v6:  # raw IPv4 sockets deliver the IP header too
            if len(data) < 20:
                raise DecodeError("short IPv4 header")
            off = (data[0] & 0x0F) * 4
        gre, end, _ = Gre.parse(data, off)
        if gre.protocol != ETH_P_TEB or gre.key is None:
            raise DecodeError("GRE: not Ethernet or no key")
        if self._vni_encap.get(gre.key) == "gre":
            return gre.key, data[end:], "gre"
        return gre.key >> 8, data[end:], "nvgre"

    def run_once(self, timeout: float = 1.0) -> None:
        for key, _ in self.sel.select(timeout):
            handler, arg = key.data
            handler(arg)
        now = time.monotonic()
        if now - self._last_age >= AGE_EVERY_S:
            self._last_age = now
            self.dp.age(now)

    def run(self) -> None:
        while not self._stopping:
            self.run_once()

    def stop(self) -> None:
        self._stopping = True

    def close(self, *, remove_devices: bool = True) -> None:
        """Release everything; with `remove_devices` the TAPs are deleted (SIGTERM), otherwise they
        stay for the next daemon to re-attach (an upgrade or restart)."""
        for name in list(self.taps):
            self.remove_port(name, delete_device=remove_devices)
        self.sel.close()
        self.sockets.close()

