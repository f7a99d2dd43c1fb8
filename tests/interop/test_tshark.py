"""Our bytes as tshark (Wireshark 4.0's dissectors) decodes them.

Every test builds frames with netweave.packet only, writes them with `write_pcap`, runs tshark on the
file and compares the fields tshark decoded with the values we encoded. tshark is an independent
implementation of every format here, so an agreement is evidence that the wire format is right, not just
that our encoder and decoder agree with each other.

Facts about tshark 4.0 these tests rely on (all measured here):
- checksum status fields (`ip.checksum.status`, `udp.checksum.status`, ...) are the enum
  `proto_checksum_enum_e`: 0 Bad, 1 Good, 2 Unverified, 3 Not present (a zero UDP checksum over IPv4).
  IP/UDP/TCP checksums are only verified with `-o ip.check_checksum:TRUE` etc.; GRE and ICMP(v6) always.
- booleans print as "1"/"0"; Geneve's VNI, option class and type print in hex; `ip.frag_offset` and
  `ipv6.fraghdr.offset` are in 8-octet units; the 802.1ad tag's ethertype is `ieee8021ah.etype`.
- NVGRE has no field of its own: VSID = gre.key >> 8, FlowID = gre.key & 0xff.
- STT is a heuristic dissector on the *IP* layer: IP tries it only when `ip.try_heuristic_first` /
  `ipv6.try_heuristic_first` is set; without them the frame is plain TCP to port 7471.
- tshark 4.0's own STT checksum check (`-o stt.check_checksum:TRUE`) is broken: it reports every value as
  bad (a correct checksum is "Bad checksum [should be 0x0000]", a zero one "should be" the byte-swapped
  correct value). So the STT checksum is verified by tshark's TCP dissector instead, which checks the
  same 16 bits over the same pseudo-header.
"""

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest

from netweave.packet import (
    LACP_DST_MAC,
    Arp,
    Dot1Q,
    Ethernet,
    Geneve,
    GeneveOption,
    Gre,
    Icmp,
    IcmpDestUnreach,
    IcmpEcho,
    IcmpTimeExceeded,
    Icmpv6,
    Icmpv6Echo,
    Icmpv6PacketTooBig,
    IPv4,
    IPv6,
    IPv6DestOpts,
    IPv6Fragment,
    IPv6HopByHop,
    Lacpdu,
    NdOption,
    NeighborAdvert,
    NeighborSolicit,
    Tcp,
    Udp,
    build_stack,
    encapsulate,
    entropy_port,
    flow_hash,
    write_pcap,
)

pytestmark = pytest.mark.interop

TSHARK = shutil.which("tshark")
if TSHARK is None:
    pytest.skip("tshark is not installed (apt-get install tshark)", allow_module_level=True)

# proto_checksum_enum_e (epan/proto.h)
BAD, GOOD, UNVERIFIED, NOT_PRESENT = "0", "1", "2", "3"
PI_WARN = 0x00600000  # expert severities: chat 0x200000, note 0x400000, warn 0x600000, error 0x800000

CHECKSUM_PREFS = ("ip.check_checksum:TRUE", "udp.check_checksum:TRUE", "tcp.check_checksum:TRUE")
NO_TCP_ANALYSIS = ("tcp.analyze_sequence_numbers:FALSE", "tcp.relative_sequence_numbers:FALSE")
STT_PREFS = ("ip.try_heuristic_first:TRUE", "ipv6.try_heuristic_first:TRUE")

UNDERLAYS = {
    4: ("192.0.2.1", "192.0.2.2"),
    6: ("2001:db8::1", "2001:db8:ffff::2"),
}
OUTER_SRC_MAC, OUTER_DST_MAC = "02:aa:00:00:00:01", "02:aa:00:00:00:02"

Flat = dict[str, list[str]]


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty personal configuration directory, so the user's Wireshark preferences cannot interfere."""
    return tmp_path_factory.mktemp("wireshark-config")


@pytest.fixture
def run_tshark(tmp_path: Path, config_dir: Path) -> Any:
    """`run_tshark(frames, *prefs)`: write `frames` to a pcap in tmp_path; tshark's layers for each frame."""
    counter = iter(range(1000))

    def run(frames: Sequence[bytes], *prefs: str) -> list[dict[str, Any]]:
        path = tmp_path / f"frames{next(counter)}.pcap"
        write_pcap(path, list(frames))
        cmd = [str(TSHARK), "-n", "-r", str(path), "-T", "json", "--no-duplicate-keys"]
        for pref in prefs:
            cmd += ["-o", pref]
        env = {**os.environ, "WIRESHARK_CONFIG_DIR": str(config_dir)}
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False, env=env)
        assert res.returncode == 0, f"tshark failed: {res.stderr}"
        packets = json.loads(res.stdout)
        assert len(packets) == len(frames), "tshark did not read every frame"
        return [p["_source"]["layers"] for p in packets]

    return run


def flat(tree: Any) -> Flat:
    """Every field tshark reported, wherever it sits in the tree, as name -> values in wire order
    (so an outer header's field comes before the tunnelled header's field of the same name)."""
    out: Flat = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                items = value if isinstance(value, list) else [value]
                for item in items:
                    if isinstance(item, str):
                        out.setdefault(key, []).append(item)
                    else:
                        walk(item)

    walk(tree)
    return out


def get(f: Flat, field: str, index: int = 0) -> str:
    values = f.get(field)
    assert values, f"tshark reported no {field}"
    assert len(values) > index, f"tshark reported only {len(values)} x {field}: {values}"
    return values[index]


def num(text: str) -> int:
    """A tshark number: decimal, or hex with 0x."""
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def getn(f: Flat, field: str, index: int = 0) -> int:
    return num(get(f, field, index))


def flag(f: Flat, field: str, index: int = 0) -> bool:
    value = get(f, field, index)
    assert value in ("0", "1", "False", "True"), f"{field}={value!r} is not a boolean"
    return value in ("1", "True")


def mac_text(data: bytes) -> str:
    return data.hex(":")


def assert_checksums(f: Flat, expected: dict[str, Iterable[str]]) -> None:
    """The checksum status fields tshark reported, exactly: e.g. {"ip.checksum.status": [GOOD, GOOD]}."""
    got = {k: v for k, v in f.items() if k.endswith("checksum.status")}
    assert got == {k: list(v) for k, v in expected.items()}


