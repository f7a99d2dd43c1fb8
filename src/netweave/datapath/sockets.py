"""Underlay sockets of the userspace VTEP.

Receiving: a UDP socket bound to each tunnel port (4789 VXLAN, 6081 Geneve) and a raw IP socket for
GRE/NVGRE (protocol 47), with a second raw GRE socket for sending. Sending UDP encapsulations: a raw
IPPROTO_UDP socket, because the outer source
port must vary per inner flow (ECMP entropy) and a bound UDP socket can only send from its own port; the
kernel adds the IP header and, over IPv6, the UDP checksum (IPV6_CHECKSUM). The raw send socket carries a
drop-all BPF filter so it never queues the copies of every UDP packet that raw sockets receive.
"""

import contextlib
import ctypes
import socket
import struct

from netweave.packet.addr import ip_to_bytes, ip_version
from netweave.packet.ip import IPPROTO_GRE
from netweave.packet.tunnel import GENEVE_PORT, VXLAN_PORT

SO_ATTACH_FILTER = 26
IPV6_CHECKSUM = 7
SOCK_BUFFER_BYTES = 4 << 20


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
        for s in (*self.udp_rx.values(), self.udp_tx, self.gre_tx, self.gre):
            s.close()
