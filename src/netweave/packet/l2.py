"""Ethernet II, 802.1Q / 802.1ad tags and ARP for Ethernet/IPv4."""

from netweave.packet.addr import BROADCAST_MAC, ZERO_MAC
from netweave.packet.errors import DecodeError
from netweave.packet.header import U1, U3, U8, U12, U16, Header, IPv4Addr, Mac
from netweave.packet.registry import bind

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_IPV6 = 0x86DD
ETH_P_SLOW = 0x8809
ETH_P_TEB = 0x6558  # transparent Ethernet bridging: what GRE/NVGRE/Geneve carry


class Ethernet(Header):
    """Ethernet II header (no FCS: the NIC adds and strips it)."""

    dst: Mac = BROADCAST_MAC
    src: Mac = ZERO_MAC
    type: U16 = ETH_P_IP

    def next_layer(self) -> tuple[str, int]:
        return ("ethertype", self.type)


class Dot1Q(Header):
    """An 802.1Q C-tag or 802.1ad S-tag (same layout; the TPID before it says which).

    Stacked tags (QinQ) are simply one Dot1Q after another: outer TPID 0x88a8, inner 0x8100.
    """

    pcp: U3 = 0
    dei: U1 = 0
    vid: U12 = 0
    type: U16 = ETH_P_IP

    def next_layer(self) -> tuple[str, int]:
        return ("ethertype", self.type)


class Arp(Header):
    """ARP for Ethernet/IPv4 (RFC 826); other hardware/protocol sizes are rejected."""

    hwtype: U16 = 1
    ptype: U16 = ETH_P_IP
    hwlen: U8 = 6
    plen: U8 = 4
    op: U16 = 1
    sha: Mac = ZERO_MAC
    spa: IPv4Addr = "0.0.0.0"
    tha: Mac = ZERO_MAC
    tpa: IPv4Addr = "0.0.0.0"

    REQUEST = 1
    REPLY = 2

    def _parse_tail(self, buf: bytes | memoryview, start: int, off: int, end: int) -> tuple[int, int]:
        if self.hwlen != 6 or self.plen != 4:
            raise DecodeError(f"ARP: unsupported address sizes hw={self.hwlen} proto={self.plen}")
        return off, off  # anything after ARP is Ethernet padding, not payload


bind("link", 1, Ethernet)  # pcap LINKTYPE_ETHERNET: what decode() starts with
bind("ethertype", ETH_P_8021Q, Dot1Q)
bind("ethertype", ETH_P_8021AD, Dot1Q)
bind("ethertype", ETH_P_ARP, Arp)
