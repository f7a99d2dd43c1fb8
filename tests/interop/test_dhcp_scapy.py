"""The native DHCP/DHCPv6/RA responders and their codecs against scapy and tshark, which nobody here wrote.

Requests are built with scapy (BOOTP/DHCP, DHCP6_*, ICMPv6ND_RS), answered by netweave.dataplane.dhcp,
and the replies decoded by scapy: fields, options, and every checksum and length recomputed by scapy must
equal ours. The codecs are also compared byte for byte with scapy in both directions. Finally one reply of
each kind goes through tshark (Wireshark's DHCP/DHCPv6/ICMPv6 dissectors), which must report good
checksums and nothing malformed.
"""

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dhcp6 import (
    DUID_LL,
    DHCP6_Advertise,
    DHCP6_Confirm,
    DHCP6_InfoRequest,
    DHCP6_Rebind,
    DHCP6_Renew,
    DHCP6_Reply,
    DHCP6_Request,
    DHCP6_Solicit,
    DHCP6OptClientId,
    DHCP6OptDNSServers,
    DHCP6OptElapsedTime,
    DHCP6OptIA_NA,
    DHCP6OptIAAddress,
    DHCP6OptOptReq,
    DHCP6OptRapidCommit,
    DHCP6OptServerId,
    DHCP6OptStatusCode,
)
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
)
from scapy.layers.inet6 import IPv6 as ScapyIPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet as ScapyPacket
from scapy.utils import mac2str

import netweave.packet as nw
from netweave.dataplane.dhcp import LEASE_S, dhcp4_reply, dhcp6_reply, link_local, router_advert
from netweave.model import Port, Subnet
from netweave.packet import dhcp as d

pytestmark = pytest.mark.interop

VM_MAC = "fa:16:3e:12:34:56"
SERVER_MAC = "fa:16:3e:00:00:01"
VM_LL = "fe80::f816:3eff:fe12:3456"
MTU = 1442

V4 = Subnet(cidr="192.168.10.0/24", gateway_ip="192.168.10.1", dhcp=True, dns=("192.168.10.2", "1.1.1.1"),
            host_routes=(("10.0.0.0/8", "192.168.10.254"), ("172.16.5.128/25", "192.168.10.253")))
STATEFUL = Subnet(cidr="2001:db8:a::/64", gateway_ip="2001:db8:a::1", dhcp=True, dns=("2001:db8::53",),
                  ipv6_address_mode="dhcpv6-stateful", ipv6_ra_mode="dhcpv6-stateful")
STATELESS = Subnet(cidr="2001:db8:b::/64", gateway_ip="2001:db8:b::1", dhcp=True, dns=("2001:db8::54",),
                   ipv6_address_mode="dhcpv6-stateless", ipv6_ra_mode="dhcpv6-stateless")
SUBNETS = (V4, STATEFUL, STATELESS)
PORT = Port(name="tap1", vni=7, mac=VM_MAC, ips=("192.168.10.20", "2001:db8:a::20", "2001:db8:b::20"))
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def scapy_checksums_agree(frame: bytes) -> ScapyPacket:
    """scapy's decoding of `frame`, after checking that scapy, recomputing every checksum and length
    field of every layer, rebuilds exactly our bytes."""
    pkt = Ether(frame)
    layer: Any = pkt
    while layer:
        for name in ("chksum", "cksum", "len", "plen", "optlen"):
            if name in layer.fields:
                delattr(layer, name)
        layer = layer.payload
    assert bytes(pkt) == frame
    return Ether(frame)


def dhcp_options(pkt: ScapyPacket) -> dict[str, Any]:
    return {o[0]: (o[1] if len(o) == 2 else o[1:]) for o in pkt[DHCP].options if isinstance(o, tuple)}


# ------------------------------------------------------------------------------------ DHCPv4 responder


def scapy_dhcp4(options: list[Any], *, ciaddr: str = "0.0.0.0", flags: int = 0, xid: int = 0x1A2B3C4D
                ) -> bytes:
    src = ciaddr if ciaddr != "0.0.0.0" else "0.0.0.0"
    return bytes(Ether(src=VM_MAC, dst="ff:ff:ff:ff:ff:ff")
                 / IP(src=src, dst="255.255.255.255") / UDP(sport=68, dport=67)
                 / BOOTP(chaddr=mac2str(VM_MAC) + bytes(10), xid=xid, flags=flags, ciaddr=ciaddr)
                 / DHCP(options=[*options, "end"]))


