"""Native DHCPv4, DHCPv6 and router advertisement responders (as OVN's pinctrl answers them): each VTEP
answers its local VM ports itself, so no DHCP server runs anywhere.

Pure functions: a whole Ethernet frame the VM sent in, the whole Ethernet reply frame out (or None when
the frame is not for the responder or nothing applies). No I/O, no clock: a lease is an address the
port already owns (`Port.ips`, allocated by the controller's IPAM), so there is no lease table.
Malformed frames of the right kind raise DecodeError.

Frames are untagged Ethernet, as VM ports send them. Checksums of requests are not verified: frames read
from a veth or TAP can carry a partial checksum left for offload, and a wrong sum changes no answer.
"""

import ipaddress
from collections.abc import Sequence

from netweave.model import Port, Subnet
from netweave.packet import BROADCAST_MAC, Ethernet, IPv4, IPv6, Udp, build_stack
from netweave.packet.addr import eui64
from netweave.packet.dhcp import (
    ADVERTISE,
    ALL_DHCP_RELAY_AGENTS_AND_SERVERS,
    BOOTREPLY,
    BOOTREQUEST,
    CONFIRM,
    DECLINE,
    DHCP4_CLIENT_PORT,
    DHCP4_SERVER_PORT,
    DHCP6_CLIENT_PORT,
    DHCP6_SERVER_PORT,
    DHCPACK,
    DHCPDISCOVER,
    DHCPINFORM,
    DHCPNAK,
    DHCPOFFER,
    DHCPREQUEST,
    INFORMATION_REQUEST,
    OPT_BROADCAST,
    OPT_CLASSLESS_ROUTES,
    OPT_DNS,
    OPT_INTERFACE_MTU,
    OPT_LEASE_TIME,
    OPT_MESSAGE,
    OPT_MESSAGE_TYPE,
    OPT_MS_CLASSLESS_ROUTES,
    OPT_PARAM_REQUEST,
    OPT_REQUESTED_IP,
    OPT_ROUTER,
    OPT_SERVER_ID,
    OPT_SUBNET_MASK,
    OPT_T1,
    OPT_T2,
    OPTION_CLIENTID,
    OPTION_DNS_SERVERS,
    OPTION_IA_NA,
    OPTION_RAPID_COMMIT,
    OPTION_SERVERID,
    REBIND,
    RELEASE,
    RENEW,
    REPLY,
    REQUEST,
    SOLICIT,
    STATUS_NO_ADDRS_AVAIL,
    STATUS_NOT_ON_LINK,
    STATUS_SUCCESS,
    Dhcp4,
    Dhcp6,
    Dhcp6Any,
    Dhcp6Option,
    DhcpOptions,
    IaAddress,
    IaNa,
    StatusCode,
    duid_ll,
    encode_classless_routes,
    encode_ipv4s,
    encode_ipv6s,
)
from netweave.packet.icmp import NdOption, NdPrefixInfo, RouterAdvert, RouterSolicit
from netweave.packet.ip import IPPROTO_ICMPV6, IPPROTO_UDP
from netweave.packet.l2 import ETH_P_IP, ETH_P_IPV6

LEASE_S = 86400  # Neutron's default dhcp_lease_duration
DHCP4_T1_S = LEASE_S // 2  # RFC 2131 4.4.5: 0.5 and 0.875 of the lease
DHCP4_T2_S = LEASE_S * 7 // 8
DHCP6_T1_S = LEASE_S // 2  # RFC 8415 21.4 recommends 0.5 and 0.8 of the preferred lifetime
DHCP6_T2_S = LEASE_S * 4 // 5
RA_ROUTER_LIFETIME_S = 1800  # RFC 4861 6.2.1's default: 3 x MaxRtrAdvInterval
PREFIX_VALID_S = 86400
PREFIX_PREFERRED_S = 14400
IPV6_MIN_MTU = 1280
ALL_NODES = "ff02::1"
ALL_NODES_MAC = "33:33:00:00:00:01"
STATEFUL, STATELESS, SLAAC = "dhcpv6-stateful", "dhcpv6-stateless", "slaac"