def assert_no_warnings(f: Flat) -> None:
    """No expert info of severity warning or error (malformed fields, bad checksums, wrong lengths)."""
    severities = [num(s) for s in f.get("_ws.expert.severity", [])]
    messages = f.get("_ws.expert.message", [])
    assert all(s < PI_WARN for s in severities), f"tshark expert warnings: {messages}"
    assert "_ws.malformed" not in f, "tshark: malformed packet"


def icmp_inner(n: int) -> tuple[bytes, dict[str, Any]]:
    """Tenant frame n: Ethernet / IPv4 / ICMP echo request; and what tshark should decode from it."""
    want = {
        "src_mac": f"02:00:00:00:{n:02x}:01",
        "dst_mac": f"02:00:00:00:{n:02x}:02",
        "src": f"10.{n}.0.1",
        "dst": f"10.{n}.0.2",
        "ident": 0x1000 + n,
        "seq": n,
        "payload": bytes(range(n, n + 21 + n % 2)),  # odd and even lengths
    }
    frame = build_stack(
        [
            Ethernet(src=want["src_mac"], dst=want["dst_mac"]),
            IPv4(src=want["src"], dst=want["dst"], proto=1, ident=n),
            IcmpEcho(ident=want["ident"], seq=want["seq"]),
        ],
        want["payload"],
    )
    return frame, want


def assert_inner_icmp(f: Flat, want: dict[str, Any], *, v4_underlay: bool) -> None:
    """The tenant frame decoded after the tunnel header: second eth, last ip, the icmp."""
    assert get(f, "eth.src", 1) == want["src_mac"]
    assert get(f, "eth.dst", 1) == want["dst_mac"]
    assert get(f, "eth.type", 1) == "0x0800"
    inner_ip = 1 if v4_underlay else 0
    assert get(f, "ip.src", inner_ip) == want["src"]
    assert get(f, "ip.dst", inner_ip) == want["dst"]
    assert getn(f, "ip.proto", inner_ip) == 1
    assert getn(f, "icmp.type") == 8
    assert getn(f, "icmp.code") == 0
    assert getn(f, "icmp.ident") == want["ident"]
    assert getn(f, "icmp.seq") == want["seq"]
    assert get(f, "data.data") == mac_text(want["payload"])


def assert_outer(f: Flat, version: int, src: str, dst: str, proto: int) -> None:
    assert get(f, "eth.src") == OUTER_SRC_MAC
    assert get(f, "eth.dst") == OUTER_DST_MAC
    if version == 4:
        assert get(f, "eth.type") == "0x0800"
        assert get(f, "ip.src") == src
        assert get(f, "ip.dst") == dst
        assert getn(f, "ip.proto") == proto
    else:
        assert get(f, "eth.type") == "0x86dd"
        assert get(f, "ipv6.src") == src
        assert get(f, "ipv6.dst") == dst
        assert getn(f, "ipv6.nxt") == proto


# ------------------------------------------------------------------------------------------------- VXLAN


def test_vxlan_ipv4_and_ipv6_underlays(run_tshark: Any) -> None:
    cases = []
    frames = []
    for n, (version, vni) in enumerate((v, vni) for v in (4, 6) for vni in (0, 1, 5000, 0xFFFFFF)):
        inner, want = icmp_inner(n)
        src, dst = UNDERLAYS[version]
        ttl, df = 64 - n, n % 2 == 0
        frames.append(encapsulate(inner, encap="vxlan", vni=vni, src_ip=src, dst_ip=dst, ttl=ttl, df=df,
                                  src_mac=OUTER_SRC_MAC, dst_mac=OUTER_DST_MAC))
        cases.append((version, vni, inner, want, ttl, df))
    layers = run_tshark(frames, *CHECKSUM_PREFS)
    sports = set()
    for (version, vni, inner, want, ttl, df), tree in zip(cases, layers, strict=True):
        f = flat(tree)
        ipv = "ip" if version == 4 else "ipv6"
        assert get(f, "frame.protocols") == f"eth:ethertype:{ipv}:udp:vxlan:eth:ethertype:ip:icmp:data"
        assert_outer(f, version, *UNDERLAYS[version], proto=17)
        # VXLAN header: I flag only, 24-bit VNI, reserved bits zero
        assert getn(f, "vxlan.vni") == vni
        assert get(f, "vxlan.flags") == "0x0800"
        assert flag(f, "vxlan.flag_i")
        assert not flag(f, "vxlan.flag_g") and not flag(f, "vxlan.flag_d") and not flag(f, "vxlan.flag_a")
        assert getn(f, "vxlan.flags_reserved") == 0
        assert getn(f, "vxlan.reserved8") == 0
        # outer UDP: IANA port, source port from the inner flow's hash in the dynamic range
        assert getn(f, "udp.dstport") == 4789
        sport = getn(f, "udp.srcport")
        assert 49152 <= sport <= 65535
        assert sport == entropy_port(flow_hash(inner))
        sports.add(sport)
        assert getn(f, "udp.length") == 8 + 8 + len(inner)
        if version == 4:
            assert getn(f, "ip.ttl") == ttl
            assert flag(f, "ip.flags.df") == df
            assert not flag(f, "ip.flags.mf")
            assert getn(f, "ip.frag_offset") == 0
            assert getn(f, "ip.len") == 20 + 8 + 8 + len(inner)
            # zero UDP checksum over IPv4 (RFC 7348), computed over IPv6
            assert getn(f, "udp.checksum") == 0
            assert_checksums(f, {"ip.checksum.status": [GOOD, GOOD], "udp.checksum.status": [NOT_PRESENT],
                                 "icmp.checksum.status": [GOOD]})
        else:
            assert getn(f, "ipv6.hlim") == ttl
            assert getn(f, "ipv6.flow") == flow_hash(inner) & 0xFFFFF
            assert getn(f, "ipv6.plen") == 8 + 8 + len(inner)
            assert_checksums(f, {"udp.checksum.status": [GOOD], "ip.checksum.status": [GOOD],
                                 "icmp.checksum.status": [GOOD]})
        assert_inner_icmp(f, want, v4_underlay=version == 4)
        assert_no_warnings(f)
    assert len(sports) > 1, "different inner flows should get different outer source ports"


# ------------------------------------------------------------------------------------------------ Geneve

GENEVE_OPTION_SETS: list[list[GeneveOption]] = [
    [],
    [GeneveOption(option_class=0x0102, type=0x80 | 3, data=b"\x01\x02\x03\x04")],
    [
        GeneveOption(option_class=0x0000, type=0x01, data=b""),
        GeneveOption(option_class=0x0101, type=0x80, data=b"abcd"),
        GeneveOption(option_class=0x0102, type=0x7F, data=bytes(range(8))),
        GeneveOption(option_class=0xFFFF, type=0xFF, data=bytes(range(124))),
    ],
    [GeneveOption(option_class=0xABCD, type=0x05, data=b"\xde\xad\xbe\xef" * 3)],
]


