"""The VTEP pipeline, without I/O: learning, flooding, suppression, MTU, isolation, the flow cache."""

import pytest

from netweave.dataplane import GROUP, PORT, VTEP, Dataplane
from netweave.model import Network, Port, Remote
from netweave.packet import (
    Arp,
    Ethernet,
    IcmpDestUnreach,
    IcmpEcho,
    Icmpv6PacketTooBig,
    IPv4,
    IPv6,
    NdOption,
    NeighborAdvert,
    NeighborSolicit,
    build_stack,
    decode,
    internet_checksum,
)

ME, PEER1, PEER2 = "198.18.0.1", "198.18.0.2", "198.18.0.3"
M1, M2, M3, MR = "02:00:00:00:01:01", "02:00:00:00:01:02", "02:00:00:00:01:03", "02:00:00:00:02:01"
BCAST = "ff:ff:ff:ff:ff:ff"


def ping(src: str, dst: str, *, size: int = 64, df: int = 0) -> bytes:
    """An ICMP echo frame of `size` bytes from 10.0.0.1 to 10.0.0.2."""
    layers = [
        Ethernet(src=src, dst=dst),
        IPv4(src="10.0.0.1", dst="10.0.0.2", proto=1, df=df),
        IcmpEcho(ident=1),
    ]
    return build_stack(layers, bytes(max(size - 42, 0)))


def arp_request(src_mac: str, spa: str, tpa: str) -> bytes:
    return build_stack(
        [Ethernet(src=src_mac, dst=BCAST, type=0x0806), Arp(op=1, sha=src_mac, spa=spa, tpa=tpa)]
    )


@pytest.fixture
def dp() -> Dataplane:
    d = Dataplane(ME)
    d.add_network(Network(vni=5000, flood=(PEER1, PEER2)))
    d.add_port(Port(name="vm1", vni=5000, mac=M1, ips=("10.0.0.1",)))
    d.add_port(Port(name="vm2", vni=5000, mac=M2, ips=("10.0.0.2",)))
    return d


def test_known_local_unicast_goes_to_one_port(dp: Dataplane) -> None:
    targets, _ = dp.from_port("vm1", ping(M1, M2), now=0)
    assert targets == ((PORT, "vm2"),)


def test_broadcast_floods_other_ports_and_replication_list(dp: Dataplane) -> None:
    targets, _ = dp.from_port("vm1", ping(M1, BCAST), now=0)
    assert targets == ((PORT, "vm2"), (VTEP, PEER1), (VTEP, PEER2))
    assert dp.counters.vni[5000]["flooded"] == 1


def test_multicast_group_flood() -> None:
    d = Dataplane(ME)
    d.add_network(Network(vni=7, multicast_group="239.1.1.7"))
    d.add_port(Port(name="a", vni=7, mac=M1))
    assert d.from_port("a", ping(M1, "02:99:00:00:00:01"), 0)[0] == ((GROUP, "239.1.1.7"),)


def test_flood_and_learn_then_unicast_to_the_right_vtep(dp: Dataplane) -> None:
    assert dp.from_port("vm1", ping(M1, MR), 0)[0][-2:] == ((VTEP, PEER1), (VTEP, PEER2))  # unknown: flooded
    targets, _ = dp.from_tunnel(PEER2, 5000, ping(MR, M1), now=1)  # the reply teaches where MR lives
    assert targets == ((PORT, "vm1"),)
    assert dp.from_port("vm1", ping(M1, MR), 2)[0] == ((VTEP, PEER2),)
    assert dp.counters.vni[5000]["learned"] == 1
    dp.from_tunnel(PEER1, 5000, ping(MR, M1), now=3)  # the VM moved behind another VTEP
    assert dp.counters.vni[5000]["moved"] == 1
    assert dp.from_port("vm1", ping(M1, MR), 4)[0] == ((VTEP, PEER1),)