ETH_LEN = 14
IPV6_END = ETH_LEN + 40
ICMPV6_ROUTER_SOLICIT = 133


# ------------------------------------------------------------------------------------ cheap classifiers


def is_dhcp4(frame: bytes) -> bool:
    """IPv4 UDP to port 67 (behind any IPv4 options), not a later fragment: what `dhcp4_reply` answers."""
    if len(frame) < ETH_LEN + 20 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4:
        return False
    l4 = ETH_LEN + (frame[14] & 0x0F) * 4
    if l4 < ETH_LEN + 20 or frame[23] != IPPROTO_UDP or int.from_bytes(frame[20:22], "big") & 0x1FFF:
        return False
    return len(frame) >= l4 + 8 and int.from_bytes(frame[l4 + 2 : l4 + 4], "big") == DHCP4_SERVER_PORT


def is_dhcp6(frame: bytes) -> bool:
    """IPv6 UDP (no extension headers) to port 547: what `dhcp6_reply` answers."""
    return (len(frame) >= IPV6_END + 8 and frame[12:14] == b"\x86\xdd" and frame[14] >> 4 == 6
            and frame[20] == IPPROTO_UDP
            and int.from_bytes(frame[IPV6_END + 2 : IPV6_END + 4], "big") == DHCP6_SERVER_PORT)


def is_router_solicit(frame: bytes) -> bool:
    """ICMPv6 (no extension headers) type 133: what `router_advert` answers."""
    return (len(frame) >= IPV6_END + 8 and frame[12:14] == b"\x86\xdd" and frame[14] >> 4 == 6
            and frame[20] == IPPROTO_ICMPV6 and frame[IPV6_END] == ICMPV6_ROUTER_SOLICIT)


def link_local(mac: str) -> str:
    """The fe80::/64 address of `mac` by modified EUI-64 (RFC 4291 appendix A): where DHCPv6 replies
    and router advertisements come from, so the pipeline must answer neighbour solicitations for it."""
    return eui64("fe80::", mac)


# ------------------------------------------------------------------------------------------------ DHCPv4


def server_id(subnet: Subnet) -> str:
    """The DHCPv4 server identifier and source address for `subnet`: its gateway, or, on a subnet
    without one, its last usable address (the broadcast address minus one; the last address of a /31,
    the address of a /32) -- an address IPAM's default pool leaves free, as Neutron's does."""
    if subnet.gateway_ip is not None:
        return subnet.gateway_ip
    net = ipaddress.IPv4Network(subnet.cidr)
    last = int(net.broadcast_address) - (1 if net.prefixlen <= 30 else 0)
    return str(ipaddress.IPv4Address(last))


def _lease4(port: Port, subnets: Sequence[Subnet]) -> tuple[str, Subnet] | None:
    """The port's first IPv4 address inside a DHCP-enabled IPv4 subnet, with that subnet."""
    for subnet in subnets:
        if subnet.version != 4 or not subnet.dhcp:
            continue
        net = ipaddress.IPv4Network(subnet.cidr)
        for ip in port.ips:
            if ":" not in ip and ipaddress.IPv4Address(ip) in net:
                return ip, subnet
    return None


def _classless_routes(subnet: Subnet) -> list[tuple[str, str]]:
    """Option 121's routes: the host routes, plus the default route via the gateway because a client
    that receives option 121 ignores option 3 (RFC 3442)."""
    routes = [(dest, hop) for dest, hop in subnet.host_routes if ":" not in dest and ":" not in hop]
    if routes and subnet.gateway_ip is not None and not any(d.endswith("/0") for d, _ in routes):
        routes.append(("0.0.0.0/0", subnet.gateway_ip))
    return routes


