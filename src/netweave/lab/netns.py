"""Namespace and link plumbing over netlink (pyroute2), as `netweave.datapath.tap` does it.

Every socket is opened with `flags=0`: pyroute2's default (`O_CREAT`) would silently create a namespace
that is missing, and a lab that cleans up must never resurrect what it just removed. No device is ever
created in the root namespace: a host's veth is created inside the underlay namespace with its peer
placed straight into the host's namespace.
"""

import contextlib
import errno
import ipaddress
import os
import subprocess
from pathlib import Path

from pyroute2 import IPRoute, netns
from pyroute2.netlink.exceptions import NetlinkError

from netweave.lab.errors import LabError

NETNS_DIR = Path("/run/netns")
IFA_F_NODAD = 0x02  # linux/if_addr.h: IPv6 addresses usable at once, no duplicate address detection
IFA_F_DADFAILED = 0x08
IFA_F_TENTATIVE = 0x40
NOT_USABLE = IFA_F_TENTATIVE | IFA_F_DADFAILED
BRIDGE = "br0"
UPLINK = "eth0"


def ipr(ns: str) -> IPRoute:
    """A netlink socket inside `ns`; FileNotFoundError if the namespace does not exist."""
    return IPRoute(netns=ns, flags=0)


def names() -> list[str]:
    return sorted(netns.listnetns())


def exists(ns: str) -> bool:
    return (NETNS_DIR / ns).exists()


def identity(ns: str) -> tuple[int, int] | None:
    """(device, inode) of the namespace, as `/proc/PID/ns/net` of every process inside it shows."""
    try:
        st = os.stat(NETNS_DIR / ns)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def create(ns: str) -> None:
    """A new namespace with `lo` up (a VM or host without loopback surprises every tool)."""
    try:
        netns.create(ns)
    except OSError as exc:
        raise LabError(f"cannot create network namespace {ns}: {exc.strerror or exc}") from None
    with ipr(ns) as ip:
        ip.link("set", index=ip.link_lookup(ifname="lo")[0], state="up")


def remove(ns: str) -> bool:
    """Unmount and unlink `ns`; False if it was not there. The kernel frees it (and every device in it)
    once no process or file descriptor holds it any more: kill the processes first."""
    try:
        netns.remove(ns)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EINVAL) and not exists(ns):
            return False
        raise LabError(f"cannot remove network namespace {ns}: {exc.strerror or exc}") from None
    return True


def make_underlay(ns: str, mtu: int) -> None:
    """The shared segment: one bridge. Multicast snooping off, so flood-and-learn's multicast groups
    reach every host without an IGMP/MLD querier on the segment."""
    with ipr(ns) as ip:
        ip.link("add", ifname=BRIDGE, kind="bridge", br_mcast_snooping=0)
        idx = ip.link_lookup(ifname=BRIDGE)[0]
        ip.link("set", index=idx, mtu=mtu, state="up")


def attach_host(ul_ns: str, host_ns: str, port: str, *, mtu: int, address: str, prefixlen: int) -> None:
    """Veth `port` on the underlay bridge, its peer `eth0` in the host with the host's VTEP address."""
    with ipr(ul_ns) as ip:
        ip.link("add", ifname=port, kind="veth", peer={"ifname": UPLINK, "net_ns_fd": host_ns})
        idx = ip.link_lookup(ifname=port)[0]
        ip.link("set", index=idx, master=ip.link_lookup(ifname=BRIDGE)[0], mtu=mtu, state="up")
    with ipr(host_ns) as ip:
        idx = ip.link_lookup(ifname=UPLINK)[0]
        ip.link("set", index=idx, mtu=mtu, state="up")
        v6 = ipaddress.ip_address(address).version == 6
        nodad = {"flags": IFA_F_NODAD} if v6 else {}
        ip.addr("add", index=idx, address=address, prefixlen=prefixlen, **nodad)
        if not v6:  # multicast replication sends to 239.x: without a route the kernel says unreachable
            ip.route("add", dst="224.0.0.0/4", oif=idx)


def link_index(ns: str, ifname: str) -> int | None:
    try:
        with ipr(ns) as ip:
            found = ip.link_lookup(ifname=ifname)
    except FileNotFoundError:
        return None
    return int(found[0]) if found else None


def add_addresses(ns: str, ifname: str, addresses: list[tuple[str, int]]) -> int:
    """Give `ifname` in `ns` these (address, prefix length) pairs unless it has them; returns how many
    were added. IPv6 with nodad: the lab measures right away and DAD would hold the address back."""
    added = 0
    with ipr(ns) as ip:
        found = ip.link_lookup(ifname=ifname)
        if not found:
            raise LabError(f"no device {ifname} in namespace {ns}")
        idx = found[0]
        have = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"]) for a in ip.get_addr(index=idx)}
        for address, prefixlen in addresses:
            if (address, prefixlen) in have:
                continue
            v6 = ipaddress.ip_address(address).version == 6
            try:
                ip.addr(
                    "add",
                    index=idx,
                    address=address,
                    prefixlen=prefixlen,
                    **({"flags": IFA_F_NODAD} if v6 else {}),
                )
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:
                    raise LabError(f"cannot add {address}/{prefixlen} to {ifname} in {ns}: {exc}") from None
            added += 1
    return added


def addresses(ns: str, *, usable: bool = False) -> set[str]:
    """Every address configured in `ns` (any device): a destination among them is the source itself.
    `usable`: only those past duplicate address detection (not tentative, not failed)."""
    with ipr(ns) as ip:
        return {str(a.get_attr("IFA_ADDRESS")) for a in ip.get_addr()
                if not usable or not (a.get_attr("IFA_FLAGS") or a["flags"]) & NOT_USABLE}