def test_learned_entries_age_but_static_ones_stay(dp: Dataplane) -> None:
    dp.from_tunnel(PEER1, 5000, ping(MR, M1), now=0)
    dp.from_port("vm1", ping(M1, MR), now=200)  # the flow cache path refreshes... only the source
    assert dp.age(now=299) == 0
    assert dp.age(now=301) == 1
    assert dp.counters.vni[5000]["aged"] == 1
    assert dp.from_port("vm1", ping(M1, MR), 302)[0][-1] == (VTEP, PEER2)  # flooded again
    assert dp.fib.lookup(5000, bytes.fromhex("020000000101")) is not None  # static port entry stays


def test_learning_never_overrides_static_or_control_entries(dp: Dataplane) -> None:
    dp.add_remote(Remote(vni=5000, mac=MR, vtep=PEER1), origin="control")
    dp.from_tunnel(PEER2, 5000, ping(MR, M1), now=0)  # spoofed source behind another VTEP
    assert dp.from_port("vm1", ping(M1, MR), 1)[0] == ((VTEP, PEER1),)
    dp.from_tunnel(PEER2, 5000, ping(M1, M2), now=0)  # a remote claiming a local VM's MAC
    assert dp.from_port("vm2", ping(M2, M1), 1)[0] == ((PORT, "vm1"),)


def test_static_mode_does_not_learn_from_tunnels() -> None:
    d = Dataplane(ME)
    d.add_network(Network(vni=1, mode="static", flood=(PEER1,)))
    d.add_port(Port(name="a", vni=1, mac=M1))
    d.from_tunnel(PEER1, 1, ping(MR, M1), 0)
    assert d.fib.lookup(1, bytes.fromhex("020000000201")) is None


def test_split_horizon_and_tunnel_flood_reaches_only_local_ports(dp: Dataplane) -> None:
    targets, _ = dp.from_tunnel(PEER1, 5000, ping(MR, BCAST), 0)
    assert targets == ((PORT, "vm1"), (PORT, "vm2"))
    dp.add_remote(Remote(vni=5000, mac=M3, vtep=PEER2))
    assert dp.from_tunnel(PEER1, 5000, ping(MR, M3), 0)[0] == ()
    assert dp.counters.drops["split_horizon"] == 1


def test_vnis_are_isolated_even_with_the_same_mac(dp: Dataplane) -> None:
    dp.add_network(Network(vni=6000, flood=(PEER1,)))
    dp.add_port(Port(name="red1", vni=6000, mac=M1, ips=("10.0.0.1",)))  # same MAC and IP, other tenant
    assert dp.from_port("red1", ping(M1, M2), 0)[0] == ((VTEP, PEER1),)  # M2 is unknown in 6000: flood
    assert dp.from_tunnel(PEER1, 6000, ping(MR, M1), 0)[0] == ((PORT, "red1"),)
    assert dp.from_tunnel(PEER1, 5000, ping(MR, M1), 0)[0] == ((PORT, "vm1"),)
    assert dp.from_tunnel(PEER1, 9999, ping(MR, M1), 0)[0] == ()
    assert dp.counters.drops["no_such_vni"] == 1


def test_arp_suppression_answers_locally(dp: Dataplane) -> None:
    dp.add_remote(Remote(vni=5000, mac=MR, vtep=PEER1, ips=("10.0.0.9",)))
    targets, reply = dp.from_port("vm1", arp_request(M1, "10.0.0.1", "10.0.0.9"), 0)
    assert targets == ((PORT, "vm1"),)
    pkt = decode(reply)
    assert pkt[Ethernet].dst == M1 and pkt[Ethernet].src == MR
    assert (pkt[Arp].op, pkt[Arp].sha, pkt[Arp].spa, pkt[Arp].tha, pkt[Arp].tpa) == (
        2,
        MR,
        "10.0.0.9",
        M1,
        "10.0.0.1",
    )
    assert dp.counters.vni[5000]["suppressed_arp"] == 1