def geneve_options_of(f: Flat) -> list[dict[str, Any]]:
    """Geneve options as tshark decoded them; a zero-length option's data is reported as ""."""
    classes = f.get("geneve.option.class", [])
    types = f.get("geneve.option.type", [])
    crit = f.get("geneve.option.type.critical", [])
    datas = f.get("geneve.option.unknown.data", [])
    # geneve.option.length: first the whole options area, then each option's length (4 + data), in bytes
    lengths = f.get("geneve.option.length", [])[1:]
    assert len(classes) == len(types) == len(crit) == len(datas) == len(lengths)
    return [
        {"class": num(c), "type": num(t), "critical": v in ("1", "True"),
         "data": bytes.fromhex(d.replace(":", "")), "length": num(n)}
        for c, t, v, d, n in zip(classes, types, crit, datas, lengths, strict=True)
    ]


def test_geneve_vni_options_and_flags(run_tshark: Any) -> None:
    cases = []
    frames = []
    n = 0
    for version in (4, 6):
        for vni in (0, 0x10, 0xABCDEF, 0xFFFFFF):
            for options in GENEVE_OPTION_SETS:
                inner, want = icmp_inner(n)
                frames.append(encapsulate(inner, encap="geneve", vni=vni, options=options,
                                          src_ip=UNDERLAYS[version][0], dst_ip=UNDERLAYS[version][1],
                                          src_mac=OUTER_SRC_MAC, dst_mac=OUTER_DST_MAC))
                cases.append((version, vni, options, inner, want))
                n += 1
    layers = run_tshark(frames, *CHECKSUM_PREFS)
    for (version, vni, options, inner, want), tree in zip(cases, layers, strict=True):
        f = flat(tree)
        assert_outer(f, version, *UNDERLAYS[version], proto=17)
        assert getn(f, "udp.dstport") == 6081
        assert getn(f, "udp.srcport") == entropy_port(flow_hash(inner))
        assert 49152 <= getn(f, "udp.srcport") <= 65535
        assert int(get(f, "geneve.vni"), 16) == vni  # tshark prints the VNI in hex
        assert getn(f, "geneve.version") == 0
        assert get(f, "geneve.proto_type") == "0x6558"
        assert not flag(f, "geneve.flags.oam")
        assert flag(f, "geneve.flags.critical") == any(o.type & 0x80 for o in options)
        assert not flag(f, "geneve.flags.reserved")
        assert getn(f, "geneve.reserved") == 0
        opts_len = sum(4 + len(o.data) for o in options)
        assert getn(f, "geneve.option.length") == opts_len  # the whole options area, in bytes
        got = geneve_options_of(f)
        assert got == [
            {"class": o.option_class, "type": o.type, "critical": bool(o.type & 0x80), "data": o.data,
             "length": 4 + len(o.data)}
            for o in options
        ]
        assert getn(f, "udp.length") == 8 + 8 + opts_len + len(inner)
        udp_status = NOT_PRESENT if version == 4 else GOOD
        ip_status = [GOOD, GOOD] if version == 4 else [GOOD]
        assert_checksums(f, {"ip.checksum.status": ip_status, "udp.checksum.status": [udp_status],
                             "icmp.checksum.status": [GOOD]})
        assert_inner_icmp(f, want, v4_underlay=version == 4)
        assert_no_warnings(f)


def test_geneve_oam_bit_and_non_ethernet_protocol(run_tshark: Any) -> None:
    """A Geneve header built directly: O bit set, protocol type IPv4 (no inner Ethernet), UDP checksum."""
    inner, want = icmp_inner(3)
    inner_ip = inner[14:]
    opts = [GeneveOption(option_class=0x0123, type=0x42, data=b"\x00\x00\x00\x07")]
    frames = [
        build_stack([
            Ethernet(src=OUTER_SRC_MAC, dst=OUTER_DST_MAC),
            IPv4(src="192.0.2.1", dst="192.0.2.2", proto=17),
            Udp(sport=50000, dport=6081),
            Geneve(o=o, c=c, vni=7, protocol=0x0800, options=opts if c else []),
        ], inner_ip)
        for o, c in ((1, 0), (1, 1), (0, 1))
    ]
    layers = run_tshark(frames, *CHECKSUM_PREFS)
    for (o, c), tree in zip(((1, 0), (1, 1), (0, 1)), layers, strict=True):
        f = flat(tree)
        assert get(f, "frame.protocols") == "eth:ethertype:ip:udp:geneve:ip:icmp:data"
        assert flag(f, "geneve.flags.oam") == bool(o)
        assert flag(f, "geneve.flags.critical") == bool(c)
        assert get(f, "geneve.proto_type") == "0x0800"
        assert int(get(f, "geneve.vni"), 16) == 7
        assert getn(f, "geneve.option.length") == (8 if c else 0)
        assert get(f, "ip.src", 1) == want["src"]
        assert getn(f, "icmp.ident") == want["ident"]
        assert_checksums(f, {"ip.checksum.status": [GOOD, GOOD], "udp.checksum.status": [GOOD],
                             "icmp.checksum.status": [GOOD]})
        assert_no_warnings(f)


# ------------------------------------------------------------------------------------------ NVGRE / GRE


def test_nvgre_key_is_vsid_and_flow_id(run_tshark: Any) -> None:
    cases = []
    frames = []
    n = 0
    for version in (4, 6):
        for vsid in (1, 0x123456, 0xFFFFFF):
            for _ in range(3):
                inner, want = icmp_inner(n)
                frames.append(encapsulate(inner, encap="nvgre", vni=vsid, src_ip=UNDERLAYS[version][0],
                                          dst_ip=UNDERLAYS[version][1], src_mac=OUTER_SRC_MAC,
                                          dst_mac=OUTER_DST_MAC))
                cases.append((version, vsid, inner, want))
                n += 1
    layers = run_tshark(frames, *CHECKSUM_PREFS)
    flow_ids = set()
    for (version, vsid, inner, want), tree in zip(cases, layers, strict=True):
        f = flat(tree)
        ipv = "ip" if version == 4 else "ipv6"
        assert get(f, "frame.protocols") == f"eth:ethertype:{ipv}:gre:eth:ethertype:ip:icmp:data"
        assert_outer(f, version, *UNDERLAYS[version], proto=47)
        key = getn(f, "gre.key")
        assert key >> 8 == vsid  # VSID: upper 24 bits
        assert key & 0xFF == flow_hash(inner) & 0xFF  # FlowID: low 8 bits, per inner flow
        flow_ids.add(key & 0xFF)
        assert get(f, "gre.proto") == "0x6558"
        assert flag(f, "gre.flags.key")
        assert not flag(f, "gre.flags.checksum")
        assert not flag(f, "gre.flags.sequence_number")
        assert not flag(f, "gre.flags.routing")
        assert getn(f, "gre.flags.version") == 0
        assert get(f, "gre.flags_and_version") == "0x2000"
        assert_inner_icmp(f, want, v4_underlay=version == 4)
        assert_no_warnings(f)
    assert len(flow_ids) > 1


