"""The public encapsulation API: encapsulate/decapsulate, entropy, checks, the overhead table."""

import pytest

from netweave.packet import (
    ENCAPS,
    DecodeError,
    Ethernet,
    Geneve,
    GeneveOption,
    IPv4,
    IPv6,
    IPv6Fragment,
    Tcp,
    Udp,
    Vxlan,
    build_stack,
    decapsulate,
    decode,
    encapsulate,
    entropy_port,
    flow_hash,
    internet_checksum,
    overhead_table,
)
from netweave.packet.encap import flow_key

V4 = ("192.0.2.1", "192.0.2.2")
V6 = ("2001:db8::1", "2001:db8::2")
MACS = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def tcp_frame(sport: int, dport: int = 80, payload: bytes = b"data", *, v6: bool = False) -> bytes:
    ip: IPv4 | IPv6
    if v6:
        ip = IPv6(src="fd00::1", dst="fd00::2", next_header=6)
    else:
        ip = IPv4(src="10.0.0.1", dst="10.0.0.2", proto=6)
    return build_stack([Ethernet(type=0x86DD if v6 else 0x0800, **MACS), ip, Tcp(sport=sport, dport=dport)],
                       payload)


@pytest.mark.parametrize("encap", ENCAPS)
@pytest.mark.parametrize("underlay", [V4, V6], ids=["ipv4", "ipv6"])
def test_round_trip_every_encap(encap: str, underlay: tuple[str, str]) -> None:
    inner = tcp_frame(1234, payload=b"x" * 1346)
    vni = {"gre": 0xFFFFFFFF, "stt": 0x1122334455667788}.get(encap, 0xABCDEF)
    frame = encapsulate(inner, encap=encap, vni=vni, src_ip=underlay[0], dst_ip=underlay[1], ttl=17,
                        src_mac="02:aa:00:00:00:01", dst_mac="02:aa:00:00:00:02")
    d = decapsulate(frame, gre_encap="nvgre" if encap == "nvgre" else "gre")
    assert (d.encap, d.vni, d.inner) == (encap, vni, inner)
    assert (d.outer_src, d.outer_dst, d.ttl) == (underlay[0], underlay[1], 17)
    assert (d.outer_src_mac, d.outer_dst_mac) == ("02:aa:00:00:00:01", "02:aa:00:00:00:02")
    if encap in ("vxlan", "geneve", "stt"):
        assert d.src_port == entropy_port(flow_hash(inner))
    if encap == "nvgre":
        assert d.flow_id == flow_hash(inner) & 0xFF


def test_outer_source_port_is_stable_in_range_and_spread() -> None:
    ports = set()
    for sport in range(1000, 1256):
        inner = tcp_frame(sport)
        p = decapsulate(encapsulate(inner, encap="vxlan", vni=1, src_ip=V4[0], dst_ip=V4[1])).src_port
        assert p is not None and 49152 <= p <= 65535
        again = decapsulate(encapsulate(tcp_frame(sport, payload=b"other"), encap="vxlan", vni=1,
                                        src_ip=V4[0], dst_ip=V4[1])).src_port
        assert p == again, "the port depends on the flow, not the payload"
        ports.add(p)
    assert len(ports) > 240, "256 flows should land on (nearly) 256 ports"
    # 16 flows over two ECMP paths (port parity as a stand-in for a 2-way hash) use both
    parities = {entropy_port(flow_hash(tcp_frame(s))) % 2 for s in range(16)}
    assert parities == {0, 1}


def test_flow_key_uses_five_tuple_ipv6_and_skips_ports_of_fragments() -> None:
    a, b = tcp_frame(1, v6=True), tcp_frame(2, v6=True)
    assert flow_hash(a) != flow_hash(b)
    frag = build_stack([Ethernet(type=0x86DD, **MACS), IPv6(src="fd00::1", dst="fd00::2", next_header=44),
                        IPv6Fragment(next_header=6, offset=100, ident=5)], b"\x00" * 20)
    assert len(flow_key(frag)) == 1 + 32, "a later fragment has no ports: protocol and addresses only"
    assert flow_key(frag)[0] == 6
    non_ip = bytes(Ethernet(type=0x88CC, **MACS)) + b"lldp"
    assert flow_key(non_ip) == non_ip[:14]


def test_explicit_source_port_and_df() -> None:
    frame = encapsulate(tcp_frame(1), encap="geneve", vni=9, src_ip=V4[0], dst_ip=V4[1],
                        src_port=50000, df=True)
    pkt = decode(frame)
    assert pkt[Udp].sport == 50000 and pkt[IPv4].df == 1


def test_udp_checksums_zero_over_ipv4_and_valid_over_ipv6() -> None:
    inner = tcp_frame(5)
    v4 = decode(encapsulate(inner, encap="vxlan", vni=1, src_ip=V4[0], dst_ip=V4[1]))
    assert v4[Udp].checksum == 0
    assert internet_checksum(encapsulate(inner, encap="vxlan", vni=1, src_ip=V4[0], dst_ip=V4[1])[14:34]) == 0
    v6 = decode(encapsulate(inner, encap="vxlan", vni=1, src_ip=V6[0], dst_ip=V6[1]))
    assert v6[Udp].checksum != 0
    assert v6[IPv6].flow_label == flow_hash(inner) & 0xFFFFF


