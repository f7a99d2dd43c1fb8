"""DHCPv4/DHCPv6/RA codecs and the native responders, with requests built by our own codecs.

scapy's and tshark's view of the same bytes is in tests/interop/test_dhcp_scapy.py.
"""

import contextlib
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netweave.dataplane.dhcp import (
    DHCP4_T1_S,
    DHCP4_T2_S,
    DHCP6_T1_S,
    DHCP6_T2_S,
    LEASE_S,
    dhcp4_reply,
    dhcp6_reply,
    is_dhcp4,
    is_dhcp6,
    is_router_solicit,
    link_local,
    router_advert,
    server_id,
)
from netweave.model import Port, Subnet
from netweave.packet import (
    Arp,
    DecodeError,
    Dhcp4,
    Dhcp6,
    Dhcp6Option,
    Dhcp6Relay,
    Ethernet,
    IaAddress,
    IaNa,
    IPv4,
    IPv6,
    IPv6HopByHop,
    NdOption,
    NdPrefixInfo,
    RouterAdvert,
    RouterSolicit,
    StatusCode,
    Udp,
    build_stack,
    decode,
    decode_classless_routes,
    encode_classless_routes,
    internet_checksum,
    pseudo_header,
)
from netweave.packet import dhcp as d
from netweave.packet.dhcp import Dhcp6Any

VM_MAC = "fa:16:3e:00:00:05"
OTHER_MAC = "fa:16:3e:00:00:99"
SERVER_MAC = "fa:16:3e:aa:00:01"
VM_LL = link_local(VM_MAC)
SERVER_DUID = d.duid_ll(SERVER_MAC)
CLIENT_DUID = d.duid_ll(VM_MAC)

V4 = Subnet(cidr="10.0.0.0/24", gateway_ip="10.0.0.1", dhcp=True, dns=("10.0.0.2", "2001:db8::53"),
            host_routes=(("192.168.0.0/16", "10.0.0.254"),))
STATEFUL = Subnet(cidr="2001:db8:1::/64", gateway_ip="2001:db8:1::1", dhcp=True, dns=("2001:db8::53",),
                  ipv6_address_mode="dhcpv6-stateful", ipv6_ra_mode="dhcpv6-stateful")
STATELESS = Subnet(cidr="2001:db8:2::/64", gateway_ip="2001:db8:2::1", dhcp=True, dns=("2001:db8::54",),
                   ipv6_address_mode="dhcpv6-stateless", ipv6_ra_mode="dhcpv6-stateless")
SLAAC = Subnet(cidr="2001:db8:3::/64", gateway_ip="2001:db8:3::1", dhcp=True,
               ipv6_address_mode="slaac", ipv6_ra_mode="slaac")
CID = Dhcp6Option(code=d.OPTION_CLIENTID, data=CLIENT_DUID)
SID = Dhcp6Option(code=d.OPTION_SERVERID, data=SERVER_DUID)
PORT = Port(name="vm1", vni=100, mac=VM_MAC, ips=("10.0.0.5", "2001:db8:1::5", "2001:db8:2::5"))


def opts(msg: Dhcp4) -> dict[int, bytes]:
    return dict(msg.options)


def assert_l4_checksum(ip: IPv4 | IPv6, proto: int, segment: bytes) -> None:
    """The ones' complement sum over pseudo-header and segment verifies (RFC 1071: sums to zero)."""
    assert internet_checksum(pseudo_header(ip.src, ip.dst, proto, len(segment)) + segment) == 0


# ------------------------------------------------------------------------------------------ DHCPv4 codec


def test_dhcp4_build_pads_to_bootp_minimum_and_parses_back() -> None:
    msg = Dhcp4(xid=0x12345678, broadcast=1, chaddr=VM_MAC,
                options=[(d.OPT_MESSAGE_TYPE, b"\x01"), (d.OPT_PARAM_REQUEST, bytes((1, 3, 6)))])
    wire = msg.build()
    assert len(wire) == d.BOOTP_MIN_LEN
    assert wire[236:240] == d.MAGIC_COOKIE
    assert wire[240:249] == b"\x35\x01\x01\x37\x03\x01\x03\x06\xff"
    assert wire[10:12] == b"\x80\x00"  # the broadcast flag is the top bit of flags
    assert wire[28:34] == bytes.fromhex("fa163e000005")
    assert Dhcp4.from_bytes(wire) == msg
    assert msg.message_type == d.DHCPDISCOVER


def test_dhcp4_long_options_split_and_concatenated_rfc3396() -> None:
    data = bytes(range(256)) * 2  # 512 bytes: three instances on the wire
    wire = Dhcp4(options=[(224, data), (d.OPT_MESSAGE_TYPE, b"\x05")]).build()
    opt = wire[240:]
    assert (opt[0], opt[1], opt[257], opt[258], opt[514], opt[515]) == (224, 255, 224, 255, 224, 2)
    assert Dhcp4.from_bytes(wire).options == [(224, data), (d.OPT_MESSAGE_TYPE, b"\x05")]


def test_dhcp4_pad_end_and_missing_end() -> None:
    fixed = Dhcp4().build()[:236]
    # pads between options, End, then garbage after End that must be ignored
    body = d.MAGIC_COOKIE + b"\x00\x00\x35\x01\x03\x00\x32\x04\x0a\x00\x00\x05\xff\x07\x07\x07"
    assert Dhcp4.from_bytes(fixed + body).options == [(53, b"\x03"), (50, bytes((10, 0, 0, 5)))]
    # no End: the options run to the end of the datagram
    assert Dhcp4.from_bytes(fixed + d.MAGIC_COOKIE + b"\x35\x01\x03").options == [(53, b"\x03")]
    # plain BOOTP without a vendor area
    assert Dhcp4.from_bytes(fixed).options == []
    assert Dhcp4.from_bytes(fixed).message_type is None


@pytest.mark.parametrize(("tail", "why"), [
    (b"\x63\x82\x53", "truncated cookie"),
    (b"\x01\x02\x03\x04\x35\x01\x01\xff", "bad cookie"),
    (d.MAGIC_COOKIE + b"\x35", "option without length"),
    (d.MAGIC_COOKIE + b"\x35\x05\x01", "option longer than the datagram"),
])
def test_dhcp4_malformed_raises_decode_error(tail: bytes, why: str) -> None:
    with pytest.raises(DecodeError):
        Dhcp4.from_bytes(Dhcp4().build()[:236] + tail)


