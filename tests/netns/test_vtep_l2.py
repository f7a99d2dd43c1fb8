"""The userspace VTEP end to end in namespaces: isolation, flood-and-learn, suppression, MTU, robustness."""

import signal
import socket
import subprocess

import pytest

from netweave.vtep.control import request

from .helpers import Capture, links, mac, net, port, stats, stats_cli, wait_for
from .topo import Topology, sh

UL = ["198.18.0.1", "198.18.0.2", "198.18.0.3"]


def three_hosts_two_tenants(topo: Topology, **netopts: object) -> dict[str, object]:
    """h1..h3 each with one VM in VNI 100 (blue) and one in VNI 200 (red); both tenants use 10.0.0.0/24,
    and blue's VM on h1 and red's VM on h2 even share a MAC."""
    vms = {}
    for i in (1, 2, 3):
        topo.add_host(f"h{i}", i)
        others = [ip for j, ip in enumerate(UL, 1) if j != i]
        blue_ns, red_ns = topo.ns(f"b{i}"), topo.ns(f"r{i}")
        red_mac = mac(1, 1) if i == 2 else mac(0x20 + i, 1)
        cfg = {
            "vtep_ip": UL[i - 1],
            "networks": [
                net(100, others, [port(f"blue{i}", blue_ns, mac(i, 1), f"10.0.0.{i}")], **netopts),
                net(200, others, [port(f"red{i}", red_ns, red_mac, f"10.0.0.{i}")], **netopts),
            ],
        }
        proc, sock = topo.vtep(f"h{i}", cfg)
        topo.vm_addr(blue_ns, f"blue{i}", f"10.0.0.{i}/24")
        topo.vm_addr(red_ns, f"red{i}", f"10.0.0.{i}/24")
        vms[i] = (blue_ns, red_ns, sock, proc)
    return vms


def test_tenants_are_isolated_with_overlapping_addresses(topo: Topology) -> None:
    vms = three_hosts_two_tenants(topo)
    for i in (1, 2, 3):
        for j in (1, 2, 3):
            if i != j:
                assert topo.ping(vms[i][0], f"10.0.0.{j}", count=2), f"blue {i}->{j}"
                assert topo.ping(vms[i][1], f"10.0.0.{j}", count=2), f"red {i}->{j}"
    # nobody has 10.0.0.9: blue's ARP for it is flooded to every blue VM and to no red one
    red3 = Capture(topo, vms[3][1], "red3", "arp")
    blue3 = Capture(topo, vms[3][0], "blue3", "arp")
    assert not topo.ping(vms[1][0], "10.0.0.9", count=2, timeout_s=1)
    red3.stop()
    blue3.stop()
    who_has = "arp.opcode == 1 && arp.dst.proto_ipv4 == 10.0.0.9"
    assert blue3.fields("frame.number", display_filter=who_has), "the flood reaches blue's other VMs"
    assert not red3.fields("frame.number", display_filter=who_has), "and never red's"
    # neighbours: each VM's ARP table only holds its own tenant's MACs
    neigh = sh("ip", "-n", vms[1][1], "neigh", "show").stdout.lower()
    assert mac(2, 1) not in neigh and mac(3, 1) not in neigh


@pytest.mark.parametrize("flood", ["ingress", "multicast"])
def test_flood_and_learn_then_unicast_reaches_only_the_right_vtep(topo: Topology, flood: str) -> None:
    socks, vmns = {}, {}
    for i in (1, 2, 3):
        topo.add_host(f"h{i}", i)
        vmns[i] = topo.ns(f"v{i}")
        # no IPv6 in these VMs: its DAD/MLD/RS multicast would (rightly) be flooded and blur the count
        sh(
            "ip",
            "netns",
            "exec",
            vmns[i],
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        )
        others = [ip for j, ip in enumerate(UL, 1) if j != i]
        extra = {"multicast_group": "239.1.1.1"} if flood == "multicast" else {}
        n = net(
            300, [] if extra else others, [port(f"vm{i}", vmns[i], mac(i, 1))], arp_suppression=False, **extra
        )
        if extra:
            sh("ip", "-n", topo.hosts[f"h{i}"], "route", "add", "239.0.0.0/8", "dev", "eth0")
        _, socks[i] = topo.vtep(f"h{i}", {"vtep_ip": UL[i - 1], "networks": [n]})
        topo.vm_addr(vmns[i], f"vm{i}", f"10.3.0.{i}/24")
    assert topo.ping(vmns[1], "10.3.0.2", count=2)  # ARP broadcast flooded, replies learned
    fib = request(socks[1], "fib", vni=300)
    assert {"vni": 300, "mac": mac(2, 1), "port": None, "vtep": UL[1], "origin": "learned"} in fib
    before3 = stats(socks[3])["vni"]["300"]["rx_frames"]
    before2 = stats(socks[2])["vni"]["300"]["rx_frames"]
    assert topo.ping(vmns[1], "10.3.0.2", count=20, timeout_s=1)
    after3 = stats(socks[3])["vni"]["300"]["rx_frames"]
    assert stats(socks[2])["vni"]["300"]["rx_frames"] - before2 >= 20
    assert after3 - before3 <= 2, "learned unicast must not reach the third VTEP"