PRL = ("param_req_list", [1, 121, 3, 6, 15, 26, 28, 51, 58, 59])


def answer4(request: bytes) -> ScapyPacket:
    out = dhcp4_reply(request, PORT, SUBNETS, server_mac=SERVER_MAC, mtu=MTU)
    assert out is not None
    return scapy_checksums_agree(out)


def test_discover_offer_decoded_by_scapy() -> None:
    pkt = answer4(scapy_dhcp4([("message-type", "discover"), PRL]))
    assert (pkt[Ether].src, pkt[Ether].dst) == (SERVER_MAC, VM_MAC)
    assert (pkt[IP].src, pkt[IP].dst) == ("192.168.10.1", "192.168.10.20")
    assert (pkt[UDP].sport, pkt[UDP].dport) == (67, 68)
    b = pkt[BOOTP]
    assert (b.op, b.xid, b.yiaddr, b.ciaddr, b.giaddr, b.flags) == (2, 0x1A2B3C4D, "192.168.10.20", "0.0.0.0",
                                                                  "0.0.0.0", 0)
    assert b.chaddr[:6] == mac2str(VM_MAC)
    assert dhcp_options(pkt) == {
        "message-type": 2,
        "server_id": "192.168.10.1",
        "subnet_mask": "255.255.255.0",
        "router": "192.168.10.1",
        "name_server": ("192.168.10.2", "1.1.1.1"),
        "interface-mtu": MTU,
        "broadcast_address": "192.168.10.255",
        "lease_time": LEASE_S,
        "renewal_time": LEASE_S // 2,
        "rebinding_time": LEASE_S * 7 // 8,
        "classless_static_routes": ["10.0.0.0/8:192.168.10.254", "172.16.5.128/25:192.168.10.253",
                                    "0.0.0.0/0:192.168.10.1"],
    }
    names = [o[0] for o in pkt[DHCP].options if isinstance(o, tuple)]
    assert names[:4] == ["message-type", "server_id", "subnet_mask", "classless_static_routes"]


def test_request_ack_broadcast_and_nak_decoded_by_scapy() -> None:
    selecting = [("message-type", "request"), ("requested_addr", "192.168.10.20"),
                 ("server_id", "192.168.10.1"), PRL]
    pkt = answer4(scapy_dhcp4(selecting, flags=0x8000))
    assert dhcp_options(pkt)["message-type"] == 5
    assert (pkt[Ether].dst, pkt[IP].dst, pkt[BOOTP].flags) == ("ff:ff:ff:ff:ff:ff", "255.255.255.255", 0x8000)
    assert pkt[BOOTP].yiaddr == "192.168.10.20"
    renewing = answer4(scapy_dhcp4([("message-type", "request")], ciaddr="192.168.10.20"))
    assert (renewing[IP].dst, renewing[BOOTP].ciaddr) == ("192.168.10.20", "192.168.10.20")
    nak = answer4(scapy_dhcp4([("message-type", "request"), ("requested_addr", "192.168.10.99")]))
    assert dhcp_options(nak) == {"message-type": 6, "server_id": "192.168.10.1",
                                 "error_message": b"address 192.168.10.99 is not yours"}
    assert (nak[Ether].dst, nak[IP].dst, nak[BOOTP].yiaddr) == ("ff:ff:ff:ff:ff:ff", "255.255.255.255",
                                                              "0.0.0.0")
    elsewhere = [("message-type", "request"), ("requested_addr", "192.168.10.20"),
                 ("server_id", "192.168.10.9")]
    assert dhcp4_reply(scapy_dhcp4(elsewhere), PORT, SUBNETS, server_mac=SERVER_MAC, mtu=MTU) is None


def test_inform_ack_decoded_by_scapy() -> None:
    pkt = answer4(scapy_dhcp4([("message-type", "inform"), PRL], ciaddr="192.168.10.20"))
    opts = dhcp_options(pkt)
    assert opts["message-type"] == 5
    assert not {"lease_time", "renewal_time", "rebinding_time"} & set(opts)
    assert pkt[BOOTP].yiaddr == "0.0.0.0" and pkt[IP].dst == "192.168.10.20"


# ------------------------------------------------------------------------------------ DHCPv6 responder