def test_gre_key_sequence_and_checksum(run_tshark: Any) -> None:
    inner, want = icmp_inner(5)  # 21-byte ICMP payload: odd GRE payload length for the checksum
    cases: list[tuple[int, dict[str, Any]]] = []
    frames = []
    # encap="gre": the whole 32-bit key is the VNI
    for version in (4, 6):
        for vni in (0, 7, 0xDEADBEEF, 0xFFFFFFFF):
            frames.append(encapsulate(inner, encap="gre", vni=vni, src_ip=UNDERLAYS[version][0],
                                      dst_ip=UNDERLAYS[version][1], src_mac=OUTER_SRC_MAC,
                                      dst_mac=OUTER_DST_MAC))
            cases.append((version, {"c": False, "key": vni, "seq": None}))
    # hand-built GRE headers with the optional checksum and sequence number
    for version in (4, 6):
        for c, key, seq in ((1, 77, 1234), (1, None, None), (0, None, 0xFFFFFFFF), (1, 0xFFFFFFFF, 0)):
            ip: IPv4 | IPv6 = (
                IPv4(src=UNDERLAYS[4][0], dst=UNDERLAYS[4][1], proto=47) if version == 4
                else IPv6(src=UNDERLAYS[6][0], dst=UNDERLAYS[6][1], next_header=47)
            )
            gre = Gre(c=c, key=key, sequence=seq)
            frames.append(build_stack([Ethernet(src=OUTER_SRC_MAC, dst=OUTER_DST_MAC,
                                                type=0x0800 if version == 4 else 0x86DD), ip, gre], inner))
            cases.append((version, {"c": bool(c), "key": key, "seq": seq}))
    layers = run_tshark(frames, *CHECKSUM_PREFS)
    for (version, exp), tree in zip(cases, layers, strict=True):
        f = flat(tree)
        assert_outer(f, version, *UNDERLAYS[version], proto=47)
        assert get(f, "gre.proto") == "0x6558"
        assert getn(f, "gre.flags.version") == 0
        assert flag(f, "gre.flags.checksum") == exp["c"]
        assert flag(f, "gre.flags.key") == (exp["key"] is not None)
        assert flag(f, "gre.flags.sequence_number") == (exp["seq"] is not None)
        if exp["key"] is None:
            assert "gre.key" not in f
        else:
            assert getn(f, "gre.key") == exp["key"]
        if exp["seq"] is None:
            assert "gre.sequence_number" not in f
        else:
            assert getn(f, "gre.sequence_number") == exp["seq"]
        if exp["c"]:
            assert getn(f, "gre.offset") == 0  # the reserved1 half-word after the checksum
            assert get(f, "gre.checksum.status") == GOOD
        else:
            assert "gre.checksum" not in f
        assert_inner_icmp(f, want, v4_underlay=version == 4)
        assert_no_warnings(f)


# --------------------------------------------------------------------------------------------------- STT


def test_stt_context_id_length_and_inner_frame(run_tshark: Any) -> None:
    cases = []
    frames = []
    n = 0
    for version in (4, 6):
        for vni in (0, 42, 0x1122334455667788, 2**64 - 1):
            inner, want = icmp_inner(n)
            frames.append(encapsulate(inner, encap="stt", vni=vni, src_ip=UNDERLAYS[version][0],
                                      dst_ip=UNDERLAYS[version][1], src_mac=OUTER_SRC_MAC,
                                      dst_mac=OUTER_DST_MAC))
            cases.append((version, vni, inner, want))
            n += 1
    as_stt = run_tshark(frames, *CHECKSUM_PREFS, *NO_TCP_ANALYSIS, *STT_PREFS)
    as_tcp = run_tshark(frames, *CHECKSUM_PREFS, *NO_TCP_ANALYSIS)
    for (version, vni, inner, want), stt_tree, tcp_tree in zip(cases, as_stt, as_tcp, strict=True):
        f = flat(stt_tree)
        ipv = "ip" if version == 4 else "ipv6"
        assert get(f, "frame.protocols") == f"eth:ethertype:{ipv}:stt:eth:ethertype:ip:icmp:data"
        assert_outer(f, version, *UNDERLAYS[version], proto=6)
        h = flow_hash(inner)
        # the TCP-like header as STT reads it
        assert getn(f, "stt.dport") == 7471
        assert getn(f, "stt.stream_id") == entropy_port(h)  # the TCP source port
        assert getn(f, "stt.pkt_len") == 18 + len(inner)
        assert getn(f, "stt.seg_off") == 0
        assert getn(f, "stt.pkt_id") == h
        assert getn(f, "stt.tcp.data_offset") == 20
        assert getn(f, "stt.tcp.flags") == 0x018  # ACK | PSH
        assert getn(f, "stt.tcp.window") == 0xFFFF
        # the STT frame header
        assert getn(f, "stt.context_id") == vni
        assert getn(f, "stt.version") == 0
        assert getn(f, "stt.flags") == 0
        assert getn(f, "stt.l4offset") == 0
        assert getn(f, "stt.mss") == 0
        assert not flag(f, "stt.vlan.v")
        assert getn(f, "stt.padding") == 0
        assert_inner_icmp(f, want, v4_underlay=version == 4)
        # the checksum, as tshark's TCP dissector verifies it (see the module docstring)
        t = flat(tcp_tree)
        assert getn(t, "tcp.dstport") == 7471
        assert getn(t, "tcp.srcport") == entropy_port(h)
        assert getn(t, "tcp.seq_raw") == (18 + len(inner)) << 16  # length << 16 | fragment offset 0
        assert getn(t, "tcp.ack_raw") == h
        assert getn(t, "tcp.hdr_len") == 20
        assert getn(t, "tcp.len") == 18 + len(inner)
        assert get(t, "tcp.checksum") == get(f, "stt.checksum")
        assert get(t, "tcp.checksum.status") == GOOD
        if version == 4:
            assert get(t, "ip.checksum.status") == GOOD