def test_dhcp4_typed_option_errors() -> None:
    msg = Dhcp4(options=[(d.OPT_MESSAGE_TYPE, b"\x01\x02"), (d.OPT_SERVER_ID, b"\x0a\x00")])
    with pytest.raises(DecodeError):
        _ = msg.message_type
    with pytest.raises(DecodeError):
        msg.ipv4_option(d.OPT_SERVER_ID)
    with pytest.raises(DecodeError):
        d.decode_ipv4s(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="framing"):
        Dhcp4(options=[(255, b"")]).build()


# RFC 3442 section 3's table: subnet number/mask -> destination descriptor
RFC3442_DESCRIPTORS = [
    ("0.0.0.0/0", bytes((0,))),
    ("10.0.0.0/8", bytes((8, 10))),
    ("10.0.0.0/24", bytes((24, 10, 0, 0))),
    ("10.17.0.0/16", bytes((16, 10, 17))),
    ("10.27.129.0/24", bytes((24, 10, 27, 129))),
    ("10.229.0.128/25", bytes((25, 10, 229, 0, 128))),
    ("10.198.122.47/32", bytes((32, 10, 198, 122, 47))),
]


@pytest.mark.parametrize(("cidr", "descriptor"), RFC3442_DESCRIPTORS)
def test_classless_routes_rfc3442_examples(cidr: str, descriptor: bytes) -> None:
    router = "10.0.0.1"
    data = descriptor + bytes((10, 0, 0, 1))
    assert encode_classless_routes([(cidr, router)]) == data
    assert decode_classless_routes(data) == [(cidr, router)]


def test_classless_routes_several_and_errors() -> None:
    routes = [(cidr, f"10.0.0.{i + 1}") for i, (cidr, _) in enumerate(RFC3442_DESCRIPTORS)]
    assert decode_classless_routes(encode_classless_routes(routes)) == routes
    for bad in (bytes((33, 1, 2, 3, 4, 5, 1, 2, 3, 4)), bytes((24, 10, 0)), bytes((8, 10, 1, 2, 3)),
                bytes((8, 10, 0, 0, 0, 1, 7))):
        with pytest.raises(DecodeError):
            decode_classless_routes(bad)
    with pytest.raises(DecodeError):  # host bits set beyond the prefix
        decode_classless_routes(bytes((4, 0xFF, 1, 2, 3, 4)))


dhcp4_options = st.lists(st.tuples(st.integers(1, 254), st.binary(max_size=600)),
                         unique_by=lambda o: o[0], max_size=6)


@settings(max_examples=200)
@given(xid=st.integers(0, 2**32 - 1), flags=st.integers(0, 2**15 - 1), bcast=st.integers(0, 1),
       chaddr=st.binary(min_size=6, max_size=6), options=dhcp4_options)
def test_dhcp4_round_trip(xid: int, flags: int, bcast: int, chaddr: bytes,
                          options: list[tuple[int, bytes]]) -> None:
    msg = Dhcp4(op=2, xid=xid, broadcast=bcast, flags_reserved=flags, ciaddr="192.0.2.1",
                chaddr=chaddr.hex(":"), sname=b"s".ljust(64, b"\0"), options=options)
    assert Dhcp4.from_bytes(msg.build()) == msg


@settings(max_examples=200)
@given(routes=st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32), st.integers(0, 2**32 - 1)),
                       max_size=5))
def test_classless_routes_round_trip(routes: list[tuple[int, int, int]]) -> None:
    import ipaddress

    pairs = [(str(ipaddress.IPv4Network((dest, width), strict=False)), str(ipaddress.IPv4Address(hop)))
             for dest, width, hop in routes]
    assert decode_classless_routes(encode_classless_routes(pairs)) == pairs


# ------------------------------------------------------------------------------------------ DHCPv6 codec


def test_dhcp6_nested_options_round_trip() -> None:
    addr = IaAddress(address="2001:db8::5", preferred_lifetime=10, valid_lifetime=20,
                     options=[StatusCode(status=0, message="fine ✓").option_tlv()])
    ia = IaNa(iaid=7, t1=1, t2=2, options=[addr.option_tlv()])
    msg = Dhcp6(msg_type=d.REPLY, xid=0xABCDEF, options=[
        Dhcp6Option(code=d.OPTION_SERVERID, data=SERVER_DUID), ia.option_tlv(),
        Dhcp6Option(code=d.OPTION_RAPID_COMMIT),
        Dhcp6Option(code=d.OPTION_DNS_SERVERS, data=d.encode_ipv6s(["2001:db8::53", "::1"]))])
    wire = msg.build()
    assert wire[:4] == b"\x07\xab\xcd\xef"
    assert wire[4:8] == b"\x00\x02\x00\x0a"  # option 2, length 10 (DUID-LL)
    assert b"\x00\x03\x00\x01" + bytes.fromhex("fa163eaa0001") == SERVER_DUID
    back = Dhcp6.from_bytes(wire)
    assert back.build() == wire  # parsed options carry their lengths: compare as bytes
    ia_back = IaNa.from_bytes(back.options[1].data)
    assert ia_back.build() == ia.build()
    assert [a.build() for a in ia_back.addresses()] == [addr.build()]
    assert StatusCode.from_bytes(ia_back.addresses()[0].options[0].data).message == "fine ✓"
    assert d.decode_ipv6s(back.options[3].data) == ["2001:db8::53", "::1"]
    assert d.decode_oro(d.encode_oro([23, 24])) == [23, 24]


def test_dhcp6_any_picks_the_relay_layout_by_type() -> None:
    inner = Dhcp6.from_bytes(Dhcp6(msg_type=d.SOLICIT, xid=1, options=[CID]).build())
    relay = Dhcp6Relay.from_bytes(Dhcp6Relay(msg_type=d.RELAY_FORW, hop_count=1, link_addr="2001:db8::1",
                                             peer_addr="fe80::1",
                                             options=[Dhcp6Option(code=9, data=inner.build())]).build())
    wire = relay.build()
    assert wire[:2] == b"\x0c\x01" and len(wire) == 34 + 4 + len(inner.build())
    parsed = Dhcp6Any.parse(wire)[0]
    assert isinstance(parsed, Dhcp6Relay) and parsed == relay
    assert Dhcp6.from_bytes(parsed.options[0].data) == inner
    parsed = Dhcp6Any.parse(inner.build())[0]
    assert type(parsed) is Dhcp6 and parsed == inner


