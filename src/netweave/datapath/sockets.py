"""Underlay sockets of the userspace VTEP.

Receiving: a UDP socket bound to each tunnel port (4789 VXLAN, 6081 Geneve) and a raw IP socket for
GRE/NVGRE (protocol 47), with a second raw GRE socket for sending. Sending UDP encapsulations: a raw
IPPROTO_UDP socket, because the outer source
port must vary per inner flow (ECMP entropy) and a bound UDP socket can only send from its own port; the
kernel adds the IP header and, over IPv6, the UDP checksum (IPV6_CHECKSUM). The raw send socket carries a
drop-all BPF filter so it never queues the copies of every UDP packet that raw sockets receive.

Unicast UDP encapsulations go out through `udp_sender`: a UDP socket per (remote VTEP, destination port,
source port), bound to the VTEP address and that source port and connected to the remote, created on
first use. The kernel then builds the UDP header and keeps the route, so a packet costs one `send` of
tunnel header + frame, which is measurably cheaper than the raw socket's `sendto` with a UDP header packed
in Python (the datapath sends every frame of a flow-cached unicast through it). Such sockets exist only
for the few source ports the datapath uses (`SPORT_BUCKETS` of them, see `userspace`), at most
`MAX_SENDERS` in all; past that, for multicast destinations and when a port cannot be bound, the same
datagram (same ports) goes out of the raw socket instead, so the wire never depends on which was used.
"""

import contextlib
import ctypes
import ipaddress
import resource
import socket
import struct
from collections.abc import Callable

from netweave.packet.addr import ip_to_bytes, ip_version
from netweave.packet.ip import IPPROTO_GRE
from netweave.packet.tunnel import GENEVE_PORT, VXLAN_PORT

SO_ATTACH_FILTER = 26
IPV6_CHECKSUM = 7
SOCK_BUFFER_BYTES = 4 << 20
SO_NO_CHECK = 11  # Linux: send IPv4 UDP with a zero checksum (RFC 7348 section 5, as the raw path does)
#: connected senders at most (each is a file descriptor); a quarter of the descriptor limit if lower
MAX_SENDERS = 1024
_UDP = struct.Struct("!HHHH")

Sender = Callable[[bytes], int]


def _drop_all_filter(sock: socket.socket) -> None:
    insn = struct.pack("HBBI", 0x06, 0, 0, 0)  # BPF_RET | BPF_K, 0: accept nothing
    buf = ctypes.create_string_buffer(insn)
    prog = struct.pack("HL", 1, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)


def _receive_nothing(sock: socket.socket, vtep_ip: str) -> None:
    """Connect a raw send socket to our own address. A raw socket gets a copy of every packet of its
    protocol that matches its bound and connected addresses; connected to an address no packet comes
    from, it matches none, so the kernel does not even clone them for the drop-all filter to discard
    (that clone cost every received tunnel packet a few hundred ns). `sendto` still names each
    destination."""
    sock.connect((vtep_ip, 0))


def _buffers(sock: socket.socket) -> None:
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, opt, SOCK_BUFFER_BYTES)