# -------------------------------------------------------------------------------------------------- LACP

LACP_STATE_BITS = ("activity", "timeout", "aggregation", "synchronization", "collecting", "distributing",
                   "defaulted", "expired")


def test_lacp_pdu_fields_and_every_state_bit(run_tshark: Any) -> None:
    states = [(0x3D, 0x3D), (0x00, 0xFF), (0xFF, 0x00), (0x45, 0xBA), (0x07, 0x80), (0xAA, 0x55)]
    pdus = [
        Lacpdu(
            actor_system_priority=100 + i, actor_system=f"02:00:00:00:01:{i:02x}", actor_key=13 + i,
            actor_port_priority=200 + i, actor_port=3 + i, actor_state=actor,
            partner_system_priority=65535 - i, partner_system=f"02:00:00:00:02:{i:02x}",
            partner_key=1000 + i, partner_port_priority=i, partner_port=0xFFFF - i, partner_state=partner,
            collector_max_delay=50 * i,
        )
        for i, (actor, partner) in enumerate(states)
    ]
    frames = [
        build_stack([Ethernet(dst=LACP_DST_MAC, src=pdu.actor_system, type=0x8809), pdu]) for pdu in pdus
    ]
    layers = run_tshark(frames)
    for pdu, tree in zip(pdus, layers, strict=True):
        f = flat(tree)
        assert get(f, "frame.protocols") == "eth:ethertype:slow:lacp"
        assert get(f, "eth.dst") == "01:80:c2:00:00:02"
        assert get(f, "eth.type") == "0x8809"
        assert getn(f, "slow.subtype") == 1
        assert getn(f, "lacp.version") == 1
        assert [num(t) for t in f["lacp.tlv_type"]] == [1, 2, 3, 0]
        assert [num(t) for t in f["lacp.tlv_length"]] == [20, 20, 16, 0]
        for role in ("actor", "partner"):
            assert getn(f, f"lacp.{role}.sys_priority") == getattr(pdu, f"{role}_system_priority")
            assert get(f, f"lacp.{role}.sysid") == getattr(pdu, f"{role}_system")
            assert getn(f, f"lacp.{role}.key") == getattr(pdu, f"{role}_key")
            assert getn(f, f"lacp.{role}.port_priority") == getattr(pdu, f"{role}_port_priority")
            assert getn(f, f"lacp.{role}.port") == getattr(pdu, f"{role}_port")
            state = getattr(pdu, f"{role}_state")
            assert getn(f, f"lacp.{role}.state") == state
            for bit, name in enumerate(LACP_STATE_BITS):
                assert flag(f, f"lacp.{role}.state.{name}") == bool(state >> bit & 1), (role, name, state)
        assert getn(f, "lacp.collector.max_delay") == pdu.collector_max_delay
        assert "lacp.wrong_tlv_type" not in f and "lacp.wrong_tlv_length" not in f
        assert_no_warnings(f)


# --------------------------------------------------------------------------------------------------- ARP


def test_arp_request_and_reply(run_tshark: Any) -> None:
    mac_a, mac_b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    arps = [
        Arp(op=Arp.REQUEST, sha=mac_a, spa="10.0.0.1", tha="00:00:00:00:00:00", tpa="10.0.0.2"),
        Arp(op=Arp.REPLY, sha=mac_b, spa="10.0.0.2", tha=mac_a, tpa="10.0.0.1"),
        Arp(op=Arp.REQUEST, sha=mac_b, spa="10.0.0.2", tha="00:00:00:00:00:00", tpa="10.0.0.2"),  # gratuitous
    ]
    frames = [
        build_stack([Ethernet(dst="ff:ff:ff:ff:ff:ff" if a.op == 1 else a.tha, src=a.sha, type=0x0806), a])
        for a in arps
    ]
    layers = run_tshark(frames)
    for a, tree in zip(arps, layers, strict=True):
        f = flat(tree)
        assert get(f, "frame.protocols") == "eth:ethertype:arp"
        assert get(f, "eth.type") == "0x0806"
        assert getn(f, "arp.hw.type") == 1
        assert get(f, "arp.proto.type") == "0x0800"
        assert getn(f, "arp.hw.size") == 6
        assert getn(f, "arp.proto.size") == 4
        assert getn(f, "arp.opcode") == a.op
        assert get(f, "arp.src.hw_mac") == a.sha
        assert get(f, "arp.src.proto_ipv4") == a.spa
        assert get(f, "arp.dst.hw_mac") == a.tha
        assert get(f, "arp.dst.proto_ipv4") == a.tpa
    assert flag(flat(layers[2]), "arp.isgratuitous")


# ------------------------------------------------------------------------------------------ IPv4 / ICMP