def _config_options(subnet: Subnet, mtu: int, requested: bytes) -> DhcpOptions:
    """What we know about the subnet, as options, in our default order."""
    net = ipaddress.IPv4Network(subnet.cidr)
    opts: DhcpOptions = [(OPT_SUBNET_MASK, net.netmask.packed)]
    if subnet.gateway_ip is not None:
        opts.append((OPT_ROUTER, encode_ipv4s([subnet.gateway_ip])))
    dns = [ip for ip in subnet.dns if ":" not in ip]
    if dns:
        opts.append((OPT_DNS, encode_ipv4s(dns)))
    opts.append((OPT_INTERFACE_MTU, mtu.to_bytes(2, "big")))
    if net.prefixlen <= 30:
        opts.append((OPT_BROADCAST, net.broadcast_address.packed))
    routes = _classless_routes(subnet)
    if routes:
        opts.append((OPT_CLASSLESS_ROUTES, encode_classless_routes(routes)))
        if OPT_MS_CLASSLESS_ROUTES in requested:  # Windows asks for it by its old code
            opts.append((OPT_MS_CLASSLESS_ROUTES, encode_classless_routes(routes)))
    return opts


def _in_request_order(opts: DhcpOptions, requested: bytes) -> DhcpOptions:
    """`opts` with those the parameter request list names first, in its order (RFC 2131 4.3.1 asks
    servers to try to); the rest follow. Nothing is added or left out for the list."""
    rank = {code: i for i, code in reversed(list(enumerate(requested)))}
    return sorted(opts, key=lambda o: rank.get(o[0], len(requested)))


def _reply4(msg: Dhcp4, mtype: int, *, yiaddr: str, ciaddr: str, sid: str,
            options: DhcpOptions) -> Dhcp4:
    """The BOOTP reply fields of RFC 2131 table 3: xid, flags, giaddr and chaddr echoed."""
    return Dhcp4(op=BOOTREPLY, htype=msg.htype, hlen=msg.hlen, xid=msg.xid, broadcast=msg.broadcast,
                 flags_reserved=msg.flags_reserved, ciaddr=ciaddr, yiaddr=yiaddr, giaddr=msg.giaddr,
                 chaddr=msg.chaddr, chaddr_pad=msg.chaddr_pad,
                 options=[(OPT_MESSAGE_TYPE, bytes((mtype,))), (OPT_SERVER_ID, encode_ipv4s([sid])),
                          *options])


def dhcp4_reply(frame: bytes, port: Port, subnets: Sequence[Subnet], *, server_mac: str,
                mtu: int) -> bytes | None:
    """The OFFER/ACK/NAK for a DHCPv4 request `port` sent, or None.

    Answered: DISCOVER (OFFER), REQUEST (ACK, or NAK when the requested address or ciaddr is not the
    port's), INFORM (ACK without lease or yiaddr). Not answered: a request whose chaddr is not the
    port's MAC, a REQUEST naming another server (option 54), RELEASE, DECLINE, plain BOOTP, and ports
    with no IPv4 address in a DHCP-enabled subnet. The server identifier is `server_id(subnet)`.

    The reply goes straight back to the client, relayed or not (giaddr is echoed): to ciaddr when set,
    else broadcast when the client set the broadcast flag, else to yiaddr at chaddr. NAKs are broadcast
    (RFC 2131 4.1), on Ethernet too.
    """
    if not is_dhcp4(frame):
        return None
    if not 68 <= mtu <= 0xFFFF:
        raise ValueError(f"DHCP interface MTU {mtu} is out of range")
    off = Ethernet.size
    _, off, end = IPv4.parse(frame, off)
    _, off, end = Udp.parse(frame[:end], off)
    msg, _, _ = Dhcp4.parse(frame[:end], off)
    if msg.op != BOOTREQUEST or msg.htype != 1 or msg.hlen != 6 or msg.chaddr != port.mac:
        return None
    mtype = msg.message_type
    lease = _lease4(port, subnets)
    if lease is None or mtype not in (DHCPDISCOVER, DHCPREQUEST, DHCPINFORM):
        return None
    addr, subnet = lease
    sid = server_id(subnet)
    requested = msg.option(OPT_PARAM_REQUEST) or b""
    config = _config_options(subnet, mtu, requested)
    times = [(OPT_LEASE_TIME, LEASE_S.to_bytes(4, "big")), (OPT_T1, DHCP4_T1_S.to_bytes(4, "big")),
             (OPT_T2, DHCP4_T2_S.to_bytes(4, "big"))]
    if mtype == DHCPINFORM:  # RFC 2131 4.3.5: configuration only, no lease
        reply = _reply4(msg, DHCPACK, yiaddr="0.0.0.0", ciaddr=msg.ciaddr, sid=sid,
                        options=_in_request_order(config, requested))
    elif mtype == DHCPDISCOVER:
        reply = _reply4(msg, DHCPOFFER, yiaddr=addr, ciaddr="0.0.0.0", sid=sid,
                        options=_in_request_order(times + config, requested))
    else:
        named = msg.ipv4_option(OPT_SERVER_ID)
        if named is not None and named != sid:
            return None  # the client chose another server's offer (SELECTING)
        wanted = msg.ipv4_option(OPT_REQUESTED_IP) or msg.ciaddr  # SELECTING/INIT-REBOOT or RENEWING
        if wanted != addr:
            nak = _reply4(msg, DHCPNAK, yiaddr="0.0.0.0", ciaddr="0.0.0.0", sid=sid,
                          options=[(OPT_MESSAGE, f"address {wanted} is not yours".encode())])
            return _frame4(nak, server_mac, sid, BROADCAST_MAC, "255.255.255.255")
        reply = _reply4(msg, DHCPACK, yiaddr=addr, ciaddr=msg.ciaddr, sid=sid,
                        options=_in_request_order(times + config, requested))
    if msg.ciaddr != "0.0.0.0":
        return _frame4(reply, server_mac, sid, msg.chaddr, msg.ciaddr)
    if msg.broadcast or mtype == DHCPINFORM:
        return _frame4(reply, server_mac, sid, BROADCAST_MAC, "255.255.255.255")
    return _frame4(reply, server_mac, sid, msg.chaddr, reply.yiaddr)