def test_arp_and_nd_suppression_keep_neighbour_discovery_off_the_underlay(topo: Topology) -> None:
    topo.add_host("h1", 1)
    topo.add_host("h2", 2)
    v1, v2 = topo.ns("v1"), topo.ns("v2")
    ips1, ips2 = ["10.4.0.1", "fd00:4::1"], ["10.4.0.2", "fd00:4::2"]
    for i, vns, mine, peer in ((1, v1, ips1, ips2), (2, v2, ips2, ips1)):
        cfg = {
            "vtep_ip": UL[i - 1],
            "networks": [
                {
                    "vni": 400,
                    "mode": "static",
                    "flood": [UL[2 - i]],
                    "unknown_arp": "drop",
                    "ports": [port(f"vm{i}", vns, mac(i, 4), mine)],
                    "remote": [{"mac": mac(3 - i, 4), "vtep": UL[2 - i], "ip": peer}],
                }
            ],
        }
        topo.vtep(f"h{i}", cfg)
        topo.vm_addr(vns, f"vm{i}", f"{mine[0]}/24", f"{mine[1]}/64")
    cap = Capture(topo, topo.hosts["h1"], "eth0", "udp port 4789")
    assert topo.ping(v1, "10.4.0.2", count=3)
    assert topo.ping(v1, "fd00:4::2", count=3)
    cap.stop()
    inner = cap.fields("eth.type", "vxlan.vni")
    assert inner, "the pings crossed the tunnel"
    assert not cap.fields("frame.number", display_filter="arp"), "no ARP may cross the tunnel"
    nd = cap.fields("frame.number", display_filter="icmpv6.type == 135 || icmpv6.type == 136")
    assert not nd, "no neighbour solicitation/advertisement may cross the tunnel"
    assert cap.fields("frame.number", display_filter="icmp.type == 8 && vxlan.vni == 400")
    assert cap.fields("frame.number", display_filter="icmpv6.type == 128 && vxlan.vni == 400")


def test_mtu_too_big_with_df_gets_frag_needed(topo: Topology) -> None:
    topo.add_host("h1", 1)
    topo.add_host("h2", 2)
    v1, v2 = topo.ns("v1"), topo.ns("v2")
    for i, vns in ((1, v1), (2, v2)):
        topo.vtep(
            f"h{i}",
            {
                "vtep_ip": UL[i - 1],
                "networks": [net(500, [UL[2 - i]], [port(f"vm{i}", vns, mac(i, 5), f"10.5.0.{i}")])],
            },
        )
        topo.vm_addr(vns, f"vm{i}", f"10.5.0.{i}/24")
    mtu = sh("ip", "-n", v1, "-o", "link", "show", "vm1").stdout
    assert "mtu 1450" in mtu, "the VM port gets the underlay MTU minus the VXLAN overhead"
    assert topo.ping(v1, "10.5.0.2", count=2, size=1450 - 28, df=True), "a just-fitting packet passes"
    # raise the VM's MTU so it can send a too-big frame; the VTEP must say frag-needed with 1450
    sh("ip", "-n", v1, "link", "set", "vm1", "mtu", "1500")
    r = sh(
        "ip",
        "netns",
        "exec",
        v1,
        "ping",
        "-n",
        "-c",
        "2",
        "-W",
        "1",
        "-M",
        "do",
        "-s",
        "1450",
        "10.5.0.2",
        check=False,
    )
    assert (
        "mtu = 1450" in r.stdout + r.stderr or "message too long, mtu=1450" in (r.stdout + r.stderr).lower()
    )


