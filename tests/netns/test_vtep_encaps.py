"""Every encapsulation end to end over IPv4 and IPv6 underlays, checked on the wire by tshark; and
interop with the Linux kernel's VXLAN (a VTEP nobody here wrote): ping and iperf3 TCP both ways."""

import shutil

import pytest

from .helpers import Capture, mac, net, port, stats
from .topo import Topology, iperf, kernel_vtep

OPTION = {"class": 0x0102, "type": 0x01, "data": "0000abcd"}  # non-critical, OVN's class


def two_hosts(topo: Topology, vni: int, encap: str) -> tuple[str, str]:
    topo.add_host("h1", 1)
    topo.add_host("h2", 2)
    v1, v2 = topo.ns("v1"), topo.ns("v2")
    family = 6 if topo.v6 else 4
    for i, vns in ((1, v1), (2, v2)):
        extra = {"encap": encap}
        if encap == "geneve":
            extra["geneve_options"] = [OPTION]  # type: ignore[assignment]
        n = net(vni, [topo.underlay_ip(3 - i)], [port(f"vm{i}", vns, mac(i, 0x30), f"10.9.0.{i}")], **extra)
        topo.vtep(f"h{i}", {"vtep_ip": topo.underlay_ip(i), "networks": [n]})
        topo.vm_addr(vns, f"vm{i}", f"10.9.0.{i}/24")
    assert family in (4, 6)
    return v1, v2


CASES = [("vxlan", 0x123456), ("geneve", 0xABCDE), ("nvgre", 0x4321), ("gre", 77777)]


@pytest.mark.parametrize(("encap", "vni"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("underlay", ["ipv4", "ipv6"])
def test_every_encapsulation_on_the_wire(
    request: pytest.FixtureRequest, encap: str, vni: int, underlay: str
) -> None:
    topo = request.getfixturevalue("topo6" if underlay == "ipv6" else "topo")
    v1, _ = two_hosts(topo, vni, encap)
    cap = Capture(topo, topo.hosts["h1"], "eth0", "udp or proto 47 or ip6 proto 47")
    assert topo.ping(v1, "10.9.0.2", count=3), f"{encap} over {underlay}"
    cap.stop()
    ipf = "ipv6.src" if underlay == "ipv6" else "ip.src"
    if encap == "vxlan":
        rows = cap.fields(ipf, "vxlan.vni", "vxlan.flags", "udp.srcport", display_filter="icmp")
        assert rows and all(int(r[1]) == vni for r in rows)
        assert all(49152 <= int(r[3]) <= 65535 for r in rows)
    elif encap == "geneve":
        rows = cap.fields(
            ipf, "geneve.vni", "geneve.option.class", "geneve.option.unknown.data", display_filter="icmp"
        )
        assert rows and all(int(r[1], 16) == vni for r in rows)
        assert all(int(r[2], 0) == OPTION["class"] and r[3].replace(":", "") == OPTION["data"] for r in rows)
    else:
        rows = cap.fields(ipf, "gre.key", "gre.proto", display_filter="icmp")
        assert rows and all(r[2] == "0x6558" for r in rows)
        keys = [int(r[1], 0) for r in rows]
        assert all((k >> 8 if encap == "nvgre" else k) == vni for k in keys)
    assert {r[0] for r in rows} == {topo.underlay_ip(1), topo.underlay_ip(2)}, "both directions seen"


@pytest.mark.skipif(shutil.which("iperf3") is None, reason="iperf3 not installed")
def test_interop_with_linux_kernel_vxlan(topo: Topology) -> None:
    topo.add_host("h1", 1)
    topo.add_host("h2", 2)
    vk, vu = topo.ns("vk"), topo.ns("vu")
    kernel_vtep(topo, "h1", "198.18.0.1", "198.18.0.2", 4242, vk, "10.42.0.1")
    _, sock = topo.vtep(
        "h2",
        {
            "vtep_ip": "198.18.0.2",
            "networks": [net(4242, ["198.18.0.1"], [port("vm2", vu, mac(2, 0x42), "10.42.0.2")])],
        },
    )
    topo.vm_addr(vu, "vm2", "10.42.0.2/24")
    assert topo.ping(vu, "10.42.0.1", count=3), "userspace -> kernel"
    assert topo.ping(vk, "10.42.0.2", count=3), "kernel -> userspace"
    up = iperf(topo, vu, vk, "10.42.0.1")
    down = iperf(topo, vk, vu, "10.42.0.2")
    assert up > 1e6 and down > 1e6, f"TCP both ways: {up / 1e6:.0f} / {down / 1e6:.0f} Mbit/s"
    assert stats(sock)["vni"]["4242"]["rx_frames"] > 100