def test_ipv4_options_df_and_fragment_offset(run_tshark: Any) -> None:
    router_alert = b"\x94\x04\x00\x00"
    record_route = b"\x01\x07\x07\x04\x00\x00\x00\x00"  # NOP, RR with one empty slot
    packets = [
        # (IPv4 header, payload headers, payload)
        (IPv4(src="10.0.0.1", dst="10.0.0.2", proto=17, df=1, dscp=46, ecn=1, ttl=3, ident=0x1234,
              options=router_alert + record_route), [Udp(sport=5000, dport=9)], b"discard"),
        (IPv4(src="10.0.0.1", dst="10.0.0.2", proto=17, mf=1, frag_offset=0, ident=0x4242),
         [Udp(sport=1, dport=2, length=8 + 40, checksum=0)], bytes(16)),
        (IPv4(src="10.0.0.1", dst="10.0.0.2", proto=17, mf=1, frag_offset=3, ident=0x4242), [], bytes(16)),
        (IPv4(src="10.0.0.1", dst="10.0.0.2", proto=17, frag_offset=185, ident=0x4242), [], bytes(8)),
        (IPv4(src="10.0.0.1", dst="10.0.0.2", proto=17, frag_offset=0x1FFF, ident=1, reserved=0), [], b""),
    ]
    frames = [build_stack([Ethernet(), ip, *rest], payload) for ip, rest, payload in packets]
    layers = run_tshark(frames, *CHECKSUM_PREFS, "ip.defragment:FALSE")
    for (ip, _rest, _payload), tree, frame in zip(packets, layers, frames, strict=True):
        f = flat(tree)
        assert getn(f, "ip.version") == 4
        assert getn(f, "ip.hdr_len") == 20 + len(ip.options)
        assert getn(f, "ip.len") == len(frame) - 14
        assert getn(f, "ip.id") == ip.ident
        assert getn(f, "ip.ttl") == ip.ttl
        assert getn(f, "ip.dsfield.dscp") == ip.dscp
        assert getn(f, "ip.dsfield.ecn") == ip.ecn
        assert flag(f, "ip.flags.rb") == bool(ip.reserved)
        assert flag(f, "ip.flags.df") == bool(ip.df)
        assert flag(f, "ip.flags.mf") == bool(ip.mf)
        assert getn(f, "ip.frag_offset") == ip.frag_offset  # 8-octet units
        assert get(f, "ip.checksum.status") == GOOD
    f = flat(layers[0])
    assert [num(t) for t in f["ip.opt.type"]] == [148, 1, 7]
    assert [num(t) for t in f["ip.opt.len"]] == [4, 7]
    assert getn(f, "ip.opt.ra") == 0
    assert getn(f, "ip.opt.ptr") == 4
    assert flag(f, "ip.opt.type.copy")  # Router Alert is copied on fragmentation
    assert getn(f, "udp.srcport") == 5000 and getn(f, "udp.dstport") == 9
    assert get(f, "udp.checksum.status") == GOOD
    assert_no_warnings(f)
    # the first fragment still shows its UDP header; later ones are data
    assert getn(flat(layers[1]), "udp.srcport") == 1
    assert "udp" not in layers[2]


def test_icmp_frag_needed_time_exceeded_and_echo(run_tshark: Any) -> None:
    offending = build_stack([IPv4(src="10.0.0.2", dst="10.9.0.9", proto=17, df=1, ident=77),
                             Udp(sport=33434, dport=4789)], bytes(1400))
    quote = offending[: 20 + 8]  # the IP header plus 8 bytes of its data (RFC 792)
    messages = [
        (IcmpDestUnreach(code=4, next_hop_mtu=1450), quote),
        (IcmpDestUnreach(code=4, next_hop_mtu=576), offending[:60]),
        (IcmpDestUnreach(code=3), quote),
        (IcmpTimeExceeded(code=0), quote),
        (IcmpEcho(type=0, ident=0xBEEF, seq=0xFFFF), b"pong!"),
        (Icmp(type=13, rest=0x00010002), bytes(12)),  # timestamp request, generic class
    ]
    frames = [
        build_stack([Ethernet(), IPv4(src="10.0.0.1", dst="10.0.0.2", proto=1)], msg.build(payload))
        for msg, payload in messages
    ]
    layers = run_tshark(frames, *CHECKSUM_PREFS)
    for (msg, _payload), tree in zip(messages, layers, strict=True):
        f = flat(tree)
        assert getn(f, "icmp.type") == msg.type
        assert getn(f, "icmp.code") == msg.code
        assert get(f, "icmp.checksum.status") == GOOD
        assert get(f, "ip.checksum.status", 0) == GOOD
    for i in (0, 1):
        f = flat(layers[i])
        assert getn(f, "icmp.mtu") == messages[i][0].next_hop_mtu  # type: ignore[attr-defined]
        # the quoted packet is decoded too: its addresses, DF and UDP ports
        assert get(f, "ip.src", 1) == "10.0.0.2"
        assert get(f, "ip.dst", 1) == "10.9.0.9"
        assert flag(f, "ip.flags.df", 1)
        assert getn(f, "ip.id", 1) == 77
        assert get(f, "ip.checksum.status", 1) == GOOD
        assert getn(f, "udp.srcport") == 33434 and getn(f, "udp.dstport") == 4789
    echo = flat(layers[4])
    assert getn(echo, "icmp.ident") == 0xBEEF and getn(echo, "icmp.seq") == 0xFFFF


# ------------------------------------------------------------------------------------------------ ICMPv6


def test_icmpv6_neighbour_discovery_and_packet_too_big(run_tshark: Any) -> None:
    mac_a, mac_b = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
    target = "2001:db8::b"
    tlla = NdOption.lladdr(mac_b, target=True)
    offending = build_stack([IPv6(src="2001:db8::a", dst="2001:db8:9::9", next_header=17),
                             Udp(sport=40000, dport=6081)], bytes(1400))
    messages = [
        # (IPv6 src, dst, ICMPv6 message, payload)
        ("fe80::a", "ff02::1:ff00:b", NeighborSolicit(target=target, options=[NdOption.lladdr(mac_a)]), b""),
        ("::", "ff02::1:ff00:b", NeighborSolicit(target=target), b""),  # DAD: no source address option
        ("2001:db8::b", "fe80::a", NeighborAdvert(solicited=1, override=1, target=target, options=[tlla]),
         b""),
        ("fe80::b", "ff02::1", NeighborAdvert(router=1, override=1, target=target, options=[tlla]), b""),
        ("fe80::b", "fe80::a", NeighborAdvert(router=1, solicited=1, target=target), b""),
        ("2001:db8::1", "2001:db8::a", Icmpv6PacketTooBig(mtu=1280), offending[:1232]),
        ("2001:db8::1", "2001:db8::a", Icmpv6PacketTooBig(mtu=9000), offending[:48]),
        ("2001:db8::a", "2001:db8::b", Icmpv6Echo(ident=7, seq=9), b"ping"),
    ]
    frames = [
        build_stack([Ethernet(type=0x86DD), IPv6(src=src, dst=dst, next_header=58, hop_limit=255), msg], pl)
        for src, dst, msg, pl in messages
    ]
    layers = run_tshark(frames, *CHECKSUM_PREFS)
    for (src, dst, msg, _pl), tree in zip(messages, layers, strict=True):
        f = flat(tree)
        assert get(f, "ipv6.src") == src and get(f, "ipv6.dst") == dst
        assert getn(f, "icmpv6.type") == msg.type
        assert getn(f, "icmpv6.code") == 0
        assert get(f, "icmpv6.checksum.status", 0) == GOOD
        if isinstance(msg, NeighborSolicit | NeighborAdvert):
            kind = "ns" if isinstance(msg, NeighborSolicit) else "na"
            assert get(f, f"icmpv6.nd.{kind}.target_address") == target
            assert f.get("icmpv6.opt.linkaddr", []) == [o.mac for o in msg.options]
            assert [num(t) for t in f.get("icmpv6.opt.type", [])] == [o.type for o in msg.options]
            assert [num(n) for n in f.get("icmpv6.opt.length", [])] == [1] * len(msg.options)
            if kind == "ns":
                assert f.get("icmpv6.opt.src_linkaddr", []) == [o.mac for o in msg.options]
            else:
                assert f.get("icmpv6.opt.target_linkaddr", []) == [o.mac for o in msg.options]
                assert flag(f, "icmpv6.nd.na.flag.r") == bool(msg.router)
                assert flag(f, "icmpv6.nd.na.flag.s") == bool(msg.solicited)
                assert flag(f, "icmpv6.nd.na.flag.o") == bool(msg.override)
                assert getn(f, "icmpv6.nd.na.flag.rsv") == 0
            assert_no_warnings(f)
        elif isinstance(msg, Icmpv6PacketTooBig):
            assert getn(f, "icmpv6.mtu") == msg.mtu
            assert get(f, "ipv6.src", 1) == "2001:db8::a"  # the quoted packet
            assert get(f, "ipv6.dst", 1) == "2001:db8:9::9"
            assert getn(f, "udp.srcport") == 40000 and getn(f, "udp.dstport") == 6081
        else:
            assert getn(f, "icmpv6.echo.identifier") == 7 and getn(f, "icmpv6.echo.sequence_number") == 9
            assert_no_warnings(f)