@pytest.mark.parametrize("wire", [
    b"\x01\x00\x00",  # shorter than type + xid
    b"\x01\x00\x00\x01\x00\x01\x00\x05\x01",  # option longer than the message
    b"\x01\x00\x00\x01\x00\x01",  # option header cut
])
def test_dhcp6_malformed_raises_decode_error(wire: bytes) -> None:
    with pytest.raises(DecodeError):
        Dhcp6.from_bytes(wire)


def test_dhcp6_typed_option_errors() -> None:
    for fn, data in ((d.decode_ipv6s, bytes(15)), (d.decode_oro, b"\x00"),
                     (IaNa.from_bytes, bytes(11)), (IaAddress.from_bytes, bytes(23)),
                     (StatusCode.from_bytes, b"\x00\x00\xff\xfe")):
        with pytest.raises(DecodeError):
            fn(data)


dhcp6_options = st.lists(st.builds(lambda c, b: Dhcp6Option(code=c, data=b), st.integers(0, 0xFFFF),
                                   st.binary(max_size=40)), max_size=5)


@settings(max_examples=200)
@given(msg_type=st.integers(1, 11), xid=st.integers(0, 2**24 - 1), options=dhcp6_options)
def test_dhcp6_round_trip(msg_type: int, xid: int, options: list[Dhcp6Option]) -> None:
    msg = Dhcp6(msg_type=msg_type, xid=xid, options=options)
    back = Dhcp6.from_bytes(msg.build())
    assert back.msg_type == msg_type and back.xid == xid
    assert [(o.code, o.data) for o in back.options] == [(o.code, o.data) for o in options]


# ---------------------------------------------------------------------------------------- RS/RA codec


def test_router_solicit_and_advert_round_trip() -> None:
    rs = RouterSolicit(options=[NdOption.lladdr(VM_MAC)])
    ip = IPv6(src=VM_LL, dst="ff02::2", next_header=58, hop_limit=255)
    wire = build_stack([ip, rs])
    assert wire[40:48] == b"\x85\x00" + wire[42:44] + bytes(4)
    back, _, _ = RouterSolicit.parse(wire, 40)
    assert back.lladdr() == VM_MAC and back.reserved == 0
    pio = NdPrefixInfo(prefix_length=64, onlink=1, autonomous=0, valid_lifetime=86400,
                       preferred_lifetime=14400, prefix="2001:db8::")
    ra = RouterAdvert(cur_hop_limit=64, managed=1, other=0, preference=3, router_lifetime=1800,
                      reachable_time=5, retrans_timer=6,
                      options=[NdOption.lladdr(SERVER_MAC), NdOption.mtu_option(1450), pio.option()])
    wire = build_stack([ip, ra])
    assert wire[40:56] == (b"\x86\x00" + wire[42:44] + b"\x40\x98\x07\x08" + (5).to_bytes(4, "big")
                           + (6).to_bytes(4, "big"))
    assert_l4_checksum(ip, 58, wire[40:])
    back_ra, _, _ = RouterAdvert.parse(wire, 40)
    assert back_ra.replace(checksum=None).options[0].replace(length=None) == ra.options[0]
    assert back_ra.options[1].mtu == 1450
    assert back_ra.options[2].prefix_info == pio
    assert back_ra.options[0].prefix_info is None and back_ra.options[0].mtu is None
    assert (back_ra.managed, back_ra.other, back_ra.preference, back_ra.router_lifetime) == (1, 0, 3, 1800)
    with pytest.raises(DecodeError):
        _ = NdOption(type=3, data=bytes(6)).prefix_info


def test_link_local_is_modified_eui64() -> None:
    assert link_local("52:54:00:12:34:56") == "fe80::5054:ff:fe12:3456"  # RFC 4291 appendix A's recipe
    assert link_local("00:00:00:00:00:00") == "fe80::200:ff:fe00:0"
    assert link_local("02:00:00:00:00:01") == "fe80::ff:fe00:1"


# --------------------------------------------------------------------------------- DHCPv4 responder


def dhcp4_request(mtype: int, *, chaddr: str = VM_MAC, ciaddr: str = "0.0.0.0", broadcast: int = 0,
                  extra: list[tuple[int, bytes]] | None = None, prl: bytes = bytes((1, 3, 6, 15, 121, 26)),
                  ip_options: bytes = b"", giaddr: str = "0.0.0.0") -> bytes:
    msg = Dhcp4(xid=0xCAFE0001, broadcast=broadcast, ciaddr=ciaddr, giaddr=giaddr, chaddr=chaddr,
                options=[(d.OPT_MESSAGE_TYPE, bytes((mtype,))), *(extra or []), (d.OPT_PARAM_REQUEST, prl)])
    src = ciaddr if ciaddr != "0.0.0.0" else "0.0.0.0"
    return build_stack([Ethernet(src=chaddr, dst="ff:ff:ff:ff:ff:ff"),
                        IPv4(src=src, dst="255.255.255.255", proto=17, options=ip_options),
                        Udp(sport=68, dport=67), msg])


def reply4(frame: bytes, port: Port = PORT, subnets: tuple[Subnet, ...] = (V4,)
           ) -> tuple[Ethernet, IPv4, Udp, Dhcp4] | None:
    out = dhcp4_reply(frame, port, subnets, server_mac=SERVER_MAC, mtu=1450)
    if out is None:
        return None
    pkt = decode(out)
    ip = pkt[IPv4]
    assert ip.checksum_ok()
    assert_l4_checksum(ip, 17, out[34:])
    assert pkt[Udp].sport == 67 and pkt[Udp].dport == 68
    assert pkt[Ethernet].src == SERVER_MAC
    return pkt[Ethernet], ip, pkt[Udp], Dhcp4.from_bytes(pkt.payload)