def scapy_dhcp6(msg: ScapyPacket) -> bytes:
    return bytes(Ether(src=VM_MAC, dst="33:33:00:01:00:02") / ScapyIPv6(src=VM_LL, dst="ff02::1:2")
                 / UDP(sport=546, dport=547) / msg)


def answer6(msg: ScapyPacket, subnets: Sequence[Subnet] = SUBNETS) -> ScapyPacket:
    out = dhcp6_reply(scapy_dhcp6(msg), PORT, subnets, server_mac=SERVER_MAC)
    assert out is not None
    pkt = scapy_checksums_agree(out)
    assert (pkt[Ether].src, pkt[Ether].dst) == (SERVER_MAC, VM_MAC)
    assert (pkt[ScapyIPv6].src, pkt[ScapyIPv6].dst) == (link_local(SERVER_MAC), VM_LL)
    assert (pkt[UDP].sport, pkt[UDP].dport) == (547, 546)
    assert pkt[DHCP6OptServerId].duid.lladdr == SERVER_MAC and pkt[DHCP6OptServerId].duid.type == 3
    return pkt


CLIENT_ID = DHCP6OptClientId(duid=DUID_LL(lladdr=VM_MAC))
SERVER_ID = DHCP6OptServerId(duid=DUID_LL(lladdr=SERVER_MAC))


def assert_lease(pkt: ScapyPacket, iaid: int) -> None:
    ia = pkt[DHCP6OptIA_NA]
    assert (ia.iaid, ia.T1, ia.T2) == (iaid, LEASE_S // 2, LEASE_S * 4 // 5)
    assert [(a.addr, a.preflft, a.validlft) for a in ia.ianaopts] == [("2001:db8:a::20", LEASE_S, LEASE_S)]
    assert pkt[DHCP6OptClientId].duid.lladdr == VM_MAC
    assert pkt[DHCP6OptDNSServers].dnsservers == ["2001:db8::53"]


def test_solicit_advertise_and_rapid_commit_decoded_by_scapy() -> None:
    solicit = (DHCP6_Solicit(trid=0xABCDE) / CLIENT_ID / DHCP6OptElapsedTime()
               / DHCP6OptIA_NA(iaid=0x1234) / DHCP6OptOptReq(reqopts=[23, 24]))
    pkt = answer6(solicit)
    assert isinstance(pkt[UDP].payload, DHCP6_Advertise) and pkt[UDP].payload.trid == 0xABCDE
    assert_lease(pkt, 0x1234)
    pkt = answer6(solicit / DHCP6OptRapidCommit())
    assert isinstance(pkt[UDP].payload, DHCP6_Reply)
    assert DHCP6OptRapidCommit in pkt
    assert_lease(pkt, 0x1234)


def test_request_renew_rebind_confirm_decoded_by_scapy() -> None:
    held = DHCP6OptIA_NA(iaid=7, ianaopts=[DHCP6OptIAAddress(addr="2001:db8:a::20")])
    for msg in (DHCP6_Request(trid=1) / CLIENT_ID / SERVER_ID / held,
                DHCP6_Renew(trid=2) / CLIENT_ID / SERVER_ID / held,
                DHCP6_Rebind(trid=3) / CLIENT_ID / held):
        pkt = answer6(msg)
        assert isinstance(pkt[UDP].payload, DHCP6_Reply) and pkt[UDP].payload.trid == msg.trid
        assert_lease(pkt, 7)
    pkt = answer6(DHCP6_Confirm(trid=4) / CLIENT_ID / held)
    assert isinstance(pkt[UDP].payload, DHCP6_Reply)
    assert pkt[DHCP6OptStatusCode].statuscode == 0
    moved = DHCP6OptIA_NA(iaid=7, ianaopts=[DHCP6OptIAAddress(addr="2001:db8:ff::20")])
    pkt = answer6(DHCP6_Confirm(trid=5) / CLIENT_ID / moved)
    assert pkt[DHCP6OptStatusCode].statuscode == 4  # NotOnLink


def test_information_request_reply_decoded_by_scapy() -> None:
    pkt = answer6(DHCP6_InfoRequest(trid=9) / CLIENT_ID / DHCP6OptOptReq(reqopts=[23]), subnets=(STATELESS,))
    assert isinstance(pkt[UDP].payload, DHCP6_Reply)
    assert DHCP6OptIA_NA not in pkt
    assert pkt[DHCP6OptDNSServers].dnsservers == ["2001:db8::54"]
    stateless_solicit = DHCP6_Solicit(trid=1) / CLIENT_ID / DHCP6OptIA_NA(iaid=1)
    assert dhcp6_reply(scapy_dhcp6(stateless_solicit), PORT, (STATELESS,), server_mac=SERVER_MAC) is None


# ----------------------------------------------------------------------------------- router advertisement


def scapy_rs(src: str = VM_LL) -> bytes:
    rs = ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=VM_MAC) if src != "::" else ICMPv6ND_RS()
    return bytes(Ether(src=VM_MAC, dst="33:33:00:00:00:02") / ScapyIPv6(src=src, dst="ff02::2", hlim=255)
                 / rs)