EXT_PROTOCOL_NAMES = {
    IPv6HopByHop: "ipv6.hopopts", IPv6DestOpts: "ipv6.dstopts", IPv6Fragment: "ipv6.fraghdr",
}


def test_ipv6_extension_headers_walked_to_udp(run_tshark: Any) -> None:
    ra_and_pad = b"\x05\x02\x00\x00\x01\x00"  # Router Alert (MLD), PadN of 0 bytes
    src, dst = "2001:db8::1", "2001:db8::2"
    stacks = [
        [IPv6HopByHop(next_header=44), IPv6Fragment(next_header=17, ident=0xABCDEF01)],
        [IPv6HopByHop(next_header=60, data=ra_and_pad), IPv6DestOpts(next_header=44),
         IPv6Fragment(next_header=17, ident=1)],
        [IPv6HopByHop(next_header=17, data=ra_and_pad + bytes((1, 6, 0, 0, 0, 0, 0, 0)))],
    ]
    frames = [
        build_stack([Ethernet(type=0x86DD), IPv6(src=src, dst=dst, next_header=0), *ext,
                     Udp(sport=1000 + i, dport=2000)], b"hello" * (i + 1))
        for i, ext in enumerate(stacks)
    ]
    # a non-first fragment: the walk stops at the fragment header
    frames.append(build_stack([Ethernet(type=0x86DD), IPv6(src=src, dst=dst, next_header=0),
                               IPv6HopByHop(next_header=44), IPv6Fragment(next_header=17, offset=10, m=1,
                                                                          ident=0x55)], bytes(16)))
    # an MLDv2 report behind hop-by-hop (Router Alert): the ICMPv6 pseudo-header length excludes the
    # extension header, and the upper-layer protocol in it is 58 though the IPv6 next header is 0
    record = bytes((4, 0, 0, 0)) + socket.inet_pton(socket.AF_INET6, "ff02::1:3")
    frames.append(build_stack([Ethernet(type=0x86DD), IPv6(src="fe80::1", dst="ff02::16", next_header=0,
                                                           hop_limit=1),
                               IPv6HopByHop(next_header=58, data=ra_and_pad), Icmpv6(type=143, rest=1)],
                              record))
    layers = run_tshark(frames, *CHECKSUM_PREFS, "ipv6.defragment:FALSE")
    mld = flat(layers.pop())
    assert getn(mld, "ipv6.hopopts.nxt") == 58
    assert getn(mld, "ipv6.opt.router_alert") == 0
    assert getn(mld, "icmpv6.type") == 143
    assert get(mld, "icmpv6.checksum.status") == GOOD
    assert getn(mld, "icmpv6.mldr.nb_mcast_records") == 1
    assert getn(mld, "icmpv6.mldr.mar.record_type") == 4
    assert get(mld, "icmpv6.mldr.mar.multicast_address") == "ff02::1:3"
    assert_no_warnings(mld)
    for i, ext in enumerate(stacks):
        f = flat(layers[i])
        names = ":".join(EXT_PROTOCOL_NAMES[type(h)] for h in ext)
        assert get(f, "frame.protocols").startswith(f"eth:ethertype:ipv6:{names}:udp")
        assert getn(f, "ipv6.nxt") == 0
        assert getn(f, "ipv6.hopopts.nxt") == ext[0].next_header
        assert getn(f, "ipv6.hopopts.len_oct") == 8 + len(ext[0].data) - 6
        if isinstance(ext[-1], IPv6Fragment):
            assert getn(f, "ipv6.fraghdr.nxt") == 17
            assert getn(f, "ipv6.fraghdr.offset") == 0
            assert not flag(f, "ipv6.fraghdr.more")
            assert getn(f, "ipv6.fraghdr.ident") == ext[-1].ident
        if len(ext) == 3:
            assert getn(f, "ipv6.dstopts.nxt") == 44
            assert getn(f, "ipv6.opt.router_alert") == 0
        assert getn(f, "ipv6.plen") == sum(len(h.build()) for h in ext) + 8 + 5 * (i + 1)
        assert getn(f, "udp.srcport") == 1000 + i and getn(f, "udp.dstport") == 2000
        assert getn(f, "udp.length") == 8 + 5 * (i + 1)
        assert get(f, "udp.checksum.status") == GOOD
        assert_no_warnings(f)
    f = flat(layers[-1])
    assert getn(f, "ipv6.fraghdr.offset") == 10  # 8-octet units
    assert flag(f, "ipv6.fraghdr.more")
    assert getn(f, "ipv6.fraghdr.ident") == 0x55
    assert "udp" not in layers[-1]


# -------------------------------------------------------------------------------------------- 802.1Q/ad