def _frame4(reply: Dhcp4, server_mac: str, sid: str, dst_mac: str, dst_ip: str) -> bytes:
    return build_stack([Ethernet(dst=dst_mac, src=server_mac, type=ETH_P_IP),
                        IPv4(src=sid, dst=dst_ip, proto=IPPROTO_UDP, ttl=64),
                        Udp(sport=DHCP4_SERVER_PORT, dport=DHCP4_CLIENT_PORT), reply])


# ------------------------------------------------------------------------------------------------ DHCPv6


def _mode(subnet: Subnet) -> str | None:
    return subnet.ipv6_ra_mode or subnet.ipv6_address_mode


def _port_subnets6(port: Port, subnets: Sequence[Subnet]) -> list[tuple[str, Subnet]]:
    """(port address, subnet) for each DHCP-enabled IPv6 subnet holding one of the port's addresses."""
    out = []
    for subnet in subnets:
        if subnet.version != 6 or not subnet.dhcp:
            continue
        net = ipaddress.IPv6Network(subnet.cidr)
        out += [(ip, subnet) for ip in port.ips if ":" in ip and ipaddress.IPv6Address(ip) in net]
    return out


def _stateful(subnet: Subnet) -> bool:
    """Addresses by DHCPv6: dhcpv6-stateful, and no address mode at all, which Neutron's dnsmasq
    ("static" mode) and OVN both serve statefully."""
    return subnet.ipv6_address_mode in (STATEFUL, None)


def _ia_options(msg: Dhcp6, addrs: list[str], *, drop_stale: bool) -> list[Dhcp6Option]:
    """An IA_NA answer per IA_NA in `msg`: the port's addresses go to the first, the others get
    NoAddrsAvail (an address belongs to one IA). With `drop_stale`, addresses the client holds that are
    not the port's come back with lifetimes 0 (RFC 8415 18.3.4)."""
    out = []
    for n, opt in enumerate(msg.options_of(OPTION_IA_NA)):
        ia = IaNa.from_bytes(opt.data)
        held = [a.address for a in ia.addresses()] if drop_stale else []
        inner = [IaAddress(address=a, preferred_lifetime=LEASE_S, valid_lifetime=LEASE_S).option_tlv()
                 for a in addrs] if n == 0 else []
        inner += [IaAddress(address=a).option_tlv() for a in held if a not in addrs]
        if n > 0:
            inner.append(StatusCode(status=STATUS_NO_ADDRS_AVAIL, message="one IA per port").option_tlv())
        out.append(IaNa(iaid=ia.iaid, t1=DHCP6_T1_S if n == 0 else 0, t2=DHCP6_T2_S if n == 0 else 0,
                        options=inner).option_tlv())
    return out