class UnderlaySockets:
    def __init__(self, vtep_ip: str) -> None:
        self.vtep_ip = vtep_ip
        self.v6 = ip_version(vtep_ip) == 6
        fam = socket.AF_INET6 if self.v6 else socket.AF_INET
        self.family = fam
        self.udp_rx: dict[str, socket.socket] = {}
        for encap, port in (("vxlan", VXLAN_PORT), ("geneve", GENEVE_PORT)):
            s = socket.socket(fam, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _buffers(s)
            s.bind(("::" if self.v6 else "0.0.0.0", port))  # any address: unicast and joined groups
            s.setblocking(False)
            self.udp_rx[encap] = s
        self.udp_tx = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_UDP)
        _drop_all_filter(self.udp_tx)
        _buffers(self.udp_tx)
        if self.v6:
            self.udp_tx.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, 6)
        self.udp_tx.bind((vtep_ip, 0))
        _receive_nothing(self.udp_tx, vtep_ip)
        # GRE: one raw socket sends (bound to the VTEP address, which makes it the source) and one
        # receives, bound to no address, because Linux delivers IPv4 multicast to a raw socket only when it
        # is not bound to a unicast address; the sender drops its copies like the UDP sender
        self.gre_tx = socket.socket(fam, socket.SOCK_RAW, IPPROTO_GRE)
        _drop_all_filter(self.gre_tx)
        _buffers(self.gre_tx)
        self.gre_tx.bind((vtep_ip, 0))
        _receive_nothing(self.gre_tx, vtep_ip)
        self.gre_tx.setblocking(False)
        self.gre = socket.socket(fam, socket.SOCK_RAW, IPPROTO_GRE)
        _buffers(self.gre)
        self.gre.setblocking(False)
        for s in (self.udp_tx, self.gre_tx):
            if self.v6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 16)
            else:
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(vtep_ip))
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 16)
        self.udp_tx.setblocking(False)
        self.groups: set[str] = set()
        #: (remote, destination port, source port) -> its connected socket; None: send through udp_tx
        self._senders: dict[tuple[str, int, int], socket.socket | None] = {}
        self.connected = 0  # connected senders open
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.max_senders = MAX_SENDERS if soft == resource.RLIM_INFINITY else min(MAX_SENDERS, soft // 4)
        #: bumped whenever senders are closed: whoever keeps `udp_sender` results must drop them then
        self.generation = 0

    def udp_sender(self, dst: str, dport: int, sport: int) -> Sender:
        """A function sending one UDP payload (tunnel header + frame) from our `sport` to `dst`:`dport`.
        Valid until `generation` changes."""
        key = (dst, dport, sport)
        if key not in self._senders:
            self._senders[key] = self._connect(dst, dport, sport)
        sock = self._senders[key]
        if sock is not None:
            return sock.send
        raw, addr, pack = self.udp_tx.sendto, (dst, 0), _UDP.pack

        def via_raw(payload: bytes) -> int:
            return raw(pack(sport, dport, 8 + len(payload), 0) + payload, addr)

        return via_raw

    def _connect(self, dst: str, dport: int, sport: int) -> socket.socket | None:
        if self.connected >= self.max_senders or ipaddress.ip_address(dst).is_multicast:
            return None
        try:
            s = socket.socket(self.family, socket.SOCK_DGRAM)
        except OSError:  # out of descriptors: the raw socket still sends
            return None
        try:
            # several remotes share each source port; nothing is received on these (drop-all filter)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            _drop_all_filter(s)
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCK_BUFFER_BYTES)
            if not self.v6:
                s.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
            s.bind((self.vtep_ip, sport))
            s.connect((dst, dport))
            s.setblocking(False)
        except OSError:  # the port is taken, no route yet...: the raw socket sends (and reports errors)
            s.close()
            return None
        self.connected += 1
        return s

    def prune(self, keep: Callable[[str], bool]) -> int:
        """Close the senders to remotes `keep` rejects (no longer in any table); returns how many."""
        gone = [k for k in self._senders if not keep(k[0])]
        for k in gone:
            s = self._senders.pop(k)
            if s is not None:
                s.close()
                self.connected -= 1
        if gone:
            self.generation += 1
        return len(gone)

    def receivers(self) -> list[tuple[socket.socket, str]]:
        return [(s, encap) for encap, s in self.udp_rx.items()] + [(self.gre, "gre")]

    def join(self, group: str) -> None:
        """Receive the VNI's multicast group on every tunnel socket."""
        if group in self.groups:
            return
        for s in (*self.udp_rx.values(), self.gre):
            if self.v6:
                mreq = ip_to_bytes(group) + struct.pack("@I", 0)
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq)
            else:
                mreq = ip_to_bytes(group) + ip_to_bytes(self.vtep_ip)
                s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        self.groups.add(group)

    def close(self) -> None:
        self.prune(lambda _dst: False)
        for s in (*self.udp_rx.values(), self.udp_tx, self.gre_tx, self.gre):
            s.close()