def test_discover_gets_offer_with_every_option() -> None:
    got = reply4(dhcp4_request(d.DHCPDISCOVER))
    assert got is not None
    eth, ip, _, msg = got
    assert (eth.dst, ip.src, ip.dst) == (VM_MAC, "10.0.0.1", "10.0.0.5")
    assert (msg.op, msg.xid, msg.chaddr) == (2, 0xCAFE0001, VM_MAC)
    assert (msg.yiaddr, msg.ciaddr) == ("10.0.0.5", "0.0.0.0")
    o = opts(msg)
    assert o[53] == bytes((d.DHCPOFFER,))
    assert o[54] == bytes((10, 0, 0, 1))
    assert int.from_bytes(o[51], "big") == LEASE_S == 86400
    assert int.from_bytes(o[58], "big") == DHCP4_T1_S == 43200
    assert int.from_bytes(o[59], "big") == DHCP4_T2_S == 75600
    assert o[1] == bytes((255, 255, 255, 0))
    assert o[3] == bytes((10, 0, 0, 1))
    assert d.decode_ipv4s(o[6]) == ["10.0.0.2"]  # the IPv6 DNS server is not for DHCPv4
    assert int.from_bytes(o[26], "big") == 1450
    assert o[28] == bytes((10, 0, 0, 255))
    assert decode_classless_routes(o[121]) == [("192.168.0.0/16", "10.0.0.254"), ("0.0.0.0/0", "10.0.0.1")]
    assert 249 not in o
    # 53 and 54 lead; then the parameter request list's order (1, 3, 6, 121, 26); then the rest
    assert [c for c, _ in msg.options] == [53, 54, 1, 3, 6, 121, 26, 51, 58, 59, 28]


def test_offer_broadcast_flag_ip_options_and_ms_routes() -> None:
    ra = b"\x94\x04\x00\x00"  # IPv4 Router Alert option: IHL 6
    frame = dhcp4_request(d.DHCPDISCOVER, broadcast=1, ip_options=ra, prl=bytes((249, 121, 1)))
    assert is_dhcp4(frame)
    got = reply4(frame)
    assert got is not None
    eth, ip, _, msg = got
    assert (eth.dst, ip.dst, msg.broadcast) == ("ff:ff:ff:ff:ff:ff", "255.255.255.255", 1)
    assert [c for c, _ in msg.options][:4] == [53, 54, 249, 121]
    assert opts(msg)[249] == opts(msg)[121]


def test_request_selecting_and_init_reboot_get_ack() -> None:
    ours = [(50, bytes((10, 0, 0, 5))), (54, bytes((10, 0, 0, 1)))]
    for extra in (ours, ours[:1]):
        got = reply4(dhcp4_request(d.DHCPREQUEST, extra=extra))
        assert got is not None
        _, ip, _, msg = got
        assert opts(msg)[53] == bytes((d.DHCPACK,))
        assert (ip.dst, msg.yiaddr, msg.ciaddr) == ("10.0.0.5", "10.0.0.5", "0.0.0.0")
        assert 51 in opts(msg)


def test_request_renewing_is_acked_to_ciaddr() -> None:
    got = reply4(dhcp4_request(d.DHCPREQUEST, ciaddr="10.0.0.5", giaddr="10.9.9.9"))
    assert got is not None
    eth, ip, _, msg = got
    assert (eth.dst, ip.dst, msg.ciaddr, msg.yiaddr, msg.giaddr) == (
        VM_MAC, "10.0.0.5", "10.0.0.5", "10.0.0.5", "10.9.9.9")
    assert opts(msg)[53] == bytes((d.DHCPACK,))


@pytest.mark.parametrize("frame", [
    dhcp4_request(d.DHCPREQUEST, extra=[(50, bytes((10, 0, 0, 6)))]),  # INIT-REBOOT, wrong address
    dhcp4_request(d.DHCPREQUEST, extra=[(50, bytes((10, 0, 0, 6))), (54, bytes((10, 0, 0, 1)))]),
    dhcp4_request(d.DHCPREQUEST, ciaddr="10.0.0.7"),  # RENEWING someone else's address
    dhcp4_request(d.DHCPREQUEST),  # neither requested address nor ciaddr
], ids=["init-reboot", "selecting", "renewing", "nothing"])
def test_request_for_another_address_gets_nak(frame: bytes) -> None:
    got = reply4(frame)
    assert got is not None
    eth, ip, _, msg = got
    assert (eth.dst, ip.dst) == ("ff:ff:ff:ff:ff:ff", "255.255.255.255")
    assert [c for c, _ in msg.options] == [53, 54, 56]
    assert opts(msg)[53] == bytes((d.DHCPNAK,))
    assert (msg.yiaddr, msg.ciaddr, msg.xid) == ("0.0.0.0", "0.0.0.0", 0xCAFE0001)


def test_inform_gets_ack_without_lease() -> None:
    got = reply4(dhcp4_request(d.DHCPINFORM, ciaddr="10.0.0.5"))
    assert got is not None
    _, ip, _, msg = got
    o = opts(msg)
    assert o[53] == bytes((d.DHCPACK,))
    assert msg.yiaddr == "0.0.0.0" and ip.dst == "10.0.0.5"
    assert not {51, 58, 59} & set(o)
    assert {1, 3, 6, 26, 121} <= set(o)
    got = reply4(dhcp4_request(d.DHCPINFORM))  # no ciaddr: broadcast
    assert got is not None and got[1].dst == "255.255.255.255"