def _dns6(subnets: list[Subnet]) -> list[Dhcp6Option]:
    dns = list(dict.fromkeys(ip for s in subnets for ip in s.dns if ":" in ip))
    return [Dhcp6Option(code=OPTION_DNS_SERVERS, data=encode_ipv6s(dns))] if dns else []


def _answer6(msg: Dhcp6, port: Port, subnets: Sequence[Subnet], duid: bytes) -> Dhcp6 | None:
    """The DHCPv6 message answering `msg`, or None (RFC 8415 16: messages to discard, and ours)."""
    client = msg.option(OPTION_CLIENTID)
    server = msg.option(OPTION_SERVERID)
    mine = _port_subnets6(port, subnets)
    stateful = [(ip, s) for ip, s in mine if _stateful(s)]
    if server is not None and server.data != duid:
        return None  # addressed to another server
    if client is None and msg.msg_type != INFORMATION_REQUEST:
        return None
    head = [Dhcp6Option(code=OPTION_SERVERID, data=duid)] + ([client] if client is not None else [])
    addrs = [ip for ip, _ in stateful]
    dns = _dns6([s for _, s in stateful])
    if msg.msg_type == INFORMATION_REQUEST:
        if not mine:
            return None
        return Dhcp6(msg_type=REPLY, xid=msg.xid, options=head + _dns6([s for _, s in mine]))
    if not stateful:
        return None
    if msg.msg_type == SOLICIT:
        if server is not None or not msg.options_of(OPTION_IA_NA):
            return None
        rapid = msg.option(OPTION_RAPID_COMMIT) is not None
        extra = [Dhcp6Option(code=OPTION_RAPID_COMMIT)] if rapid else []
        return Dhcp6(msg_type=REPLY if rapid else ADVERTISE, xid=msg.xid,
                     options=head + extra + _ia_options(msg, addrs, drop_stale=False) + dns)
    if msg.msg_type in (REQUEST, RENEW, REBIND):
        if (server is None) != (msg.msg_type == REBIND):
            return None  # Request/Renew must name us, Rebind must name nobody
        return Dhcp6(msg_type=REPLY, xid=msg.xid,
                     options=head + _ia_options(msg, addrs, drop_stale=True) + dns)
    if msg.msg_type == CONFIRM:
        held = [a.address for o in msg.options_of(OPTION_IA_NA) for a in IaNa.from_bytes(o.data).addresses()]
        if server is not None or not held:
            return None
        nets = [ipaddress.IPv6Network(s.cidr) for _, s in stateful]
        on_link = all(any(ipaddress.IPv6Address(a) in net for net in nets) for a in held)
        status = StatusCode(status=STATUS_SUCCESS if on_link else STATUS_NOT_ON_LINK,
                            message="" if on_link else "not on link")
        return Dhcp6(msg_type=REPLY, xid=msg.xid, options=[*head, status.option_tlv()])
    if msg.msg_type in (RELEASE, DECLINE) and server is not None:
        # RFC 8415 18.3.7/18.3.8: acknowledged, or the client retransmits; the address stays the port's
        return Dhcp6(msg_type=REPLY, xid=msg.xid, options=[*head, StatusCode().option_tlv()])
    return None