def test_router_advert_decoded_by_scapy() -> None:
    out = router_advert(scapy_rs(), PORT, SUBNETS, router_mac=SERVER_MAC, mtu=MTU)
    assert out is not None
    pkt = scapy_checksums_agree(out)
    assert (pkt[Ether].src, pkt[Ether].dst) == (SERVER_MAC, VM_MAC)
    ip = pkt[ScapyIPv6]
    assert (ip.src, ip.dst, ip.hlim, ip.nh) == ("fe80::f816:3eff:fe00:1", VM_LL, 255, 58)
    ra = pkt[ICMPv6ND_RA]
    assert (ra.M, ra.O, ra.routerlifetime, ra.chlim, ra.prf) == (1, 1, 1800, 64, 0)
    assert pkt[ICMPv6NDOptSrcLLAddr].lladdr == SERVER_MAC
    assert pkt[ICMPv6NDOptMTU].mtu == MTU
    pios = []
    layer: Any = pkt
    while layer:
        if isinstance(layer, ICMPv6NDOptPrefixInfo):
            pios.append((layer.prefix, layer.prefixlen, layer.L, layer.A, layer.validlifetime,
                         layer.preferredlifetime))
        layer = layer.payload
    assert pios == [("2001:db8:a::", 64, 1, 0, 86400, 14400), ("2001:db8:b::", 64, 1, 1, 86400, 14400)]
    out = router_advert(scapy_rs("::"), PORT, SUBNETS, router_mac=SERVER_MAC, mtu=MTU)
    assert out is not None
    pkt = scapy_checksums_agree(out)
    assert (pkt[Ether].dst, pkt[ScapyIPv6].dst) == ("33:33:00:00:00:01", "ff02::1")


# ------------------------------------------------------------------------------- codecs, ours <-> scapy

u32 = st.integers(0, 2**32 - 1)
ipv4s = st.integers(0, 2**32 - 1).map(lambda n: ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0)))
macs = st.binary(min_size=6, max_size=6).map(lambda b: b.hex(":"))
v4_routes = st.lists(st.tuples(u32, st.integers(0, 32), ipv4s), max_size=4).map(
    lambda rs: [(str(__import__("ipaddress").IPv4Network((a, w), strict=False)), hop) for a, w, hop in rs])


@SETTINGS
@given(xid=u32, secs=st.integers(0, 0xFFFF), bcast=st.booleans(), ciaddr=ipv4s, yiaddr=ipv4s, giaddr=ipv4s,
       chaddr=macs, mtype=st.integers(1, 8), server=ipv4s, lease=u32, routes=v4_routes,
       dns=st.lists(ipv4s, min_size=1, max_size=3), hostname=st.binary(min_size=1, max_size=300))
