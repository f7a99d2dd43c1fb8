"""The distributed router in the pipeline (`netweave.dataplane.routing` + `Dataplane`): anycast gateway
answers, routing to local and remote VMs in both IRB modes, TTL and checksum, ICMP errors, the L3 VNI's
egress and tenant isolation. Frames are built and checked with scapy, an implementation nobody here wrote."""

from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

from netweave.dataplane import PORT, Dataplane
from netweave.dataplane.pipeline import TUNNEL_TARGET
from netweave.dataplane.routing import routed
from netweave.model import Network, Port, Route, Router, RouterHost, RouterInterface

ME, H2 = "192.0.2.1", "192.0.2.2"
RMAC_ME, RMAC_H2 = "0e:00:00:00:00:01", "0e:00:00:00:00:02"
GW_WEB, GW_DB = "fa:16:3e:00:00:01", "fa:16:3e:00:00:02"
VM1, VM2, VM3 = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03"


def router(irb: str = "symmetric", name: str = "r1", l3_vni: int = 100001) -> Router:
    return Router(
        name=name, l3_vni=l3_vni, rmac=RMAC_ME, irb=irb,
        interfaces=(RouterInterface(5001, "10.1.0.0/24", "10.1.0.1", GW_WEB),
                    RouterInterface(5001, "fd00:1::/64", "fd00:1::1", GW_WEB),
                    RouterInterface(5002, "10.2.0.0/24", "10.2.0.1", GW_DB, encap="geneve")),
        hosts=(RouterHost("10.1.0.5", 5001, VM1, ME, RMAC_ME),
               RouterHost("fd00:1::5", 5001, VM1, ME, RMAC_ME),
               RouterHost("10.2.0.5", 5002, VM2, ME, RMAC_ME),
               RouterHost("10.2.0.6", 5002, VM3, H2, RMAC_H2)),
    )


def dataplane(irb: str = "symmetric") -> Dataplane:
    dp = Dataplane(ME)
    for vni, encap in ((5001, "vxlan"), (5002, "geneve")):
        dp.add_network(Network(vni=vni, encap=encap, mode="static", unknown_unicast="drop"))
    dp.add_port(Port("vm1", 5001, VM1, ("10.1.0.5", "fd00:1::5")))
    dp.add_port(Port("vm2", 5002, VM2, ("10.2.0.5",)))
    dp.add_router(router(irb))
    return dp


def ping(dst: str, *, ttl: int = 64, src: str = "10.1.0.5", mac: str = GW_WEB) -> bytes:
    return bytes(Ether(src=VM1, dst=mac) / IP(src=src, dst=dst, ttl=ttl) / ICMP(id=7, seq=1) / b"payload")


def test_gateway_answers_arp_and_ping() -> None:
    dp = dataplane()
    req = bytes(Ether(src=VM1, dst="ff:ff:ff:ff:ff:ff")
                / ARP(op=1, hwsrc=VM1, psrc="10.1.0.5", pdst="10.1.0.1"))
    targets, out = dp.from_port("vm1", req, 0.0)
    assert targets == ((PORT, "vm1"),)
    arp = Ether(out)[ARP]
    assert arp.op == 2 and arp.hwsrc == GW_WEB and arp.psrc == "10.1.0.1"
    targets, out = dp.from_port("vm1", ping("10.1.0.1"), 0.0)
    assert targets == ((PORT, "vm1"),)
    reply = Ether(out)
    assert reply[ICMP].type == 0 and reply[IP].src == "10.1.0.1" and bytes(reply[ICMP].payload) == b"payload"
    # the other interface's address is the same router: answered too (Linux routers do the same)
    assert Ether(dp.from_port("vm1", ping("10.2.0.1"), 0.0)[1])[IP].src == "10.2.0.1"


def test_routed_to_a_local_vm_once_with_ttl_and_checksum() -> None:
    dp = dataplane()
    targets, out = dp.from_port("vm1", ping("10.2.0.5", ttl=64), 0.0)
    assert targets == ((PORT, "vm2"),)
    pkt = Ether(out)
    assert (pkt.src, pkt.dst) == (GW_DB, VM2)
    assert pkt[IP].ttl == 63
    fresh = IP(bytes(pkt[IP]))
    del fresh.chksum
    assert IP(bytes(fresh))[IP].chksum == pkt[IP].chksum, "the incremental checksum equals a recomputed one"
    assert dp.counters.vni[5001]["routed"] == 1
    hits = dp.cache_hits
    dp.from_port("vm1", ping("10.2.0.5"), 0.0)
    assert dp.cache_hits == hits + 1, "the Ethernet header's 'route it' is flow-cached"