@pytest.mark.parametrize(("frame", "port", "subnets"), [
    (dhcp4_request(d.DHCPREQUEST, extra=[(50, bytes((10, 0, 0, 5))), (54, bytes((10, 0, 0, 2)))]),
     PORT, (V4,)),  # the client chose another server
    (dhcp4_request(d.DHCPRELEASE, ciaddr="10.0.0.5"), PORT, (V4,)),
    (dhcp4_request(d.DHCPDECLINE, extra=[(50, bytes((10, 0, 0, 5)))]), PORT, (V4,)),
    (dhcp4_request(d.DHCPDISCOVER, chaddr=OTHER_MAC), PORT, (V4,)),
    (dhcp4_request(d.DHCPDISCOVER), PORT, (Subnet(cidr="10.0.0.0/24", dhcp=False),)),
    (dhcp4_request(d.DHCPDISCOVER), PORT, (Subnet(cidr="10.1.0.0/24", dhcp=True),)),
    (dhcp4_request(d.DHCPDISCOVER), Port(name="v6only", vni=100, mac=VM_MAC, ips=("2001:db8:1::5",)), (V4,)),
    (dhcp4_request(d.DHCPDISCOVER), PORT, (STATEFUL,)),
    (dhcp4_request(d.DHCPOFFER), PORT, (V4,)),
    (build_stack([Ethernet(src=VM_MAC), IPv4(proto=17), Udp(sport=68, dport=67),
                  Dhcp4(chaddr=VM_MAC)]), PORT, (V4,)),  # BOOTP, no message type
    (build_stack([Ethernet(src=VM_MAC), IPv4(proto=17), Udp(sport=68, dport=67),
                  Dhcp4(op=2, chaddr=VM_MAC, options=[(53, b"\x01")])]), PORT, (V4,)),  # a reply
    (build_stack([Ethernet(src=VM_MAC), IPv4(proto=17), Udp(sport=68, dport=53)], b"x" * 300), PORT, (V4,)),
], ids=["other-server", "release", "decline", "chaddr", "dhcp-off", "no-subnet", "no-v4", "v6-subnet",
        "offer", "bootp", "bootreply", "not-dhcp"])
def test_dhcp4_not_answered(frame: bytes, port: Port, subnets: tuple[Subnet, ...]) -> None:
    assert dhcp4_reply(frame, port, subnets, server_mac=SERVER_MAC, mtu=1450) is None


def test_subnet_without_gateway_uses_last_usable_address() -> None:
    sub = Subnet(cidr="10.0.0.0/24", dhcp=True)
    assert server_id(sub) == "10.0.0.254"
    assert server_id(Subnet(cidr="10.0.0.0/31", dhcp=True)) == "10.0.0.1"
    got = reply4(dhcp4_request(d.DHCPDISCOVER), subnets=(sub,))
    assert got is not None
    _, ip, _, msg = got
    assert ip.src == "10.0.0.254" and opts(msg)[54] == bytes((10, 0, 0, 254))
    assert not {3, 6, 121} & set(opts(msg))
    # host routes without a gateway: option 121 without a default route
    sub = Subnet(cidr="10.0.0.0/24", dhcp=True, host_routes=(("10.8.0.0/16", "10.0.0.9"),))
    got = reply4(dhcp4_request(d.DHCPDISCOVER), subnets=(sub,))
    assert got is not None and decode_classless_routes(opts(got[3])[121]) == [("10.8.0.0/16", "10.0.0.9")]


def test_dhcp4_picks_the_dhcp_subnet_of_the_port() -> None:
    port = Port(name="vm2", vni=100, mac=VM_MAC, ips=("10.2.0.7",))
    subs = (V4, Subnet(cidr="10.2.0.0/16", gateway_ip="10.2.0.1", dhcp=True))
    got = reply4(dhcp4_request(d.DHCPDISCOVER), port=port, subnets=subs)
    assert got is not None
    assert (got[3].yiaddr, got[1].src, opts(got[3])[1]) == ("10.2.0.7", "10.2.0.1", bytes((255, 255, 0, 0)))


# --------------------------------------------------------------------------------- DHCPv6 responder


def dhcp6_frame(mtype: int, options: list[Dhcp6Option], *, src_mac: str = VM_MAC, src: str = VM_LL,
                dst: str = "ff02::1:2") -> bytes:
    return build_stack([Ethernet(src=src_mac, dst="33:33:00:01:00:02", type=0x86DD),
                        IPv6(src=src, dst=dst, next_header=17, hop_limit=1),
                        Udp(sport=546, dport=547), Dhcp6(msg_type=mtype, xid=0x010203, options=options)])


ORO = Dhcp6Option(code=d.OPTION_ORO, data=d.encode_oro([23]))
ELAPSED = Dhcp6Option(code=d.OPTION_ELAPSED_TIME, data=b"\x00\x00")


def ia_na(iaid: int = 0x55, *addrs: str) -> Dhcp6Option:
    return IaNa(iaid=iaid, options=[IaAddress(address=a).option_tlv() for a in addrs]).option_tlv()


def reply6(frame: bytes, subnets: tuple[Subnet, ...] = (STATEFUL, STATELESS), port: Port = PORT
           ) -> Dhcp6 | None:
    out = dhcp6_reply(frame, port, subnets, server_mac=SERVER_MAC)
    if out is None:
        return None
    pkt = decode(out)
    eth, ip = pkt[Ethernet], pkt[IPv6]
    assert (eth.src, eth.dst) == (SERVER_MAC, VM_MAC)
    assert (ip.src, ip.dst, ip.hop_limit) == (link_local(SERVER_MAC), VM_LL, 255)
    assert ip.src == "fe80::f816:3eff:feaa:1"
    assert (pkt[Udp].sport, pkt[Udp].dport) == (547, 546)
    assert_l4_checksum(ip, 17, out[54:])
    msg = Dhcp6.from_bytes(pkt.payload)
    assert msg.xid == 0x010203
    assert msg.option(d.OPTION_SERVERID) == SID.replace(length=10)
    return msg


def leased(msg: Dhcp6) -> list[tuple[int, int, int, list[tuple[str, int, int]]]]:
    out = []
    for o in msg.options_of(d.OPTION_IA_NA):
        ia = IaNa.from_bytes(o.data)
        out.append((ia.iaid, ia.t1, ia.t2,
                    [(a.address, a.preferred_lifetime, a.valid_lifetime) for a in ia.addresses()]))
    return out


def dns(msg: Dhcp6) -> list[str]:
    opt = msg.option(d.OPTION_DNS_SERVERS)
    return d.decode_ipv6s(opt.data) if opt is not None else []


def test_solicit_gets_advertise_with_stateful_addresses_only() -> None:
    msg = reply6(dhcp6_frame(d.SOLICIT, [CID, ELAPSED, ORO, ia_na()]))
    assert msg is not None
    assert msg.msg_type == d.ADVERTISE
    assert [o.code for o in msg.options] == [2, 1, 3, 23]
    assert msg.option(d.OPTION_CLIENTID) == CID.replace(length=10)
    assert leased(msg) == [(0x55, DHCP6_T1_S, DHCP6_T2_S, [("2001:db8:1::5", LEASE_S, LEASE_S)])]
    assert (DHCP6_T1_S, DHCP6_T2_S) == (43200, 69120)
    assert dns(msg) == ["2001:db8::53"]