def test_dhcp4_codec_matches_scapy(*, xid: int, secs: int, bcast: bool, ciaddr: str, yiaddr: str, giaddr: str,
                                   chaddr: str, mtype: int, server: str, lease: int,
                                   routes: list[tuple[str, str]], dns: list[str], hostname: bytes) -> None:
    theirs_opts: list[Any] = [("message-type", mtype), ("server_id", server), ("lease_time", lease),
                              ("name_server", *dns), ("hostname", hostname)]
    ours_opts = [(53, bytes((mtype,))), (54, d.encode_ipv4s([server])), (51, lease.to_bytes(4, "big")),
                 (6, d.encode_ipv4s(dns)), (12, hostname)]
    if routes:
        theirs_opts.append(("classless_static_routes", [f"{c}:{h}" for c, h in routes]))
        ours_opts.append((121, nw.encode_classless_routes(routes)))
    theirs = bytes(BOOTP(op=2, xid=xid, secs=secs, flags=0x8000 if bcast else 0, ciaddr=ciaddr, yiaddr=yiaddr,
                         giaddr=giaddr, chaddr=mac2str(chaddr) + bytes(10))
                   / DHCP(options=[*theirs_opts, "end"]))
    ours = nw.Dhcp4(op=2, xid=xid, secs=secs, broadcast=int(bcast), ciaddr=ciaddr, yiaddr=yiaddr,
                    giaddr=giaddr, chaddr=chaddr, options=ours_opts)
    if len(hostname) <= 255:  # scapy does not split long options (RFC 3396); we do
        assert ours.build() == theirs.ljust(d.BOOTP_MIN_LEN, b"\0")  # we pad to BOOTP's minimum
        assert nw.Dhcp4.from_bytes(theirs) == ours
    back = BOOTP(ours.build())
    assert (back.xid, back.secs, back.flags, back.ciaddr, back.yiaddr, back.giaddr) == (
        xid, secs, 0x8000 if bcast else 0, ciaddr, yiaddr, giaddr)
    assert back.chaddr[:6] == mac2str(chaddr)
    opts = dhcp_options(back)
    assert (opts["message-type"], opts["server_id"], opts["lease_time"]) == (mtype, server, lease)
    assert opts["name_server"] == (dns[0] if len(dns) == 1 else tuple(dns))
    if routes:
        assert opts["classless_static_routes"] == [f"{c}:{h}" for c, h in routes]


dhcp6_types = st.sampled_from([(1, DHCP6_Solicit), (3, DHCP6_Request), (5, DHCP6_Renew), (7, DHCP6_Reply)])


@SETTINGS
@given(kind=dhcp6_types, xid=st.integers(0, 2**24 - 1), client=macs, iaid=u32, t1=u32, t2=u32,
       addrs=st.lists(st.tuples(st.binary(min_size=16, max_size=16), u32, u32), max_size=3),
       dns=st.lists(st.binary(min_size=16, max_size=16), max_size=3), elapsed=st.integers(0, 0xFFFF),
       status=st.integers(0, 6), msg=st.text(max_size=20))
def test_dhcp6_codec_matches_scapy(*, kind: tuple[int, type[ScapyPacket]], xid: int, client: str, iaid: int,
                                   t1: int, t2: int, addrs: list[tuple[bytes, int, int]], dns: list[bytes],
                                   elapsed: int, status: int, msg: str) -> None:
    import ipaddress

    texts = [(str(ipaddress.IPv6Address(a)), p, v) for a, p, v in addrs]
    dns_texts = [str(ipaddress.IPv6Address(a)) for a in dns]
    mtype, scapy_cls = kind
    theirs = bytes(scapy_cls(trid=xid) / DHCP6OptClientId(duid=DUID_LL(lladdr=client))
                   / DHCP6OptElapsedTime(elapsedtime=elapsed)
                   / DHCP6OptIA_NA(iaid=iaid, T1=t1, T2=t2, ianaopts=[
                       DHCP6OptIAAddress(addr=a, preflft=p, validlft=v) for a, p, v in texts])
                   / DHCP6OptStatusCode(statuscode=status, statusmsg=msg)
                   / DHCP6OptDNSServers(dnsservers=dns_texts) / DHCP6OptRapidCommit())
    ia = nw.IaNa(iaid=iaid, t1=t1, t2=t2, options=[
        nw.IaAddress(address=a, preferred_lifetime=p, valid_lifetime=v).option_tlv() for a, p, v in texts])
    ours = nw.Dhcp6(msg_type=mtype, xid=xid, options=[
        nw.Dhcp6Option(code=1, data=d.duid_ll(client)),
        nw.Dhcp6Option(code=8, data=elapsed.to_bytes(2, "big")),
        ia.option_tlv(), nw.StatusCode(status=status, message=msg).option_tlv(),
        nw.Dhcp6Option(code=23, data=d.encode_ipv6s(dns_texts)), nw.Dhcp6Option(code=14)])
    assert ours.build() == theirs
    back = nw.Dhcp6.from_bytes(theirs)
    assert back.build() == theirs
    assert (back.msg_type, back.xid) == (mtype, xid)
    ia_opt = back.option(d.OPTION_IA_NA)
    assert ia_opt is not None
    parsed = nw.IaNa.from_bytes(ia_opt.data)
    assert (parsed.iaid, parsed.t1, parsed.t2) == (iaid, t1, t2)
    assert [(a.address, a.preferred_lifetime, a.valid_lifetime) for a in parsed.addresses()] == texts
    st_opt = back.option(d.OPTION_STATUS_CODE)
    assert st_opt is not None and nw.StatusCode.from_bytes(st_opt.data).message == msg