def dhcp6_reply(frame: bytes, port: Port, subnets: Sequence[Subnet], *, server_mac: str) -> bytes | None:
    """The ADVERTISE/REPLY for a DHCPv6 message `port` sent, or None.

    Answered for a port with an address in a DHCP-enabled IPv6 subnet: INFORMATION-REQUEST (DNS only)
    in any address mode; on stateful subnets (`_stateful`) also SOLICIT (ADVERTISE, or REPLY with Rapid
    Commit when asked), REQUEST/RENEW/REBIND (REPLY with the port's addresses in IA_NA), CONFIRM (REPLY
    with Success or NotOnLink), RELEASE/DECLINE (REPLY Success). Not answered: frames whose Ethernet
    source is not the port, messages to another server (DUID or unicast address), messages RFC 8415 16
    says to discard. The server DUID is DUID-LL of `server_mac`; replies come from its link-local
    address to the client's source address, UDP 547 -> 546.
    """
    if not is_dhcp6(frame):
        return None
    eth, off, _ = Ethernet.parse(frame)
    ip6, off, end = IPv6.parse(frame, off)
    _, off, end = Udp.parse(frame[:end], off)
    msg = Dhcp6Any.parse(frame[:end], off)[0]
    if not isinstance(msg, Dhcp6):  # a relay agent's message: relays talk to relays and servers, not VMs
        return None
    src_ip = link_local(server_mac)
    if eth.src != port.mac or ip6.src == "::" or ip6.dst not in (ALL_DHCP_RELAY_AGENTS_AND_SERVERS, src_ip):
        return None
    reply = _answer6(msg, port, subnets, duid_ll(server_mac))
    if reply is None:
        return None
    return build_stack([Ethernet(dst=eth.src, src=server_mac, type=ETH_P_IPV6),
                        IPv6(src=src_ip, dst=ip6.src, next_header=IPPROTO_UDP, hop_limit=255),
                        Udp(sport=DHCP6_SERVER_PORT, dport=DHCP6_CLIENT_PORT), reply])


# ------------------------------------------------------------------------------------ router advertisement


def router_advert(frame: bytes, port: Port, subnets: Sequence[Subnet], *, router_mac: str,
                  mtu: int) -> bytes | None:
    """The router advertisement answering a router solicitation `port` sent, or None.

    Advertised: every IPv6 subnet with an RA mode (or, failing that, an address mode), one prefix
    information option each (on-link; autonomous for slaac and dhcpv6-stateless), M for
    dhcpv6-stateful, O for dhcpv6-stateless, router lifetime 1800 s when a subnet has a gateway (the VM
    then routes via `link_local(router_mac)`), the MTU (left out below IPv6's 1280) and `router_mac`.
    Not answered: solicitations RFC 4861 6.1.1 calls invalid (hop limit not 255, code not 0, a source
    link-layer option from ::), frames whose Ethernet source is not the port, and networks without
    such a subnet. The reply goes to the solicitation's source, or all-nodes when that is ::.
    """
    if not is_router_solicit(frame):
        return None
    eth, off, _ = Ethernet.parse(frame)
    ip6, off, end = IPv6.parse(frame, off)
    rs, _, _ = RouterSolicit.parse(frame[:end], off)
    if eth.src != port.mac or ip6.hop_limit != 255 or rs.code != 0:
        return None
    if ip6.src == "::" and rs.lladdr() is not None:
        return None
    advertised = [s for s in subnets if s.version == 6 and _mode(s) is not None]
    if not advertised:
        return None
    prefixes = []
    for s in advertised:
        net = ipaddress.IPv6Network(s.cidr)
        prefixes.append(NdPrefixInfo(prefix_length=net.prefixlen, onlink=1,
                                     autonomous=int(_mode(s) in (SLAAC, STATELESS)),
                                     valid_lifetime=PREFIX_VALID_S, preferred_lifetime=PREFIX_PREFERRED_S,
                                     prefix=str(net.network_address)).option())
    options = [NdOption.lladdr(router_mac)]
    if mtu >= IPV6_MIN_MTU:
        options.append(NdOption.mtu_option(mtu))
    has_gateway = any(s.gateway_ip is not None for s in advertised)
    ra = RouterAdvert(cur_hop_limit=64, managed=int(any(_mode(s) == STATEFUL for s in advertised)),
                      other=int(any(_mode(s) == STATELESS for s in advertised)),
                      router_lifetime=RA_ROUTER_LIFETIME_S if has_gateway else 0,
                      options=options + prefixes)
    dst, dst_mac = (ip6.src, eth.src) if ip6.src != "::" else (ALL_NODES, ALL_NODES_MAC)
    return build_stack([Ethernet(dst=dst_mac, src=router_mac, type=ETH_P_IPV6),
                        IPv6(src=link_local(router_mac), dst=dst, next_header=IPPROTO_ICMPV6, hop_limit=255),
                        ra])