def test_solicit_with_rapid_commit_gets_reply() -> None:
    msg = reply6(dhcp6_frame(d.SOLICIT, [CID, Dhcp6Option(code=d.OPTION_RAPID_COMMIT), ia_na(9)]))
    assert msg is not None
    assert msg.msg_type == d.REPLY
    assert msg.option(d.OPTION_RAPID_COMMIT) is not None
    assert leased(msg)[0][0] == 9


def test_request_renew_rebind_get_reply() -> None:
    for mtype, server in ((d.REQUEST, [SID]), (d.RENEW, [SID]), (d.REBIND, [])):
        msg = reply6(dhcp6_frame(mtype, [CID, *server, ia_na(3, "2001:db8:1::5")]))
        assert msg is not None, mtype
        assert msg.msg_type == d.REPLY
        assert leased(msg) == [(3, DHCP6_T1_S, DHCP6_T2_S, [("2001:db8:1::5", LEASE_S, LEASE_S)])]


def test_renew_of_a_stale_address_returns_it_with_zero_lifetimes_and_extra_ia_gets_no_addrs() -> None:
    msg = reply6(dhcp6_frame(d.RENEW, [CID, SID, ia_na(1, "2001:db8:1::99"), ia_na(2)]))
    assert msg is not None
    first, second = leased(msg)
    assert first == (1, DHCP6_T1_S, DHCP6_T2_S,
                     [("2001:db8:1::5", LEASE_S, LEASE_S), ("2001:db8:1::99", 0, 0)])
    assert second[:4] == (2, 0, 0, [])
    ia2 = IaNa.from_bytes(msg.options_of(d.OPTION_IA_NA)[1].data)
    status = ia2.option(d.OPTION_STATUS_CODE)
    assert status is not None and StatusCode.from_bytes(status.data).status == d.STATUS_NO_ADDRS_AVAIL


def test_confirm_reports_on_link_or_not() -> None:
    for addr, status in (("2001:db8:1::5", d.STATUS_SUCCESS), ("2001:db8:9::5", d.STATUS_NOT_ON_LINK)):
        msg = reply6(dhcp6_frame(d.CONFIRM, [CID, ia_na(1, addr)]))
        assert msg is not None and msg.msg_type == d.REPLY
        opt = msg.option(d.OPTION_STATUS_CODE)
        assert opt is not None and StatusCode.from_bytes(opt.data).status == status
        assert not msg.options_of(d.OPTION_IA_NA)


def test_information_request_gets_dns_only_in_every_mode() -> None:
    for subnets, want in (((STATELESS,), ["2001:db8::54"]), ((STATEFUL, STATELESS), ["2001:db8::53",
                                                                                     "2001:db8::54"])):
        msg = reply6(dhcp6_frame(d.INFORMATION_REQUEST, [CID, ORO]), subnets=subnets)
        assert msg is not None and msg.msg_type == d.REPLY
        assert [o.code for o in msg.options] == [2, 1, 23]
        assert dns(msg) == want
    slaac_port = Port(name="vm3", vni=100, mac=VM_MAC, ips=("2001:db8:3::5",))
    msg = reply6(dhcp6_frame(d.INFORMATION_REQUEST, []), subnets=(SLAAC,), port=slaac_port)
    assert msg is not None and [o.code for o in msg.options] == [2]  # no client id given, no DNS known


def test_release_and_decline_are_acknowledged() -> None:
    for mtype in (d.RELEASE, d.DECLINE):
        msg = reply6(dhcp6_frame(mtype, [CID, SID, ia_na(1, "2001:db8:1::5")]))
        assert msg is not None and msg.msg_type == d.REPLY
        opt = msg.option(d.OPTION_STATUS_CODE)
        assert opt is not None and StatusCode.from_bytes(opt.data).status == d.STATUS_SUCCESS


def test_no_address_mode_is_served_statefully_like_neutron() -> None:
    plain = Subnet(cidr="2001:db8:1::/64", dhcp=True)
    msg = reply6(dhcp6_frame(d.SOLICIT, [CID, ia_na()]), subnets=(plain,))
    assert msg is not None and leased(msg)[0][3] == [("2001:db8:1::5", LEASE_S, LEASE_S)]


OTHER_SID = Dhcp6Option(code=d.OPTION_SERVERID, data=d.duid_ll(OTHER_MAC))


@pytest.mark.parametrize(("frame", "subnets"), [
    (dhcp6_frame(d.SOLICIT, [CID, ia_na()]), (STATELESS,)),  # stateless: only information requests
    (dhcp6_frame(d.SOLICIT, [CID, ia_na()]), (SLAAC,)),
    (dhcp6_frame(d.SOLICIT, [CID, ia_na()]), (Subnet(cidr="2001:db8:1::/64", dhcp=False,
                                                     ipv6_address_mode="dhcpv6-stateful"),)),
    (dhcp6_frame(d.SOLICIT, [CID, ia_na()]), (V4,)),
    (dhcp6_frame(d.SOLICIT, [ia_na()]), (STATEFUL,)),  # no client id
    (dhcp6_frame(d.SOLICIT, [CID, SID, ia_na()]), (STATEFUL,)),  # a solicit must not name a server
    (dhcp6_frame(d.SOLICIT, [CID]), (STATEFUL,)),  # no IA_NA
    (dhcp6_frame(d.REQUEST, [CID, OTHER_SID, ia_na()]), (STATEFUL,)),
    (dhcp6_frame(d.REQUEST, [CID, ia_na()]), (STATEFUL,)),  # a request must name its server
    (dhcp6_frame(d.REBIND, [CID, SID, ia_na()]), (STATEFUL,)),  # a rebind must not
    (dhcp6_frame(d.CONFIRM, [CID, ia_na()]), (STATEFUL,)),  # nothing to confirm
    (dhcp6_frame(d.INFORMATION_REQUEST, [CID, OTHER_SID]), (STATELESS,)),
    (dhcp6_frame(d.INFORMATION_REQUEST, [CID]), (Subnet(cidr="2001:db8:7::/64", dhcp=True),)),
    (dhcp6_frame(d.RELEASE, [CID, ia_na()]), (STATEFUL,)),
    (dhcp6_frame(d.ADVERTISE, [CID, SID]), (STATEFUL,)),
    (dhcp6_frame(d.SOLICIT, [CID, ia_na()], src_mac=OTHER_MAC), (STATEFUL,)),
    (dhcp6_frame(d.SOLICIT, [CID, ia_na()], dst="fe80::1"), (STATEFUL,)),  # unicast to another server
    (dhcp6_frame(d.SOLICIT, [CID, ia_na()], src="::"), (STATEFUL,)),
    (build_stack([Ethernet(src=VM_MAC, type=0x86DD), IPv6(src=VM_LL, dst="ff02::1:2", next_header=17),
                  Udp(sport=546, dport=547), Dhcp6Relay(options=[CID])]), (STATEFUL,)),
], ids=["stateless", "slaac", "dhcp-off", "v4-only", "no-client-id", "solicit-sid", "no-ia", "other-server",
        "request-no-sid", "rebind-sid", "confirm-empty", "info-other-server", "info-no-address",
        "release-no-sid", "advertise", "eth-src", "unicast-other", "src-unspecified", "relay"])