@SETTINGS
@given(chlim=st.integers(0, 255), m=st.integers(0, 1), o=st.integers(0, 1), prf=st.integers(0, 3),
       lifetime=st.integers(0, 0xFFFF), reachable=u32, retrans=u32, mtu=u32,
       pio=st.tuples(st.integers(0, 128), st.integers(0, 1), st.integers(0, 1), u32, u32,
                     st.binary(min_size=16, max_size=16)))
def test_router_advert_codec_matches_scapy(*, chlim: int, m: int, o: int, prf: int, lifetime: int,
                                           reachable: int, retrans: int, mtu: int,
                                           pio: tuple[int, int, int, int, int, bytes]) -> None:
    import ipaddress

    plen, lbit, abit, valid, pref, raw_prefix = pio
    prefix = str(ipaddress.IPv6Address(raw_prefix))
    theirs = bytes(ScapyIPv6(src="fe80::1", dst="ff02::1", hlim=255)
                   / ICMPv6ND_RA(chlim=chlim, M=m, O=o, prf=prf, routerlifetime=lifetime,
                                 reachabletime=reachable, retranstimer=retrans)
                   / ICMPv6NDOptSrcLLAddr(lladdr=SERVER_MAC) / ICMPv6NDOptMTU(mtu=mtu)
                   / ICMPv6NDOptPrefixInfo(prefixlen=plen, L=lbit, A=abit, validlifetime=valid,
                                           preferredlifetime=pref, prefix=prefix))
    ra = nw.RouterAdvert(cur_hop_limit=chlim, managed=m, other=o, preference=prf, router_lifetime=lifetime,
                         reachable_time=reachable, retrans_timer=retrans, options=[
                             nw.NdOption.lladdr(SERVER_MAC), nw.NdOption.mtu_option(mtu),
                             nw.NdPrefixInfo(prefix_length=plen, onlink=lbit, autonomous=abit,
                                             valid_lifetime=valid, preferred_lifetime=pref,
                                             prefix=prefix).option()])
    ip = nw.IPv6(src="fe80::1", dst="ff02::1", next_header=58, hop_limit=255)
    assert nw.build_stack([ip, ra]) == theirs
    back, _, _ = nw.RouterAdvert.parse(theirs, 40)
    assert back.header_bytes(ip=ip) == theirs[40:56] + b"".join(opt.build() for opt in ra.options)
    assert back.options[1].mtu == mtu
    info = back.options[2].prefix_info
    assert info is not None and (info.prefix, info.prefix_length) == (prefix, plen)


def test_router_solicit_codec_matches_scapy() -> None:
    ip = nw.IPv6(src=VM_LL, dst="ff02::2", next_header=58, hop_limit=255)
    ours = nw.build_stack([ip, nw.RouterSolicit(options=[nw.NdOption.lladdr(VM_MAC)])])
    assert ours == bytes(ScapyIPv6(src=VM_LL, dst="ff02::2", hlim=255) / ICMPv6ND_RS()
                         / ICMPv6NDOptSrcLLAddr(lladdr=VM_MAC))
    assert nw.RouterSolicit.parse(ours, 40)[0].lladdr() == VM_MAC


# -------------------------------------------------------------------------------------------------- tshark

TSHARK = shutil.which("tshark")
CHECKSUM_PREFS = ("ip.check_checksum:TRUE", "udp.check_checksum:TRUE")
GOOD = "1"
PI_WARN = 0x00600000


