"""Persistent TAP devices living in VM network namespaces.

A TAP is opened from inside the VM's namespace (TUNSETIFF there creates it, or attaches to it when it
already exists), so the same call serves a first start and a restart after `kill -9`: the TAP is
persistent (TUNSETPERSIST), survives its file descriptor, and the VM's side of it is never touched on a
re-attach. `close(remove=True)` clears persistence so closing the fd deletes the device.
"""

import contextlib
import fcntl
import os
import struct
from dataclasses import dataclass

from pyroute2 import IPRoute, netns

TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000


class TapError(OSError):
    pass


class NamespaceGone(TapError):  # noqa: N818 - a state, like FileNotFoundError
    """The VM's namespace does not exist (the VM is gone, or not there yet)."""


@dataclass
class Tap:
    name: str
    netns: str | None
    fd: int
    created: bool  # False: we re-attached to a TAP that survived a previous daemon

    def close(self, *, remove: bool) -> None:
        if self.fd < 0:
            return
        if remove:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.fd, TUNSETPERSIST, 0)
        os.close(self.fd)
        self.fd = -1


def _ipr(ns: str | None) -> IPRoute:
    return IPRoute(netns=ns) if ns else IPRoute()


def open_tap(name: str, ns: str | None, *, mac: str, mtu: int, vnet_hdr: bool = False) -> Tap:
    """Create (or re-attach to) TAP `name` inside namespace `ns` and return it non-blocking. With
    `vnet_hdr` every frame read or written carries a virtio-net header (what lets us hand the VM
    coalesced GSO frames, `netweave.datapath.gro`); no offloads are enabled, so frames read from the VM
    are still whole, checksummed and at most MTU-sized."""
    if ns is not None and ns not in netns.listnetns():
        raise NamespaceGone(f"network namespace {ns!r} does not exist")
    with _ipr(ns) as ipr:
        existed = bool(ipr.link_lookup(ifname=name))
    if ns is not None:
        netns.pushns(ns)
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
            fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
            fcntl.ioctl(fd, TUNSETPERSIST, 1)
        except OSError as exc:
            os.close(fd)
            raise TapError(f"cannot open TAP {name} in {ns or 'this namespace'}: {exc.strerror}") from None
    finally:
        if ns is not None:
            netns.popns()
    tap = Tap(name, ns, fd, created=not existed)
    if not existed:
        try:
            with _ipr(ns) as ipr:
                idx = ipr.link_lookup(ifname=name)[0]
                ipr.link("set", index=idx, address=mac, mtu=mtu)
                ipr.link("set", index=idx, state="up")
        except Exception as exc:
            tap.close(remove=True)
            raise TapError(f"cannot configure TAP {name}: {exc}") from None
    return tap