def test_unknown_arp_floods_or_drops_per_network(dp: Dataplane) -> None:
    req = arp_request(M1, "10.0.0.1", "10.0.0.77")
    assert dp.from_port("vm1", req, 0)[0] == ((PORT, "vm2"), (VTEP, PEER1), (VTEP, PEER2))
    dp.add_network(Network(vni=5000, flood=(PEER1, PEER2), unknown_arp="drop"))
    assert dp.from_port("vm1", req, 0)[0] == ()
    assert dp.counters.drops["unknown_arp"] == 1


def test_gratuitous_arp_updates_bindings_in_flood_learn_mode(dp: Dataplane) -> None:
    garp = build_stack(
        [Ethernet(src=MR, dst=BCAST, type=0x0806), Arp(op=1, sha=MR, spa="10.0.0.50", tpa="10.0.0.50")]
    )
    dp.from_tunnel(PEER1, 5000, garp, 0)
    assert dp.bindings[(5000, "10.0.0.50")].mac == MR
    targets, _ = dp.from_port("vm1", arp_request(M1, "10.0.0.1", "10.0.0.50"), 1)
    assert targets == ((PORT, "vm1"),)
    static = Dataplane(ME)
    static.add_network(Network(vni=1, mode="static"))
    static.add_port(Port(name="a", vni=1, mac=M1))
    static.from_tunnel(PEER1, 1, garp, 0)
    assert (1, "10.0.0.50") not in static.bindings


def test_nd_suppression_answers_with_a_valid_advert() -> None:
    d = Dataplane("2001:db8::1")
    d.add_network(Network(vni=9, flood=("2001:db8::2",)))
    d.add_port(Port(name="a", vni=9, mac=M1, ips=("fd00::1",)))
    d.add_remote(Remote(vni=9, mac=MR, vtep="2001:db8::2", ips=("fd00::2",)))
    ip = IPv6(src="fd00::1", dst="ff02::1:ff00:2", next_header=58, hop_limit=255)
    ns = NeighborSolicit(target="fd00::2", options=[NdOption.lladdr(M1)])
    frame = build_stack([Ethernet(src=M1, dst="33:33:ff:00:00:02", type=0x86DD), ip, ns])
    targets, reply = d.from_port("a", frame, 0)
    assert targets == ((PORT, "a"),)
    pkt = decode(reply)
    na = pkt[NeighborAdvert]
    assert (na.target, na.solicited, na.override, na.lladdr()) == ("fd00::2", 1, 1, MR)
    assert (pkt[IPv6].src, pkt[IPv6].dst, pkt[IPv6].hop_limit) == ("fd00::2", "fd00::1", 255)
    assert pkt.build() == reply  # our checksum equals a recomputed one
    assert d.counters.vni[9]["suppressed_nd"] == 1


def test_dad_probe_for_the_ports_own_address_is_not_answered() -> None:
    """Duplicate address detection (RFC 4862 5.4.2): the VM solicits its own new address from `::` with no
    link-layer option; answering it from the binding would make the VM give the address up."""
    d = Dataplane("2001:db8::1")
    d.add_network(Network(vni=9, flood=("2001:db8::2",), unknown_arp="drop"))
    d.add_port(Port(name="a", vni=9, mac=M1, ips=("fd00::1",)))
    ip = IPv6(src="::", dst="ff02::1:ff00:1", next_header=58, hop_limit=255)
    probe = build_stack([Ethernet(src=M1, dst="33:33:ff:00:00:01", type=0x86DD), ip,
                         NeighborSolicit(target="fd00::1")])
    assert d.from_port("a", probe, 0)[0] == ()
    assert d.counters.vni[9]["suppressed_nd"] == 0


