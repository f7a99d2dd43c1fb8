"""Wire formats: headers declared as data, the encapsulation API, pcap files.

Everything a later layer needs is importable from here: ``from netweave.packet import encapsulate``.
Importing this package registers every header with the decode registries.
"""

from netweave.packet.addr import BROADCAST_MAC, ZERO_MAC, mac_from_bytes, mac_to_bytes
from netweave.packet.checksum import internet_checksum, pseudo_header
from netweave.packet.dhcp import (
    Dhcp4,
    Dhcp6,
    Dhcp6Option,
    Dhcp6Relay,
    IaAddress,
    IaNa,
    StatusCode,
    decode_classless_routes,
    encode_classless_routes,
)
from netweave.packet.encap import (
    ENCAPS,
    Decapsulated,
    decapsulate,
    encapsulate,
    entropy_port,
    flow_hash,
    flow_key,
    tunnel_header,
)
from netweave.packet.errors import DecodeError
from netweave.packet.header import Header, build_stack
from netweave.packet.icmp import (
    Icmp,
    IcmpDestUnreach,
    IcmpEcho,
    IcmpTimeExceeded,
    Icmpv6,
    Icmpv6DestUnreach,
    Icmpv6Echo,
    Icmpv6PacketTooBig,
    Icmpv6TimeExceeded,
    NdOption,
    NdPrefixInfo,
    NeighborAdvert,
    NeighborSolicit,
    RouterAdvert,
    RouterSolicit,
)
from netweave.packet.ip import IPv4, IPv6, IPv6DestOpts, IPv6Fragment, IPv6HopByHop, IPv6Routing
from netweave.packet.l2 import Arp, Dot1Q, Ethernet
from netweave.packet.l4 import Tcp, Udp
from netweave.packet.lacp import LACP_DST_MAC, Lacpdu
from netweave.packet.overhead import OverheadRow, inner_mtu, overhead_bytes, overhead_table
from netweave.packet.pcap import PcapRecord, PcapWriter, read_pcap, write_pcap
from netweave.packet.registry import Packet, bind, decode
from netweave.packet.tunnel import Geneve, GeneveOption, Gre, Stt, Vxlan, nvgre_key

__all__ = [
    "BROADCAST_MAC",
    "ENCAPS",
    "LACP_DST_MAC",
    "ZERO_MAC",
    "Arp",
    "Decapsulated",
    "DecodeError",
    "Dhcp4",
    "Dhcp6",
    "Dhcp6Option",
    "Dhcp6Relay",
    "Dot1Q",
    "Ethernet",
    "Geneve",
    "GeneveOption",
    "Gre",
    "Header",
    "IPv4",
    "IPv6",
    "IPv6DestOpts",
    "IPv6Fragment",
    "IPv6HopByHop",
    "IPv6Routing",
    "IaAddress",
    "IaNa",
    "Icmp",
    "IcmpDestUnreach",
    "IcmpEcho",
    "IcmpTimeExceeded",
    "Icmpv6",
    "Icmpv6DestUnreach",
    "Icmpv6Echo",
    "Icmpv6PacketTooBig",
    "Icmpv6TimeExceeded",
    "Lacpdu",
    "NdOption",
    "NdPrefixInfo",
    "NeighborAdvert",
    "NeighborSolicit",
    "OverheadRow",
    "Packet",
    "PcapRecord",
    "PcapWriter",
    "RouterAdvert",
    "RouterSolicit",
    "StatusCode",
    "Stt",
    "Tcp",
    "Udp",
    "Vxlan",
    "bind",
    "build_stack",
    "decapsulate",
    "decode",
    "decode_classless_routes",
    "encapsulate",
    "encode_classless_routes",
    "entropy_port",
    "flow_hash",
    "flow_key",
    "inner_mtu",
    "internet_checksum",
    "mac_from_bytes",
    "mac_to_bytes",
    "nvgre_key",
    "overhead_bytes",
    "overhead_table",
    "pseudo_header",
    "read_pcap",
    "tunnel_header",
    "write_pcap",
]