@pytest.mark.parametrize("ttl", [1, 2, 17, 255])
def test_routed_ttl_checksum_matches_scapy(ttl: int) -> None:
    frame = bytes(Ether() / IP(src="10.9.8.7", dst="10.1.2.3", ttl=ttl, id=0xFFFF, flags=2) / UDP())
    out = IP(routed(frame, b"\x02" * 6, b"\x04" * 6)[14:])
    again = IP(bytes(out))
    del again.chksum
    assert out.ttl == ttl - 1 and IP(bytes(again)).chksum == out.chksum


def test_symmetric_irb_tunnels_on_the_l3_vni_with_router_macs() -> None:
    dp = dataplane("symmetric")
    targets, out = dp.from_port("vm1", ping("10.2.0.6"), 0.0)
    assert targets == ((TUNNEL_TARGET, f"100001 {H2}"),)
    pkt = Ether(out)
    assert (pkt.src, pkt.dst) == (RMAC_ME, RMAC_H2) and pkt[IP].ttl == 63


def test_asymmetric_irb_tunnels_on_the_destination_subnet_vni() -> None:
    dp = dataplane("asymmetric")
    targets, out = dp.from_port("vm1", ping("10.2.0.6"), 0.0)
    assert targets == ((TUNNEL_TARGET, f"5002 {H2}"),)
    pkt = Ether(out)
    assert (pkt.src, pkt.dst) == (GW_DB, VM3) and pkt[IP].ttl == 63


def test_l3_vni_egress_delivers_without_a_second_decrement() -> None:
    dp = dataplane()
    frame = bytes(Ether(src=RMAC_H2, dst=RMAC_ME) / IP(src="10.2.0.6", dst="10.1.0.5", ttl=63) / ICMP())
    targets, out = dp.from_tunnel(H2, 100001, frame, 0.0)
    assert targets == ((PORT, "vm1"),)
    pkt = Ether(out)
    assert (pkt.src, pkt.dst) == (GW_WEB, VM1) and pkt[IP].ttl == 63
    wrong = bytes(Ether(src=RMAC_H2, dst="0e:99:99:99:99:99") / IP(dst="10.1.0.5") / ICMP())
    assert dp.from_tunnel(H2, 100001, wrong, 0.0)[0] == ()
    remote = bytes(Ether(src=RMAC_H2, dst=RMAC_ME) / IP(dst="10.2.0.6") / ICMP())
    assert dp.from_tunnel(H2, 100001, remote, 0.0)[0] == (), "never routed back into the underlay"
    assert dp.counters.drops["not_routable"] == 1 and dp.counters.drops["no_route"] == 1


def icmp_of(out: bytes) -> Any:
    return Ether(out)[ICMP]


def test_icmp_errors_from_the_gateway() -> None:
    dp = dataplane()
    targets, out = dp.from_port("vm1", ping("10.2.0.5", ttl=1), 0.0)
    assert targets == ((PORT, "vm1"),)
    pkt = Ether(out)
    assert pkt[IP].src == "10.1.0.1" and pkt[ICMP].type == 11 and pkt[ICMP].code == 0
    assert pkt[ICMP].payload.dst == "10.2.0.5", "the offending header is quoted"
    _, out = dp.from_port("vm1", ping("10.2.0.77"), 0.0)
    assert (icmp_of(out).type, icmp_of(out).code) == (3, 1), "connected subnet, no such host"
    _, out = dp.from_port("vm1", ping("172.16.0.1"), 0.0)
    assert (icmp_of(out).type, icmp_of(out).code) == (3, 0), "no route"
    assert dp.counters.drops["ttl_exceeded"] == 1 and dp.counters.drops["no_route"] == 2


def test_static_route_via_a_nexthop_vm() -> None:
    dp = Dataplane(ME)
    dp.add_network(Network(vni=5001, mode="static", unknown_unicast="drop"))
    dp.add_port(Port("vm1", 5001, VM1, ("10.1.0.5",)))
    spec = router()
    dp.add_router(Router(spec.name, spec.l3_vni, spec.rmac, "symmetric", spec.interfaces, spec.hosts,
                         routes=(Route("192.168.0.0/16", "10.2.0.6"),)))
    targets, out = dp.from_port("vm1", ping("192.168.4.4"), 0.0)
    assert targets == ((TUNNEL_TARGET, f"100001 {H2}"),) and Ether(out).dst == RMAC_H2