def test_geneve_critical_option_sets_c_bit() -> None:
    crit = GeneveOption(option_class=0x0102, type=0x80, data=b"\x00\x00\x00\x01")
    plain = GeneveOption(option_class=0xFFFF, type=0x01, data=b"")
    for opts, c in (([plain], 0), ([plain, crit], 1)):
        frame = encapsulate(tcp_frame(1), encap="geneve", vni=7, src_ip=V4[0], dst_ip=V4[1], options=opts)
        gen = decode(frame)[Geneve]
        assert gen.c == c and gen.opt_len == sum(1 + len(o.data) // 4 for o in opts)
        assert [o.option_class for o in decapsulate(frame).options] == [o.option_class for o in opts]


def test_bad_arguments_are_value_errors() -> None:
    inner = tcp_frame(1)
    with pytest.raises(ValueError, match="VNI"):
        encapsulate(inner, encap="vxlan", vni=1 << 24, src_ip=V4[0], dst_ip=V4[1])
    with pytest.raises(ValueError, match="unknown encapsulation"):
        encapsulate(inner, encap="lisp", vni=1, src_ip=V4[0], dst_ip=V4[1])
    with pytest.raises(ValueError, match="both"):
        encapsulate(inner, encap="vxlan", vni=1, src_ip=V4[0], dst_ip=V6[1])
    with pytest.raises(ValueError, match="not an IPv4 address"):
        encapsulate(inner, encap="vxlan", vni=1, src_ip="bogus", dst_ip=V4[1])
    with pytest.raises(ValueError, match="only Geneve"):
        encapsulate(inner, encap="vxlan", vni=1, src_ip=V4[0], dst_ip=V4[1], options=[GeneveOption()])
    with pytest.raises(ValueError, match="shorter"):
        encapsulate(b"\x00" * 10, encap="vxlan", vni=1, src_ip=V4[0], dst_ip=V4[1])


def _vxlan_frame(vxlan: Vxlan, dport: int = 4789) -> bytes:
    return build_stack([Ethernet(**MACS), IPv4(src=V4[0], dst=V4[1], proto=17), Udp(sport=50000, dport=dport),
                        vxlan], tcp_frame(1))


def test_decapsulate_rejects_what_a_vtep_must_drop() -> None:
    with pytest.raises(DecodeError, match="I flag"):
        decapsulate(_vxlan_frame(Vxlan(flags=0, vni=5)))
    with pytest.raises(DecodeError, match="not a tunnel port"):
        decapsulate(_vxlan_frame(Vxlan(vni=5), dport=53))
    good = bytearray(_vxlan_frame(Vxlan(vni=5)))
    assert decapsulate(bytes(good)).vni == 5
    good[24] ^= 0xFF  # corrupt the IPv4 header checksum
    with pytest.raises(DecodeError, match="checksum"):
        decapsulate(bytes(good))
    v6 = bytearray(encapsulate(tcp_frame(1), encap="vxlan", vni=1, src_ip=V6[0], dst_ip=V6[1]))
    v6[-1] ^= 0x01  # corrupt the inner payload: the outer UDP checksum no longer verifies
    with pytest.raises(DecodeError, match="checksum"):
        decapsulate(bytes(v6))
    with pytest.raises(DecodeError, match="not an IP underlay"):
        decapsulate(tcp_frame(1)[:12] + b"\x08\x06" + bytes(28))


def test_gre_and_nvgre_read_the_key_their_way() -> None:
    frame = encapsulate(tcp_frame(1), encap="nvgre", vni=0x123456, src_ip=V4[0], dst_ip=V4[1])
    as_nvgre, as_gre = decapsulate(frame, gre_encap="nvgre"), decapsulate(frame, gre_encap="gre")
    assert as_nvgre.vni == 0x123456 and as_gre.vni == as_nvgre.gre_key == 0x123456 << 8 | as_nvgre.flow_id


def test_overhead_table_matches_the_known_figures() -> None:
    rows = {(r.encap, r.underlay): r for r in overhead_table(1500)}
    expected = {"vxlan": 50, "geneve": 50, "gre": 42, "nvgre": 42, "stt": 72}
    for encap, ovh in expected.items():
        assert rows[(encap, "ipv4")].overhead_bytes == ovh
        assert rows[(encap, "ipv6")].overhead_bytes == ovh + 20
        assert rows[(encap, "ipv4")].inner_mtu == 1500 - ovh
    opt = [GeneveOption(data=bytes(4))]
    with_opt = {(r.encap, r.underlay): r.overhead_bytes for r in overhead_table(1500, opt)}
    assert with_opt[("geneve", "ipv4")] == 58 and with_opt[("vxlan", "ipv4")] == 50


def test_flow_hash_fast_path_equals_the_hash_of_the_flow_key() -> None:
    """The IPv4 shortcut in flow_hash must hash exactly the bytes flow_key names, or the outer port of
    a flow would depend on which path computed it."""
    import zlib

    from netweave.packet.encap import flow_key

    def generic(frame: bytes) -> int:
        h = zlib.crc32(flow_key(frame))
        h = ((h ^ (h >> 16)) * 0x45D9F3B) & 0xFFFFFFFF
        return h ^ (h >> 16)

    frames = [tcp_frame(s) for s in range(50)] + [tcp_frame(s, v6=True) for s in range(5)]
    frames.append(build_stack([Ethernet(**MACS), IPv4(src="10.0.0.1", dst="10.0.0.2", proto=17, mf=1),
                               Udp(sport=1, dport=2, checksum=0)]))
    for f in frames:
        assert flow_hash(f) == generic(f)
