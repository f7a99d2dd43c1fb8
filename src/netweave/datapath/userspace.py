"""The userspace datapath: the `dataplane` pipeline on real I/O (TAPs for VM ports, sockets for tunnels).

One thread, one selector. Each readable descriptor is drained in a batch (up to BATCH frames) before the
next, so a busy port cannot starve the others for long. Frames go through `Dataplane.from_port` /
`from_tunnel`, except on the fast paths: once the pipeline's flow cache holds a unicast decision (a VM's
frame to one remote VTEP, a tunnel frame to one local port) and no table changed while it was made, the
datapath remembers what that decision needs per (port, Ethernet header) or (remote VTEP, tunnel header +
Ethernet header) and later frames skip the pipeline call: they are counted, their learned source entry
refreshed and the cache hit counted exactly as the pipeline would, per batch. Any change of the dataplane's
revision empties the fast paths, as it empties the flow cache. Unicast UDP tunnels leave through connected
UDP sockets, one per (remote, source-port bucket) (`UnderlaySockets.udp_sender`). Together this brings the
per-frame cost close to that of a relay without logic (benchmarks/bench_datapath.py).
Malformed underlay packets are counted (`bad_header`, `wrong_encap`, `critical_option`) and dropped.
"""

import dataclasses
import errno
import logging
import os
import selectors
import time
import zlib
from collections.abc import Callable
from typing import Any

from pyroute2 import netns

from netweave.datapath.gro import PLAIN, VNET_HDR_LEN, Coalescer
from netweave.datapath.sockets import Sender, UnderlaySockets
from netweave.datapath.tap import NamespaceGone, Tap, TapError, open_tap
from netweave.dataplane import PORT, VTEP, Dataplane
from netweave.dataplane.pipeline import GROUP, TUNNEL_TARGET
from netweave.model import DatapathState, Network, Port, Remote, Router
from netweave.packet import DecodeError, Geneve, Gre, Vxlan, flow_hash, nvgre_key
from netweave.packet.encap import _PROTO_CRC, EPHEMERAL_LOW, EPHEMERAL_SPAN, flow_key
from netweave.packet.l2 import ETH_P_TEB
from netweave.packet.tunnel import GENEVE_PORT, VXLAN_FLAG_I, VXLAN_PORT

log = logging.getLogger(__name__)

BATCH = 64
MAX_FRAME = 65536
ETH_LEN = 14
AGE_EVERY_S = 5.0
PRUNE_EVERY_S = 60.0  # at most this often, once senders fill half their cap: close those to gone remotes
_VXLAN_FIELDS = Vxlan._unpack_fixed  # the declaration's generated decoder, without the classmethod hop
#: The outer UDP source port of a flow (RFC 7348 entropy): SPORT_BASE + (flow hash & BUCKET_MASK), that is
#: one of the top SPORT_BUCKETS ports of the dynamic range (65472-65535, above Linux's default ephemeral
#: range, so binding them does not compete with the host's own clients). Fewer ports than the 2**14 the
#: range offers, because each (remote, port) in use is a connected UDP socket (`UnderlaySockets.udp_sender`,
#: the cheaper send); 64 still spreads flows over any realistic number of ECMP paths, and every flow keeps
#: one port (and so one path).
SPORT_BUCKETS = 64
BUCKET_MASK = SPORT_BUCKETS - 1
SPORT_BASE = 65536 - SPORT_BUCKETS
assert SPORT_BUCKETS & BUCKET_MASK == 0 and SPORT_BASE >= EPHEMERAL_LOW and EPHEMERAL_SPAN >= SPORT_BUCKETS
_PORTS_PROTOS = frozenset((6, 17, 132))  # TCP, UDP, SCTP: as flow_hash's IPv4 shortcut


def sport_of(h: int, fixed_source_port: int | None = None) -> int:
    """The outer UDP source port of a frame whose `flow_hash` is `h`."""
    return fixed_source_port or SPORT_BASE + (h & BUCKET_MASK)


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
        #: per source-port bucket (one bucket when the port is fixed)
        self.mask = 0 if fixed_source_port else BUCKET_MASK
        self.sports = [sport_of(b, fixed_source_port) for b in range(self.mask + 1)]
        self._senders: dict[str, list[Sender | None]] = {}
        self._generation = -1

    def senders(self, dst: str) -> list[Sender | None]:
        """`dst`'s senders by bucket (filled in on first use, by `sender`)."""
        if self._generation != self.sockets.generation:
            self._senders.clear()
            self._generation = self.sockets.generation
        got = self._senders.get(dst)
        if got is None:
            got = self._senders[dst] = [None] * (self.mask + 1)
        return got

    def sender(self, dst: str, bucket: int) -> Sender:
        senders = self.senders(dst)
        s = senders[bucket]
        if s is None:
            s = senders[bucket] = self.sockets.udp_sender(dst, self.dport, self.sports[bucket])
        return s

    def send(self, frame: bytes, dst: str) -> int:
        h = flow_hash(frame)
        if self.dport:
            return self.sender(dst, h & self.mask)(self.header + frame)
        if self.encap == "nvgre":
            hdr = Gre(key=nvgre_key(self.vni, h & 0xFF), protocol=ETH_P_TEB).build()
            return self.sockets.gre_tx.sendto(hdr + frame, (dst, 0))
        return self.sockets.gre_tx.sendto(self.header + frame, (dst, 0))