def test_two_tenants_with_identical_cidrs_never_meet() -> None:
    dp = dataplane()
    dp.add_network(Network(vni=6001, mode="static", unknown_unicast="drop"))
    dp.add_port(Port("blue1", 6001, "02:00:00:00:0b:01", ("10.1.0.5",)))
    blue = Router("r-blue", 100002, RMAC_ME, interfaces=(RouterInterface(6001, "10.1.0.0/24", "10.1.0.1",
                                                                           "fa:16:3e:00:0b:01"),),
                  hosts=(RouterHost("10.1.0.5", 6001, "02:00:00:00:0b:01", ME, RMAC_ME),))
    dp.add_router(blue)
    frame = bytes(Ether(src="02:00:00:00:0b:01", dst="fa:16:3e:00:0b:01") / IP(src="10.1.0.5", dst="10.2.0.5")
                  / ICMP())
    targets, out = dp.from_port("blue1", frame, 0.0)
    assert targets == ((PORT, "blue1"),) and Ether(out)[ICMP].type == 3, "red's 10.2.0.0/24 is not blue's"
    # red's gateway MAC on blue's network is not a gateway there: unknown unicast, dropped
    frame = bytes(Ether(src="02:00:00:00:0b:01", dst=GW_WEB) / IP(src="10.1.0.5", dst="10.2.0.5") / ICMP())
    assert dp.from_port("blue1", frame, 0.0)[0] == ()
    # and red's L3 VNI delivers only to red's VMs
    frame = bytes(Ether(src=RMAC_H2, dst=RMAC_ME) / IP(dst="10.1.0.5") / ICMP())
    assert dp.from_tunnel(H2, 100002, frame, 0.0)[0] == ((PORT, "blue1"),)
    assert dp.from_tunnel(H2, 100001, frame, 0.0)[0] == ((PORT, "vm1"),)


def test_ipv6_gateway_neighbour_and_routing() -> None:
    dp = dataplane()
    ns = bytes(Ether(src=VM1, dst="33:33:ff:00:00:01")
               / IPv6(src="fd00:1::5", dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt="fd00:1::1"))
    targets, out = dp.from_port("vm1", ns, 0.0)
    na = Ether(out)[ICMPv6ND_NA]
    assert targets == ((PORT, "vm1"),) and na.R == 1 and na.tgt == "fd00:1::1" and Ether(out).src == GW_WEB
    echo = bytes(Ether(src=VM1, dst=GW_WEB) / IPv6(src="fd00:1::5", dst="fd00:1::1")
                 / ICMPv6EchoRequest(id=3))
    assert ICMPv6EchoReply in Ether(dp.from_port("vm1", echo, 0.0)[1])
    hop = bytes(Ether(src=VM1, dst=GW_WEB) / IPv6(src="fd00:1::5", dst="fd00:1::77", hlim=9)
                / ICMPv6EchoRequest())
    _, out = dp.from_port("vm1", hop, 0.0)
    assert Ether(out)[IPv6].src == "fd00:1::1", "address unreachable, from the gateway"


def test_router_removed_routes_nothing() -> None:
    dp = dataplane()
    assert dp.from_port("vm1", ping("10.2.0.5"), 0.0)[0] == ((PORT, "vm2"),)
    dp.remove_router("r1")
    assert dp.from_port("vm1", ping("10.2.0.5"), 0.0)[0] == (), "the cached decision went with the router"


def test_no_icmp_error_for_multicast_destinations() -> None:
    """RFC 1812 4.3.2.7 / RFC 4443 2.4: a datagram to a multicast address never draws an ICMP error,
    even when it was sent to the gateway's MAC and has nowhere to go."""
    dp = dataplane()
    assert dp.from_port("vm1", ping("239.1.2.3"), 0.0)[0] == ()
    assert dp.from_port("vm1", ping("239.1.2.3", ttl=1), 0.0)[0] == ()
    v6 = bytes(Ether(src=VM1, dst=GW_WEB) / IPv6(src="fd00:1::5", dst="ff05::1", hlim=1)
               / ICMPv6EchoRequest())
    assert dp.from_port("vm1", v6, 0.0)[0] == ()
    assert dp.counters.drops["no_route"] == 1 and dp.counters.drops["ttl_exceeded"] == 2
