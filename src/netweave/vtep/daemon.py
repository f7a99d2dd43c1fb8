"""`netweave vtep`: build the datapath from the config file, serve the control socket, forward until
SIGTERM/SIGINT, then remove every device it created. After `kill -9` the TAPs stay (persistent) and a new
daemon with the same config re-attaches to them without touching the VM namespaces."""

import logging
import signal
from types import FrameType

from netweave.datapath.userspace import UserspaceDatapath
from netweave.model import VtepConfig
from netweave.vtep.control import ControlServer

log = logging.getLogger(__name__)


def default_control_socket(vtep_ip: str) -> str:
    return f"/run/netweave-vtep-{vtep_ip.replace(':', '_')}.sock"


def run(cfg: VtepConfig, control_socket: str | None = None, fixed_source_port: int | None = None) -> None:
    """`fixed_source_port`: pin the outer UDP source port (default: hashed from the inner flow)."""
    dp = UserspaceDatapath(
        cfg.vtep_ip, underlay_mtu=cfg.underlay_mtu, aging_s=cfg.aging_s, fixed_source_port=fixed_source_port
    )
    ctl = None
    try:
        for net in cfg.networks:
            dp.add_network(net)
        for port in cfg.ports:
            dp.add_port(port)
        for remote in cfg.remotes:
            dp.add_remote(remote)
        ctl = ControlServer(control_socket or default_control_socket(cfg.vtep_ip), dp)

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %s: stopping", signum)
            dp.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("vtep=%s forwarding: %d networks, %d ports", cfg.vtep_ip, len(cfg.networks), len(cfg.ports))
        print(f"netweave vtep {cfg.vtep_ip}: ready, control socket {ctl.path}", flush=True)
        dp.run()
    finally:
        if ctl is not None:
            ctl.close()
        dp.close(remove_devices=True)