def test_dot1q_and_qinq_tags(run_tshark: Any) -> None:
    def tagged(tags: list[Dot1Q], outer_tpid: int) -> bytes:
        return build_stack([Ethernet(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=outer_tpid),
                            *tags, IPv4(src="10.0.0.1", dst="10.0.0.2", proto=17), Udp(sport=7, dport=9)],
                           b"tagged")

    singles = [Dot1Q(vid=vid, pcp=pcp, dei=dei) for vid, pcp, dei in ((1, 0, 0), (100, 5, 0), (4094, 7, 1))]
    qinq = [(Dot1Q(vid=s, pcp=sp, dei=sd, type=0x8100), Dot1Q(vid=c, pcp=cp))
            for s, sp, sd, c, cp in ((200, 3, 1, 300, 1), (4094, 7, 0, 1, 0), (1, 0, 0, 4094, 6))]
    frames = [tagged([t], 0x8100) for t in singles] + [tagged(list(pair), 0x88A8) for pair in qinq]
    # a QinQ tenant frame inside VXLAN: the tags survive the tunnel
    frames.append(encapsulate(tagged(list(qinq[0]), 0x88A8), encap="vxlan", vni=10, src_ip="192.0.2.1",
                              dst_ip="192.0.2.2"))
    layers = run_tshark(frames, *CHECKSUM_PREFS)
    for t, tree in zip(singles, layers[:3], strict=True):
        f = flat(tree)
        assert get(f, "eth.type") == "0x8100"
        assert getn(f, "vlan.id") == t.vid
        assert getn(f, "vlan.priority") == t.pcp
        assert getn(f, "vlan.dei") == t.dei
        assert get(f, "vlan.etype") == "0x0800"
        assert get(f, "udp.checksum.status") == GOOD
        assert_no_warnings(f)
    for (s_tag, c_tag), tree in zip(qinq, layers[3:6], strict=True):
        f = flat(tree)
        protocols = "eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ip:udp"
        assert get(f, "frame.protocols").startswith(protocols)
        assert get(f, "eth.type") == "0x88a8"
        assert getn(f, "ieee8021ad.id") == s_tag.vid
        assert getn(f, "ieee8021ad.priority") == s_tag.pcp
        assert getn(f, "ieee8021ad.dei") == s_tag.dei
        assert get(f, "ieee8021ah.etype") == "0x8100"  # tshark 4.0 names the S-tag's ethertype so
        assert getn(f, "vlan.id") == c_tag.vid
        assert getn(f, "vlan.priority") == c_tag.pcp
        assert get(f, "vlan.etype") == "0x0800"
        assert get(f, "ip.src") == "10.0.0.1"
        assert_no_warnings(f)
    f = flat(layers[-1])
    assert getn(f, "vxlan.vni") == 10
    assert getn(f, "ieee8021ad.id") == 200 and getn(f, "vlan.id") == 300
    assert getn(f, "udp.dstport", 1) == 9


# --------------------------------------------------------------------------------------------------- TCP

TCP_FLAG_NAMES = {Tcp.FIN: "fin", Tcp.SYN: "syn", Tcp.RST: "reset", Tcp.PSH: "push", Tcp.ACK: "ack",
                  Tcp.URG: "urg", Tcp.ECE: "ece", Tcp.CWR: "cwr"}


def test_tcp_flags_options_and_checksum(run_tshark: Any) -> None:
    syn_options = (b"\x02\x04\x05\xb4"  # MSS 1460
                   b"\x04\x02"  # SACK permitted
                   b"\x08\x0a\x00\x00\x30\x39\x00\x00\x00\x00"  # timestamps 12345/0
                   b"\x01\x03\x03\x07")  # NOP, window scale 7
    segments = [
        Tcp(sport=40000, dport=80, seq=1000, flags=Tcp.SYN | Tcp.ECE | Tcp.CWR, window=64240,
            options=syn_options),
        Tcp(sport=80, dport=40000, seq=0xFFFFFFFF, ack=1001, flags=Tcp.SYN | Tcp.ACK, window=65535,
            options=b"\x02\x04\x05\x78\x01\x01\x04\x02"),
        Tcp(sport=40000, dport=80, seq=1001, ack=1, flags=Tcp.ACK | Tcp.PSH, window=502),
        Tcp(sport=1, dport=2, seq=7, ack=8, flags=0x1FF, urgptr=3, window=0),
        Tcp(sport=40000, dport=80, seq=2000, ack=1, flags=Tcp.RST | Tcp.ACK, window=0),
    ]
    payloads = [b"", b"", b"GET / HTTP/1.0\r\n\r\n!", b"odd", b""]
    frames = []
    cases = []
    for version in (4, 6):
        ip: IPv4 | IPv6 = (IPv4(src="10.0.0.1", dst="10.0.0.2", proto=6) if version == 4
                           else IPv6(src="2001:db8::1", dst="2001:db8::2", next_header=6))
        for seg, payload in zip(segments, payloads, strict=True):
            frames.append(build_stack([Ethernet(type=0x0800 if version == 4 else 0x86DD), ip, seg], payload))
            cases.append((seg, payload))
    layers = run_tshark(frames, *CHECKSUM_PREFS, *NO_TCP_ANALYSIS)
    for (seg, payload), tree in zip(cases, layers, strict=True):
        f = flat(tree)
        assert getn(f, "tcp.srcport") == seg.sport and getn(f, "tcp.dstport") == seg.dport
        assert getn(f, "tcp.seq_raw") == seg.seq
        assert getn(f, "tcp.ack_raw") == seg.ack
        assert getn(f, "tcp.hdr_len") == 20 + len(seg.options)
        assert getn(f, "tcp.len") == len(payload)
        assert getn(f, "tcp.flags") == seg.flags
        for bit, name in TCP_FLAG_NAMES.items():
            assert flag(f, f"tcp.flags.{name}") == bool(seg.flags & bit), name
        ns_field = "tcp.flags.ae" if "tcp.flags.ae" in f else "tcp.flags.ns"  # renamed AE in 4.0
        assert flag(f, ns_field) == bool(seg.flags & Tcp.NS)
        assert getn(f, "tcp.window_size_value") == seg.window
        assert getn(f, "tcp.urgent_pointer") == seg.urgptr
        assert get(f, "tcp.checksum.status") == GOOD
        if seg.options:
            assert get(f, "tcp.options") == mac_text(seg.options)
    syn = flat(layers[0])
    assert getn(syn, "tcp.options.mss_val") == 1460
    assert "tcp.options.sack_perm" in syn
    assert getn(syn, "tcp.options.timestamp.tsval") == 12345
    assert getn(syn, "tcp.options.timestamp.tsecr") == 0
    assert getn(syn, "tcp.options.wscale.shift") == 7
    assert [num(k) for k in syn["tcp.option_kind"]] == [2, 4, 8, 1, 3]
    assert getn(flat(layers[1]), "tcp.options.mss_val") == 1400