def neighbours(ns: str) -> dict[str, str]:
    """IP -> MAC (lower case) of the neighbour entries in `ns` that have a link-layer address."""
    out: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError), ipr(ns) as ip:
        for entry in ip.get_neighbours():
            dst, mac = entry.get_attr("NDA_DST"), entry.get_attr("NDA_LLADDR")
            if dst and mac:
                out[str(ipaddress.ip_address(dst))] = str(mac).lower()
    return out


# -- leaf-spine fabric -----------------------------------------------------------------------------------


def sysctl(ns: str, key: str, value: str) -> None:
    """Write /proc/sys/<key> (dotted) as seen from inside `ns`: /proc/sys/net follows the network
    namespace of the thread that opens it, so the file is opened between pushns and popns."""
    netns.pushns(ns)
    try:
        Path("/proc/sys", *key.split(".")).write_text(value)
    except OSError as exc:
        raise LabError(f"cannot set {key}={value} in {ns}: {exc.strerror or exc}") from None
    finally:
        netns.popns()


def make_router(ns: str) -> None:
    """A leaf or spine: forwards IPv4, and hashes multipath routes on the L4 5-tuple (so the outer UDP
    source port of a tunnel packet picks the path)."""
    sysctl(ns, "net.ipv4.ip_forward", "1")
    sysctl(ns, "net.ipv4.fib_multipath_hash_policy", "1")


def add_address(ns: str, ifname: str, address: str, prefixlen: int) -> None:
    with ipr(ns) as ip:
        ip.addr("add", index=ip.link_lookup(ifname=ifname)[0], address=address, prefixlen=prefixlen)


def link_routers(
    a_ns: str, a_port: str, b_ns: str, b_port: str, *, mtu: int, a_address: str, b_address: str
) -> None:
    """A point-to-point veth `a_port` (in `a_ns`) <-> `b_port` (in `b_ns`), a /31 on it."""
    with ipr(a_ns) as ip:
        ip.link("add", ifname=a_port, kind="veth", peer={"ifname": b_port, "net_ns_fd": b_ns})
    for ns, port, address in ((a_ns, a_port, a_address), (b_ns, b_port, b_address)):
        with ipr(ns) as ip:
            idx = ip.link_lookup(ifname=port)[0]
            ip.link("set", index=idx, mtu=mtu, state="up")
            ip.addr("add", index=idx, address=address, prefixlen=31)


def add_route(ns: str, dst: str, gateway: str) -> None:
    with ipr(ns) as ip:
        ip.route("add", dst=dst, gateway=gateway)


def set_default_routes(ns: str, gateways: list[str]) -> None:
    """A VM's default route (per IP version, the first gateway of that version) via its router."""
    for version in (4, 6):
        gws = [g for g in gateways if ipaddress.ip_address(g).version == version]
        if gws:
            _ip_cmd(ns, f"-{version}", "route", "replace", "default", "via", gws[0])


ECMP_GROUP_ID = 1000  # nexthop ids 1..n are the members


def _ip_cmd(ns: str, *args: str) -> None:
    r = subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, timeout=10, check=False)
    if r.returncode != 0:
        raise LabError(f"ip -n {ns} {' '.join(args)}: {' '.join(r.stderr.split())}")


def add_ecmp_routes(ns: str, dsts: list[str], nexthops: list[tuple[str, str]]) -> None:
    """`dsts` over every (gateway, device) in `nexthops` at once, hashed per flow (ECMP). A nexthop group
    (`ip nexthop`; pyroute2 has no API for it), not a classic multipath route: when a device goes away,
    the kernel drops only its nexthop from the group, where it deletes a whole multipath route."""
    for k, (gateway, dev) in enumerate(nexthops, 1):
        _ip_cmd(ns, "nexthop", "add", "id", str(k), "via", gateway, "dev", dev)
    members = "/".join(str(k) for k in range(1, len(nexthops) + 1))
    _ip_cmd(ns, "nexthop", "add", "id", str(ECMP_GROUP_ID), "group", members)
    for dst in dsts:
        _ip_cmd(ns, "route", "add", dst, "nhid", str(ECMP_GROUP_ID))


def echoes_received(ns: str) -> int:
    """ICMP + ICMPv6 echo requests the stack of `ns` has received (its own /proc/net/snmp{,6}): what a
    VM was pinged with, whatever else arrived on its link."""
    r = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/net/snmp", "/proc/net/snmp6"],
                       capture_output=True, text=True, timeout=10, check=False)
    lines = r.stdout.splitlines()
    total = 0
    for i, line in enumerate(lines[:-1]):
        head, values = line.split(), lines[i + 1].split()
        if head[:1] == ["Icmp:"] and values[:1] == ["Icmp:"] and "InEchos" in head:
            total += int(values[head.index("InEchos")])
    total += sum(int(line.split()[1]) for line in lines if line.startswith("Icmp6InEchos"))
    return total


def packet_counts(ns: str) -> dict[str, int]:
    """ifname -> rx_packets of every device in `ns` but `lo` (empty if `ns` is gone): in a spine, whose
    every packet comes in on one link and leaves on another, their sum is what the spine carried."""
    out: dict[str, int] = {}
    with contextlib.suppress(FileNotFoundError), ipr(ns) as ip:
        for link in ip.get_links():
            name, stats = link.get_attr("IFLA_IFNAME"), link.get_attr("IFLA_STATS64")
            if name != "lo" and stats is not None:
                out[str(name)] = int(stats["rx_packets"])
    return out