def test_dhcp6_not_answered(frame: bytes, subnets: tuple[Subnet, ...]) -> None:
    assert dhcp6_reply(frame, PORT, subnets, server_mac=SERVER_MAC) is None


def test_dhcp6_unicast_to_our_link_local_is_answered() -> None:
    assert reply6(dhcp6_frame(d.SOLICIT, [CID, ia_na()], dst=link_local(SERVER_MAC))) is not None


# ------------------------------------------------------------------------------- router advertisement


def rs_frame(*, src: str = VM_LL, hop_limit: int = 255, src_mac: str = VM_MAC, code: int = 0,
             with_slla: bool = True) -> bytes:
    rs = RouterSolicit(code=code, options=[NdOption.lladdr(src_mac)] if with_slla else [])
    return build_stack([Ethernet(src=src_mac, dst="33:33:00:00:00:02", type=0x86DD),
                        IPv6(src=src, dst="ff02::2", next_header=58, hop_limit=hop_limit), rs])


def ra_of(frame: bytes, subnets: tuple[Subnet, ...],
          mtu: int = 1450) -> tuple[Ethernet, IPv6, RouterAdvert] | None:
    out = router_advert(frame, PORT, subnets, router_mac=SERVER_MAC, mtu=mtu)
    if out is None:
        return None
    eth, off, _ = Ethernet.parse(out)
    ip, off, end = IPv6.parse(out, off)
    ra, _, _ = RouterAdvert.parse(out[:end], off)
    assert ip.src == link_local(SERVER_MAC) and ip.hop_limit == 255 and ip.next_header == 58
    assert eth.src == SERVER_MAC
    assert_l4_checksum(ip, 58, out[54:])
    assert ra.type == 134 and ra.code == 0
    return eth, ip, ra


def prefixes(ra: RouterAdvert) -> list[tuple[str, int, int, int, int, int]]:
    out = []
    for o in ra.options:
        p = o.prefix_info
        if p is not None:
            out.append((p.prefix, p.prefix_length, p.onlink, p.autonomous, p.valid_lifetime,
                        p.preferred_lifetime))
    return out


@pytest.mark.parametrize(("subnet", "m", "o", "a"), [
    (STATEFUL, 1, 0, 0), (STATELESS, 0, 1, 1), (SLAAC, 0, 0, 1),
], ids=["stateful", "stateless", "slaac"])
def test_router_advert_flags_by_mode(subnet: Subnet, m: int, o: int, a: int) -> None:
    got = ra_of(rs_frame(), (V4, subnet))
    assert got is not None
    eth, ip, ra = got
    assert (eth.dst, ip.dst) == (VM_MAC, VM_LL)
    assert (ra.managed, ra.other, ra.router_lifetime, ra.cur_hop_limit) == (m, o, 1800, 64)
    net = subnet.cidr.split("/")[0]
    assert prefixes(ra) == [(net, 64, 1, a, 86400, 14400)]
    assert ra.options[0].type == 1 and ra.options[0].mac == SERVER_MAC
    assert [opt.mtu for opt in ra.options if opt.type == 5] == [1450]


def test_router_advert_several_prefixes_no_gateway_and_unspecified_source() -> None:
    no_gw = Subnet(cidr="2001:db8:4::/64", ipv6_address_mode="slaac")  # address mode only, no gateway
    got = ra_of(rs_frame(src="::", with_slla=False), (no_gw, STATELESS))
    assert got is not None
    eth, ip, ra = got
    assert (eth.dst, ip.dst) == ("33:33:00:00:00:01", "ff02::1")
    assert ra.router_lifetime == 1800  # STATELESS has a gateway
    assert [p[0] for p in prefixes(ra)] == ["2001:db8:4::", "2001:db8:2::"]
    got = ra_of(rs_frame(), (no_gw,), mtu=1000)
    assert got is not None
    assert got[2].router_lifetime == 0
    assert not [opt for opt in got[2].options if opt.type == 5]  # below IPv6's minimum MTU: left out


@pytest.mark.parametrize(("frame", "subnets"), [
    (rs_frame(), (V4,)),
    (rs_frame(), (Subnet(cidr="2001:db8:1::/64", dhcp=True),)),  # no RA or address mode
    (rs_frame(hop_limit=64), (SLAAC,)),
    (rs_frame(code=1), (SLAAC,)),
    (rs_frame(src="::"), (SLAAC,)),  # unspecified source with a link-layer option: invalid
    (rs_frame(src_mac=OTHER_MAC), (SLAAC,)),
    (build_stack([Ethernet(src=VM_MAC, type=0x86DD), IPv6(src=VM_LL, dst="ff02::2", next_header=58,
                                                            hop_limit=255), NdOption.lladdr(VM_MAC)]),
     (SLAAC,)),  # not type 133
], ids=["v4", "no-mode", "hop-limit", "code", "unspecified-with-slla", "eth-src", "not-rs"])
def test_router_solicit_not_answered(frame: bytes, subnets: tuple[Subnet, ...]) -> None:
    assert router_advert(frame, PORT, subnets, router_mac=SERVER_MAC, mtu=1450) is None


