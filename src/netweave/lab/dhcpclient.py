"""A real DHCP client in a VM's namespace: ISC dhclient (Debian's isc-dhcp-client) with Debian's
dhclient-script, so what the VM ends up with (address, default route, MTU, DNS) is what a stock Linux
guest would configure from the VTEP's native DHCP answers, not what the lab chose to set.

dhclient-script writes /etc/resolv.conf. `ip netns exec` runs the client in a mount namespace of its own
(mounts do not propagate back), and inside it a file of the lab's run directory is bind-mounted over
/etc/resolv.conf first: the host's file is never touched, and the DNS servers the VM got can be read.
After its first lease dhclient stays in the background (renewing); `netweave lab down` ends it with every
other process inside the lab's namespaces.
"""

import shlex
import subprocess
from pathlib import Path

from netweave.lab.errors import LabError

TIMEOUT_S = 20  # per attempt (DHCPv4: DISCOVER..ACK; DHCPv6: SOLICIT..REPLY)

CONFIG = """\
option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;
timeout {timeout};
retry 5;
request subnet-mask, broadcast-address, routers, domain-name-servers, interface-mtu,
        rfc3442-classless-static-routes, dhcp6.name-servers;
"""


def run(ns: str, ifname: str, rundir: Path, label: str, *, v6: bool = False) -> Path:
    """Run dhclient (-4, or -6 for stateful DHCPv6) on `ifname` in namespace `ns` until it has a lease;
    returns the resolv.conf it wrote. LabError with its output's last lines when it gets none."""
    family = "6" if v6 else "4"
    files = {k: rundir / f"dhclient{family}-{label}.{k}" for k in ("conf", "leases", "pid", "log", "resolv")}
    files["conf"].write_text(CONFIG.format(timeout=TIMEOUT_S))
    files["resolv"].write_text("")
    dhclient = [
        "dhclient", f"-{family}", "-1", "-v", "-cf", str(files["conf"]), "-lf", str(files["leases"]),
        "-pf", str(files["pid"]), ifname,
    ]
    resolv = shlex.quote(str(files["resolv"]))
    script = f"mount --bind {resolv} /etc/resolv.conf && exec {shlex.join(dhclient)}"
    with files["log"].open("w") as log:
        r = subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", script], stdout=log,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT_S * 2 + 10, check=False)
    if r.returncode != 0:
        tail = " | ".join(files["log"].read_text().strip().splitlines()[-3:])
        raise LabError(f"dhclient -{family} in {ns} got no lease on {ifname} (exit {r.returncode}): {tail}")
    return files["resolv"]