def run_tshark(tmp_path: Path, frames: Sequence[bytes]) -> list[dict[str, list[str]]]:
    """tshark's fields for each frame, flattened to name -> values in wire order (as test_tshark.py)."""
    path = tmp_path / "dhcp.pcap"
    nw.write_pcap(path, list(frames))
    config = tmp_path / "wireshark-config"
    config.mkdir()
    cmd = [str(TSHARK), "-n", "-r", str(path), "-T", "json", "--no-duplicate-keys"]
    for pref in CHECKSUM_PREFS:
        cmd += ["-o", pref]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False,
                         env={**os.environ, "WIRESHARK_CONFIG_DIR": str(config)})
    assert res.returncode == 0, res.stderr
    out = []
    for packet in json.loads(res.stdout):
        flat: dict[str, list[str]] = {}

        def walk(node: Any, flat: dict[str, list[str]] = flat) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    for item in value if isinstance(value, list) else [value]:
                        if isinstance(item, str):
                            flat.setdefault(key, []).append(item)
                        else:
                            walk(item)

        walk(packet["_source"]["layers"])
        out.append(flat)
    return out


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")
def test_replies_decoded_by_tshark(tmp_path: Path) -> None:
    def r4(options: list[Any], **kw: Any) -> bytes:
        out = dhcp4_reply(scapy_dhcp4(options, **kw), PORT, SUBNETS, server_mac=SERVER_MAC, mtu=MTU)
        assert out is not None
        return out

    def r6(msg: ScapyPacket) -> bytes:
        out = dhcp6_reply(scapy_dhcp6(msg), PORT, SUBNETS, server_mac=SERVER_MAC)
        assert out is not None
        return out

    ra = router_advert(scapy_rs(), PORT, SUBNETS, router_mac=SERVER_MAC, mtu=MTU)
    assert ra is not None
    frames = [
        r4([("message-type", "discover"), PRL]),
        r4([("message-type", "request"), ("requested_addr", "192.168.10.20"), ("server_id", "192.168.10.1")]),
        r4([("message-type", "request"), ("requested_addr", "192.168.10.21")]),
        r4([("message-type", "inform")], ciaddr="192.168.10.20"),
        r6(DHCP6_Solicit(trid=1) / CLIENT_ID / DHCP6OptIA_NA(iaid=5)),
        r6(DHCP6_Request(trid=2) / CLIENT_ID / SERVER_ID / DHCP6OptIA_NA(iaid=5)),
        r6(DHCP6_InfoRequest(trid=3) / CLIENT_ID),
        ra,
    ]
    trees = run_tshark(tmp_path, frames)
    for n, f in enumerate(trees):
        severities = [int(s, 16) if s.startswith("0x") else int(s) for s in f.get("_ws.expert.severity", [])]
        assert all(s < PI_WARN for s in severities), (n, f.get("_ws.expert.message"))
        assert "_ws.malformed" not in f, n
        for field in ("ip.checksum.status", "udp.checksum.status", "icmpv6.checksum.status"):
            assert f.get(field, [GOOD]) == [GOOD], (n, field)
    for f, mtype in zip(trees[:4], ("2", "5", "6", "5"), strict=True):
        assert f["frame.protocols"] == ["eth:ethertype:ip:udp:dhcp"]
        assert f["dhcp.option.dhcp"] == [mtype]
        assert f["dhcp.option.dhcp_server_id"] == ["192.168.10.1"]
        assert f["dhcp.cookie"] == ["99.130.83.99"]
    offer = trees[0]
    assert offer["dhcp.ip.your"] == ["192.168.10.20"]
    assert offer["dhcp.option.ip_address_lease_time"] == [str(LEASE_S)]
    assert offer["dhcp.option.interface_mtu"] == [str(MTU)]
    assert offer["dhcp.option.router"] == ["192.168.10.1"]
    assert offer["dhcp.option.domain_name_server"] == ["192.168.10.2", "1.1.1.1"]
    for f, mtype in zip(trees[4:7], ("2", "7", "7"), strict=True):
        assert f["frame.protocols"] == ["eth:ethertype:ipv6:udp:dhcpv6"]
        assert f["dhcpv6.msgtype"] == [mtype]
    assert trees[4]["dhcpv6.iaaddr.ip"] == ["2001:db8:a::20"]
    assert trees[4]["dhcpv6.duidll.link_layer_addr"] == [VM_MAC, SERVER_MAC][::-1]
    assert trees[6]["dhcpv6.dns_server"] == ["2001:db8::53", "2001:db8::54"]
    ra_f = trees[7]
    assert ra_f["icmpv6.type"] == ["134"]
    assert ra_f["icmpv6.nd.ra.flag.m"] == ["1"] and ra_f["icmpv6.nd.ra.flag.o"] == ["1"]
    assert ra_f["icmpv6.opt.prefix"] == ["2001:db8:a::", "2001:db8:b::"]
    assert ra_f["icmpv6.opt.mtu"] == [str(MTU)]
    assert ra_f["icmpv6.opt.linkaddr"] == [SERVER_MAC]