# ------------------------------------------------------------------------------------------- classifiers


def test_classifiers() -> None:
    v4 = dhcp4_request(d.DHCPDISCOVER)
    v6 = dhcp6_frame(d.SOLICIT, [CID])
    rs = rs_frame()
    assert (is_dhcp4(v4), is_dhcp6(v4), is_router_solicit(v4)) == (True, False, False)
    assert (is_dhcp4(v6), is_dhcp6(v6), is_router_solicit(v6)) == (False, True, False)
    assert (is_dhcp4(rs), is_dhcp6(rs), is_router_solicit(rs)) == (False, False, True)
    arp = build_stack([Ethernet(type=0x0806), Arp()])
    later_fragment = build_stack([Ethernet(), IPv4(proto=17, frag_offset=10)], v4[34:])
    to_client = build_stack([Ethernet(), IPv4(proto=17), Udp(sport=67, dport=68)], b"x")
    hbh = build_stack([Ethernet(type=0x86DD), IPv6(next_header=0), IPv6HopByHop(next_header=17),
                       Udp(sport=546, dport=547)], b"x")
    for frame in (arp, later_fragment, to_client, hbh, b"", v4[:40], v6[:61], rs[:55], bytes(100)):
        assert not (is_dhcp4(frame) or is_dhcp6(frame) or is_router_solicit(frame))
    bad_ihl = bytearray(v4)
    bad_ihl[14] = 0x44
    assert not is_dhcp4(bytes(bad_ihl))
    for fn in (dhcp4_reply, dhcp6_reply):
        assert fn(arp, PORT, (V4, STATEFUL), server_mac=SERVER_MAC, **({"mtu": 1450} if fn is dhcp4_reply
                                                                      else {})) is None


# ------------------------------------------------------------------------------------ malformed frames

Responder = Callable[[bytes], object]
RESPONDERS: dict[str, tuple[Responder, bytes]] = {
    "dhcp4": (lambda f: dhcp4_reply(f, PORT, (V4,), server_mac=SERVER_MAC, mtu=1450),
              dhcp4_request(d.DHCPREQUEST, extra=[(50, bytes((10, 0, 0, 5)))])),
    "dhcp6": (lambda f: dhcp6_reply(f, PORT, (STATEFUL,), server_mac=SERVER_MAC),
              dhcp6_frame(d.RENEW, [CID, SID, ia_na(1, "2001:db8:1::5")])),
    "ra": (lambda f: router_advert(f, PORT, (STATEFUL, SLAAC), router_mac=SERVER_MAC, mtu=1450), rs_frame()),
}


@pytest.mark.parametrize("name", sorted(RESPONDERS))
def test_truncated_frames_raise_decode_error(name: str) -> None:
    fn, frame = RESPONDERS[name]
    assert fn(frame) is not None
    classify = {"dhcp4": is_dhcp4, "dhcp6": is_dhcp6, "ra": is_router_solicit}[name]
    for cut in range(len(frame)):
        if classify(frame[:cut]):  # past the cheap check, the frame is malformed: the lengths lie
            with pytest.raises(DecodeError):
                fn(frame[:cut])
        else:
            assert fn(frame[:cut]) is None


def test_garbage_dhcp_payloads_raise_decode_error() -> None:
    v4 = build_stack([Ethernet(src=VM_MAC), IPv4(proto=17), Udp(sport=68, dport=67)], bytes(236) + b"junk")
    with pytest.raises(DecodeError, match="cookie"):
        dhcp4_reply(v4, PORT, (V4,), server_mac=SERVER_MAC, mtu=1450)
    bad_53 = build_stack([Ethernet(src=VM_MAC), IPv4(proto=17), Udp(sport=68, dport=67),
                          Dhcp4(chaddr=VM_MAC, options=[(53, b"")])])
    with pytest.raises(DecodeError):
        dhcp4_reply(bad_53, PORT, (V4,), server_mac=SERVER_MAC, mtu=1450)
    bad_ia = dhcp6_frame(d.SOLICIT, [CID, Dhcp6Option(code=3, data=b"\x00\x01")])
    with pytest.raises(DecodeError):
        dhcp6_reply(bad_ia, PORT, (STATEFUL,), server_mac=SERVER_MAC)


@pytest.mark.parametrize("name", sorted(RESPONDERS))
def test_bit_flips_give_a_frame_none_or_decode_error(name: str) -> None:
    fn, frame = RESPONDERS[name]
    rng = random.Random(name)
    for _ in range(3000):
        buf = bytearray(frame)
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(buf))
            buf[pos] ^= 1 << rng.randrange(8)
        with contextlib.suppress(DecodeError):
            out = fn(bytes(buf))
            assert out is None or isinstance(out, bytes)


@settings(max_examples=300)
@given(payload=st.binary(max_size=400))
def test_random_payloads_never_raise_anything_but_decode_error(payload: bytes) -> None:
    frames = [
        build_stack([Ethernet(src=VM_MAC), IPv4(proto=17), Udp(sport=68, dport=67)], payload),
        build_stack([Ethernet(src=VM_MAC, type=0x86DD), IPv6(src=VM_LL, dst="ff02::1:2", next_header=17),
                     Udp(sport=546, dport=547)], payload),
        build_stack([Ethernet(src=VM_MAC, type=0x86DD), IPv6(src=VM_LL, dst="ff02::2", next_header=58,
                                                            hop_limit=255)], b"\x85\x00\x00\x00" + payload),
    ]
    for frame in frames:
        for fn, _ in RESPONDERS.values():
            with contextlib.suppress(DecodeError):
                fn(frame)
        with contextlib.suppress(DecodeError):
            decode(frame)
    for parse in (Dhcp4.from_bytes, Dhcp6Any.parse, Dhcp6Relay.from_bytes, IaNa.from_bytes,
                  RouterAdvert.from_bytes, RouterSolicit.from_bytes, decode_classless_routes):
        with contextlib.suppress(DecodeError):
            parse(payload)