def test_malformed_underlay_packets_are_counted_and_dropped_and_sigterm_cleans_up(topo: Topology) -> None:
    topo.add_host("h1", 1)
    topo.add_host("h2", 2)
    v1, v2 = topo.ns("v1"), topo.ns("v2")
    procs, socks = {}, {}
    for i, vns in ((1, v1), (2, v2)):
        procs[i], socks[i] = topo.vtep(
            f"h{i}",
            {
                "vtep_ip": UL[i - 1],
                "networks": [net(600, [UL[2 - i]], [port(f"vm{i}", vns, mac(i, 6), f"10.6.0.{i}")])],
            },
        )
        topo.vm_addr(vns, f"vm{i}", f"10.6.0.{i}/24")
    assert topo.ping(v1, "10.6.0.2", count=2)
    garbage = [
        b"",
        b"\x08",
        b"\x08\x00\x00\x00\x00\x02\x58",
        b"\x00" * 8 + bytes(64),  # short; I flag clear
        b"\x08\x00\x00\x00\x00\x99\x99\x00" + bytes(64),  # unknown VNI
        b"\x08\x00\x00\x00\x00\x02\x58\x00" + b"\x01\x02",  # inner shorter than Ethernet
        bytes(range(256)) * 4,
    ]
    script = (
        "import socket,sys;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);"
        "[s.sendto(bytes.fromhex(h),('198.18.0.1',int(p))) for a in sys.argv[1:] for h,p in [a.split(':')]]"
    )
    args = [f"{g.hex()}:4789" for g in garbage] + [f"{g.hex()}:6081" for g in garbage]
    sh("ip", "netns", "exec", topo.hosts["h2"], "python3", "-c", script, *args)
    assert wait_for(lambda: sum(stats(socks[1])["drops"].values()) >= 10)
    drops = stats_cli(socks[1])["drops"]
    assert drops.get("bad_header", 0) >= 5 and drops.get("no_such_vni", 0) >= 1
    assert topo.ping(v1, "10.6.0.2", count=2), "still forwarding after the garbage"
    assert procs[1].poll() is None
    assert "vm1" in links(v1)
    assert topo.stop(procs[1], signal.SIGTERM) == 0
    assert "vm1" not in links(v1), "SIGTERM removes the devices the VTEP created"
    with pytest.raises(RuntimeError):
        request(socks[1], "stats")


def test_kill_9_and_restart_reattaches_without_touching_the_vm(topo: Topology) -> None:
    topo.add_host("h1", 1)
    topo.add_host("h2", 2)
    v1, v2 = topo.ns("v1"), topo.ns("v2")
    cfgs = {}
    procs = {}
    for i, vns in ((1, v1), (2, v2)):
        cfgs[i] = {
            "vtep_ip": UL[i - 1],
            "networks": [net(700, [UL[2 - i]], [port(f"vm{i}", vns, mac(i, 7), f"10.7.0.{i}")])],
        }
        procs[i], _ = topo.vtep(f"h{i}", cfgs[i])
        topo.vm_addr(vns, f"vm{i}", f"10.7.0.{i}/24")
    assert topo.ping(v1, "10.7.0.2", count=2)
    idx_before = sh("ip", "-n", v1, "-o", "link", "show", "vm1").stdout.split(":")[0]
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait(10)
    assert "vm1" in links(v1), "the TAP is persistent"
    assert "10.7.0.1/24" in sh("ip", "-n", v1, "addr", "show", "vm1").stdout
    topo.vtep("h1", cfgs[1])
    assert topo.ping(v1, "10.7.0.2", count=3)
    assert sh("ip", "-n", v1, "-o", "link", "show", "vm1").stdout.split(":")[0] == idx_before


def test_runtime_changes_over_the_control_socket(topo: Topology) -> None:
    topo.add_host("h1", 1)
    topo.add_host("h2", 2)
    v1, v2, v3 = topo.ns("v1"), topo.ns("v2"), topo.ns("v3")
    socks = {}
    for i, vns in ((1, v1), (2, v2)):
        _, socks[i] = topo.vtep(
            f"h{i}",
            {
                "vtep_ip": UL[i - 1],
                "networks": [net(800, [UL[2 - i]], [port(f"vm{i}", vns, mac(i, 8), f"10.8.0.{i}")])],
            },
        )
        topo.vm_addr(vns, f"vm{i}", f"10.8.0.{i}/24")
    ping = subprocess.Popen(
        ["ip", "netns", "exec", v1, "ping", "-n", "-i", "0.05", "-c", "60", "10.8.0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    topo.procs.append(ping)  # type: ignore[arg-type]
    # while it runs: a new network and port on h2 (VNI 801), and errors that change nothing
    request(socks[2], "add_network", vni=801, flood=[UL[0]])
    request(socks[2], "add_port", name="vm3", vni=801, mac=mac(2, 9), ip="10.8.1.3", netns=v3)
    with pytest.raises(RuntimeError, match="MAC"):
        request(socks[2], "add_port", name="vm4", vni=801, mac="nonsense", netns=v3)
    with pytest.raises(RuntimeError, match="unknown op"):
        request(socks[2], "reboot")
    with pytest.raises(RuntimeError, match="no network"):
        request(socks[2], "add_port", name="vm5", vni=999, mac=mac(2, 10), netns=v3)
    out, _ = ping.communicate(timeout=30)
    assert " 0% packet loss" in out, f"changes elsewhere must not disturb this flow: {out}"
    assert "vm3" in links(v3) and "vm4" not in links(v3)
    request(socks[2], "remove_port", name="vm3")
    assert wait_for(lambda: "vm3" not in links(v3))
    assert socket.AF_UNIX  # the control socket is a Unix socket