def test_too_big_for_the_tunnel_gets_frag_needed_with_the_tunnel_mtu(dp: Dataplane) -> None:
    dp.add_remote(Remote(vni=5000, mac=MR, vtep=PEER1))
    fits = ping(M1, MR, size=14 + 1450, df=1)
    assert dp.from_port("vm1", fits, 0)[0] == ((VTEP, PEER1),)
    targets, reply = dp.from_port("vm1", ping(M1, MR, size=14 + 1451, df=1), 0)
    assert targets == ((PORT, "vm1"),)
    pkt = decode(reply)
    icmp = pkt[IcmpDestUnreach]
    assert (icmp.type, icmp.code, icmp.next_hop_mtu) == (3, 4, 1450)
    assert (pkt[IPv4].src, pkt[IPv4].dst) == ("10.0.0.2", "10.0.0.1")
    assert internet_checksum(reply[34:]) == 0
    assert dp.counters.drops["mtu"] == 1
    assert dp.from_port("vm1", ping(M1, MR, size=14 + 1451, df=0), 0)[0] == ()  # no DF: dropped, no ICMP
    assert dp.from_port("vm1", ping(M1, M2, size=14 + 1600), 0)[0] == ((PORT, "vm2"),)  # local: no tunnel


def test_ipv6_too_big_gets_packet_too_big() -> None:
    d = Dataplane("2001:db8::1")
    d.add_network(Network(vni=9, flood=("2001:db8::2",)))
    d.add_port(Port(name="a", vni=9, mac=M1))
    ip = IPv6(src="fd00::1", dst="fd00::2", next_header=59)
    big = build_stack([Ethernet(src=M1, dst=MR, type=0x86DD), ip], bytes(1500))
    targets, reply = d.from_port("a", big, 0)
    assert targets == ((PORT, "a"),) and decode(reply)[Icmpv6PacketTooBig].mtu == 1430


def test_flow_cache_hits_and_is_invalidated_by_any_table_change(dp: Dataplane) -> None:
    frame = ping(M1, M2)
    for i in range(10):
        assert dp.from_port("vm1", frame, i)[0] == ((PORT, "vm2"),)
    assert dp.cache_hits == 9 and dp.cache_misses == 1
    dp.remove_port("vm2")
    assert dp.from_port("vm1", frame, 11)[0] == ((VTEP, PEER1), (VTEP, PEER2))  # unknown now: flooded
    assert dp.cache_misses == 2


def test_counters_per_port_and_vni(dp: Dataplane) -> None:
    frame = ping(M1, M2, size=100)
    dp.from_port("vm1", frame, 0)
    snap = dp.snapshot()
    assert snap["port"]["vm1"]["rx_bytes"] == 100  # type: ignore[index]
    assert snap["vni"]["5000"]["rx_frames"] == 0  # only underlay frames count per VNI  # type: ignore[index]
    dp.from_tunnel(PEER1, 5000, frame, 1)
    assert dp.snapshot()["vni"]["5000"]["rx_frames"] == 1  # type: ignore[index]


def test_bad_frames_are_counted_not_raised(dp: Dataplane) -> None:
    assert dp.from_port("vm1", b"\x00" * 5, 0)[0] == ()
    assert dp.from_port("nope", ping(M1, M2), 0)[0] == ()
    assert dp.from_port("vm1", arp_request(M1, "10.0.0.1", "10.0.0.2")[:20], 0)[0] == ()
    assert dp.counters.drops["bad_header"] == 1 and dp.counters.drops["no_such_port"] == 1
    assert dp.counters.drops["malformed"] == 1


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="VNI"):
        Network(vni=1 << 24)
    with pytest.raises(ValueError, match="multicast"):
        Network(vni=1, multicast_group="10.0.0.1")
    with pytest.raises(ValueError, match="not both"):
        Network(vni=1, multicast_group="239.0.0.1", flood=("198.18.0.2",))
    with pytest.raises(ValueError, match="MAC"):
        Port(name="a", vni=1, mac="zz")
    with pytest.raises(ValueError, match="interface name"):
        Port(name="x" * 16, vni=1, mac=M1)
    d = Dataplane(ME)
    with pytest.raises(KeyError):
        d.add_port(Port(name="a", vni=1, mac=M1))