#: a TAP's fast path entry, per Ethernet header: (learned source FIB entry to refresh or None, largest
#: frame, senders by bucket, tunnel header, bucket mask, IPv4?, encapsulator, remote VTEP)
_TxFast = tuple[Any, int, list[Sender | None], bytes, int, bool, _Encapsulator, str]
#: the underlay's fast path entry, per remote VTEP and tunnel header + Ethernet header: (TAP fd, its
#: coalescer, learned source FIB entry or None, the VNI's counters, the port's counters, VNI, port name)
_RxFast = tuple[int, Coalescer, Any, dict[str, int], dict[str, int], int, str]


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
        self._tunnel_targets: dict[str, tuple[int, str]] = {}  # "<vni> <vtep>" -> (vni, vtep), parsed once
        self._stopping = False
        self._last_age = self._last_prune = time.monotonic()
        self._vni_encap: dict[int, str] = {}
        #: fast paths for flow-cached unicast (see `_on_tap`, `_underlay_batch`), valid while the
        #: dataplane's revision and the senders' generation are `_fast_key`
        self._tx_fast: dict[str, dict[bytes, _TxFast]] = {}
        self._rx_fast: dict[str, dict[bytes, _RxFast]] = {}
        self._fast_key = (-1, -1)
        decaps = {"vxlan": self._decap_vxlan, "geneve": self._decap_geneve, "gre": self._decap_gre}
        #: tunnel header length of a datagram: 8 for VXLAN, from the first byte for Geneve; GRE: no fast path
        hlens = {"vxlan": 8, "geneve": 0, "gre": -1}
        for sock, encap in self.sockets.receivers():
            self.sel.register(sock, selectors.EVENT_READ,
                              (self._on_underlay, (sock, decaps[encap], hlens[encap])))

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
        """Stop serving port `name`: its TAP closed (and deleted with `delete_device`), its tables gone."""
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
        self.remove_port(name, delete_device=False)

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
        senders: dict[int, _Encapsulator] = {}
        for vni, net in needed.items():
            old = self.route_encaps.get(vni)
            if old is None or old.encap != net.encap:
                old = _Encapsulator(net, self.sockets, self.fixed_source_port)
            senders[vni] = old
        self.route_encaps = senders

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
                    parsed = self._tunnel_targets.get(name)
                    if parsed is None:
                        out_vni, vtep_ip = name.split(" ", 1)
                        parsed = self._tunnel_targets[name] = (int(out_vni), vtep_ip)
                    routed_vni, vtep = parsed
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

    def _fast_check(self) -> None:
        """Empty the fast paths if any table changed (or senders were closed) since they were filled."""
        key = (self.dp.revision, self.sockets.generation)
        if key != self._fast_key:
            self._tx_fast.clear()
            self._rx_fast.clear()
            self._fast_key = key

    def _cached_port_decision(self, name: str, key: bytes) -> Any:
        """The pipeline's flow cache entry for `key` from port `name`, or None (read defensively: it is the
        pipeline's private table, and without it the fast path is merely not used)."""
        try:
            return self.dp._port_state[name][3].get(key)
        except (AttributeError, LookupError, TypeError):
            return None

    def _cached_tunnel_decision(self, vni: int, vtep: str, key: bytes) -> Any:
        try:
            return self.dp.networks[vni].tunnel_cache[vtep].get(key)
        except (AttributeError, LookupError, TypeError):
            return None

    def _tx_install(self, name: str, vni: int, frame: bytes, dst: str) -> None:
        """After `from_port` sent `frame` to the one remote VTEP `dst` without changing any table: if the
        pipeline cached that decision for its Ethernet header, remember what the fast path needs."""
        enc = self.encaps.get(vni)
        if enc is None or not enc.dport:
            return
        key = frame[:ETH_LEN]
        dec = self._cached_port_decision(name, key)
        if not (isinstance(dec, tuple) and len(dec) == 4 and dec[0] == ((VTEP, dst),) and dec[2] is False
                and isinstance(dec[3], int)):
            return
        self._tx_fast.setdefault(name, {})[key] = (
            dec[1], dec[3], enc.senders(dst), enc.header, enc.mask, key[12:14] == b"\x08\x00", enc, dst)

    def _on_tap(self, name: str) -> None:
        """Frames from a VM. A frame whose Ethernet header has a fast path entry (the pipeline's flow cache
        said: one remote VTEP, nothing flooded) is counted and refreshed as `from_port` would do on that
        hit and sent straight to its bucket's socket; anything else goes through `from_port`. Counters are
        added per batch (nothing reads them before the batch ends: one thread)."""
        tap = self.taps.get(name)
        if tap is None:
            return
        self._fast_check()
        dp, now, fd, read = self.dp, time.monotonic(), tap.fd, os.read
        vni = dp.ports[name].vni
        fast = self._tx_fast.setdefault(name, {})
        get, crc32, proto_crc, ports_protos = fast.get, zlib.crc32, _PROTO_CRC, _PORTS_PROTOS
        frames = nbytes = 0
        try:
            for _ in range(BATCH):
                try:
                    frame = read(fd, MAX_FRAME + VNET_HDR_LEN)[VNET_HDR_LEN:]
                except BlockingIOError:
                    return
                except OSError as exc:
                    self._lost(name, exc)
                    return
                f = get(frame[:ETH_LEN])
                if f is not None:
                    n = len(frame)
                    src, max_frame, senders, header, mask, ipv4, enc, dst = f
                    if n <= max_frame:
                        if src is not None:
                            src.last_seen = now
                        if mask:  # flow_hash(frame), inline
                            if (ipv4 and n >= 38 and frame[14] == 0x45 and frame[23] in ports_protos
                                    and not (frame[20] & 0x3F or frame[21])):
                                h = crc32(frame[26:38], proto_crc[frame[23]])
                            else:
                                h = crc32(flow_key(frame))
                            h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
                            b = (h ^ (h >> 16)) & mask
                        else:
                            b = 0
                        try:
                            (senders[b] or enc.sender(dst, b))(header + frame)
                        except OSError:
                            self._tx_fast_failed(name, vni, frame, dst)
                            continue
                        frames += 1
                        nbytes += n
                        continue
                rev = self._fast_key
                targets, out = dp.from_port(name, frame, now)
                self._fast_check()
                same = self._fast_key == rev
                if len(targets) == 1 and targets[0][0] in (VTEP, GROUP):  # one remote VTEP (or the group)
                    try:
                        self.encaps[vni].send(out, targets[0][1])
                    except OSError:
                        self._emit(targets, out, vni)  # retried there, and counted as a drop if it fails
                        continue
                    vc = dp.counters.vni[vni]
                    vc["tx_frames"] += 1
                    vc["tx_bytes"] += len(out)
                    if same and targets[0][0] == VTEP and out is frame:
                        self._tx_install(name, vni, frame, targets[0][1])
                elif targets:
                    # local ports, floods, and replies the VTEP built (ARP/ND, ICMP too-big)
                    self._emit(targets, out, vni)
                if not same:
                    fast = self._tx_fast.setdefault(name, {})
                    get = fast.get
        finally:
            if frames:
                # what from_port counts on a flow-cache hit, and what the send counts
                pc, vc = dp.counters.port.get(name), dp.counters.vni[vni]
                if pc is not None:
                    pc["rx_frames"] += frames
                    pc["rx_bytes"] += nbytes
                dp.cache_hits += frames
                vc["tx_frames"] += frames
                vc["tx_bytes"] += nbytes

    def _tx_fast_failed(self, name: str, vni: int, frame: bytes, dst: str) -> None:
        """A fast-path send failed: count the frame as `from_port` would have, and retry it as `_emit`
        does (a connected socket reports an earlier ICMP error once, then sends), counting a drop if that
        fails too."""
        dp = self.dp
        pc = dp.counters.port.get(name)
        if pc is not None:
            pc["rx_frames"] += 1
            pc["rx_bytes"] += len(frame)
        dp.cache_hits += 1
        self._emit(((VTEP, dst),), frame, vni)

    def _on_underlay(self, rx: "tuple[Any, Callable[[bytes], tuple[int, bytes, str]], int]") -> None:
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

    def _rx_install(self, vtep: str, vni: int, key: bytes, inner: bytes, name: str) -> None:
        """After `from_tunnel` delivered `inner` to the one local port `name` without changing any table:
        if the pipeline cached that decision, remember it under the datagram's headers `key`."""
        dec = self._cached_tunnel_decision(vni, vtep, inner[:ETH_LEN])
        tap, gro, net = self.taps.get(name), self.gro.get(name), self.dp.networks.get(vni)
        pc = self.dp.counters.port.get(name)
        if (tap is None or gro is None or net is None or pc is None or not isinstance(dec, tuple)
                or len(dec) != 4 or dec[0] != ((PORT, name),) or dec[2] is not False):
            return
        self._rx_fast.setdefault(vtep, {})[key] = (tap.fd, gro, dec[1], net.counters, pc, vni, name)

    def _underlay_batch(
        self, sock: Any, decap: "Callable[[bytes], tuple[int, bytes, str]]", hlen: int
    ) -> None:
        """Datagrams from remote VTEPs. One whose tunnel and Ethernet headers have a fast path entry for
        its sender (the pipeline's flow cache said: one local port) is counted and refreshed as
        `from_tunnel` would do on that hit and handed to the port's coalescer; anything else is decoded
        and goes through `from_tunnel`. Counters are added per run of datagrams with the same entry."""
        self._fast_check()
        dp, now, vni_encap = self.dp, time.monotonic(), self._vni_encap
        taps, write, port_counters, gro = self.taps, os.write, dp.counters.port, self.gro
        recvfrom, rx_fast = sock.recvfrom, self._rx_fast
        cur: _RxFast | None = None  # the entry of the current run, its frames and bytes
        frames = nbytes = 0
        try:
            for _ in range(BATCH):
                try:
                    data, addr = recvfrom(MAX_FRAME)
                except BlockingIOError:
                    return
                except OSError as exc:
                    log.warning("underlay receive failed: %s", exc)
                    return
                if hlen >= 0:
                    hl = hlen or (8 + (data[0] & 0x3F) * 4 if data else 0)
                    per_vtep = rx_fast.get(addr[0])
                    f = per_vtep.get(data[:hl + ETH_LEN]) if per_vtep is not None else None
                    if f is not None:
                        frame = data[hl:]
                        n = len(frame)
                        fd, coalescer = f[0], f[1]
                        try:
                            if coalescer.flow is None and (n < 54 or frame[23] != 6):  # not TCP: as is
                                write(fd, PLAIN + frame)
                            else:
                                for out in coalescer.push(frame):
                                    write(fd, out)
                        except OSError:
                            f[3]["rx_frames"] += 1
                            f[3]["rx_bytes"] += n
                            dp.cache_hits += 1
                            dp.counters.drop("tx_full", f[5], f[6])
                            continue
                        if f is not cur:
                            if cur is not None:
                                self._rx_count(cur, frames, nbytes, now)
                            cur, frames, nbytes = f, 0, 0
                        frames += 1
                        nbytes += n
                        continue
                try:
                    vni, inner, kind = decap(data)
                except DecodeError:
                    dp.counters.drop("bad_header")
                    continue
                expected = vni_encap.get(vni)
                if expected is not None and expected != kind:
                    dp.counters.drop("wrong_encap", vni)
                    continue
                rev = self._fast_key
                targets, out = dp.from_tunnel(addr[0], vni, inner, now)
                self._fast_check()
                if self._fast_key != rev:
                    rx_fast = self._rx_fast
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
                        if self._fast_key == rev and out is inner and hlen >= 0 and len(inner) >= ETH_LEN:
                            self._rx_install(addr[0], vni, data[:len(data) - len(inner) + ETH_LEN], inner,
                                             name)
                elif targets:
                    self._emit(targets, out, vni)
        finally:
            if cur is not None:
                self._rx_count(cur, frames, nbytes, now)

    def _rx_count(self, f: _RxFast, frames: int, nbytes: int, now: float) -> None:
        """What `from_tunnel` counts and refreshes on `frames` flow-cache hits, and the port's delivery."""
        nc, pc = f[3], f[4]
        nc["rx_frames"] += frames
        nc["rx_bytes"] += nbytes
        pc["tx_frames"] += frames
        pc["tx_bytes"] += nbytes
        self.dp.cache_hits += frames
        if f[2] is not None:
            f[2].last_seen = now

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
            if (self.sockets.connected > self.sockets.max_senders // 2
                    and now - self._last_prune >= PRUNE_EVERY_S):
                self._last_prune = now
                self._prune_senders()

    def _prune_senders(self) -> int:
        """Close the connected senders to remote VTEPs no table names any more (learned remotes that aged
        out, removed networks' flood lists), so they do not keep descriptors and the cap."""
        live = {e.vtep for _, _, e in self.dp.fib.entries() if e.vtep is not None}
        live.update(ip for net in self.dp.networks.values() for ip in net.spec.flood)
        live.update(h.vtep for r in self.dp.routers.values() for h in r.spec.hosts)  # routed destinations
        return self.sockets.prune(live.__contains__)

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

