"""The `netweave` command line (click + rich).

Every failure is one line on stderr and a non-zero exit (DESIGN.md conventions); tracebacks are for bugs.
"""

import asyncio
import json
import logging
import sys

import click
from rich.console import Console
from rich.table import Table

from netweave.lab.cli import lab
from netweave.packet import GeneveOption, overhead_table
from netweave.vtep.config import ConfigError, build, load
from netweave.vtep.control import request
from netweave.vtep.daemon import run


class UsageFail(click.UsageError):
    """A bad value the command itself found; reported like click's own usage errors."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """NetWeave: tenant networks over any routed underlay."""


@app.group("encap")
def encap_group() -> None:
    """Encapsulation facts computed from the codecs."""


@encap_group.command("overhead")
@click.option(
    "--underlay-mtu",
    type=click.IntRange(68, 65535),
    default=1500,
    show_default=True,
    help="IP MTU of the underlay links.",
)
@click.option(
    "--geneve-option-bytes",
    type=click.IntRange(0, 124),
    default=0,
    show_default=True,
    help="Bytes of Geneve option data carried (a multiple of 4).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def encap_overhead(underlay_mtu: int, geneve_option_bytes: int, as_json: bool) -> None:
    """Overhead per encapsulation and underlay family, and the largest tenant MTU that fits."""
    options: list[GeneveOption] = []
    if geneve_option_bytes:
        if geneve_option_bytes % 4:
            raise UsageFail("--geneve-option-bytes must be a multiple of 4")
        options = [GeneveOption(option_class=0x0102, type=0x80, data=bytes(geneve_option_bytes))]
    rows = overhead_table(underlay_mtu, options)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "encap": r.encap,
                        "underlay": r.underlay,
                        "overhead_bytes": r.overhead_bytes,
                        "inner_mtu": r.inner_mtu,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    table = Table(title=f"Encapsulation overhead, underlay MTU {underlay_mtu}")
    table.add_column("encap")
    table.add_column("underlay")
    table.add_column("overhead (bytes)", justify="right")
    table.add_column("tenant MTU", justify="right")
    for r in rows:
        mtu = str(r.inner_mtu) if r.inner_mtu >= 68 else f"{r.inner_mtu} (does not fit)"
        table.add_row(r.encap, r.underlay, str(r.overhead_bytes), mtu)
    Console().print(table)


@app.group("vtep", invoke_without_command=True)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="The VTEP's YAML file.")
@click.option(
    "--vtep-ip", help="Instead of --config: start empty with this underlay address (an agent programs it)."
)
@click.option(
    "--underlay-mtu", type=click.IntRange(576, 65535), default=1500, show_default=True, help="With --vtep-ip."
)
@click.option("--control-socket", help="Unix socket for run-time changes and stats.")
@click.option(
    "--fixed-source-port",
    type=click.IntRange(1, 65535),
    help="Send every VXLAN/Geneve packet from this outer UDP source port (default: hashed from the inner "
    "flow, so that underlay ECMP spreads the flows; pinning it shows why).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what the VTEP does.")
@click.pass_context
def vtep(  # noqa: PLR0917 - click passes options positionally
    ctx: click.Context,
    config_path: str | None,
    vtep_ip: str | None,
    underlay_mtu: int,
    control_socket: str | None,
    fixed_source_port: int | None,
    verbose: bool,
) -> None:
    """Run a software VTEP until SIGTERM (or talk to one: `netweave vtep stats`)."""
    if ctx.invoked_subcommand is not None:
        return
    if (config_path is None) == (vtep_ip is None):
        raise UsageFail("give --config FILE, or --vtep-ip IP for a VTEP that an agent programs")
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        cfg = load(config_path) if config_path else build({"vtep_ip": vtep_ip, "underlay_mtu": underlay_mtu})
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        run(cfg, control_socket, fixed_source_port)
    except (OSError, KeyError, ValueError) as exc:
        raise click.ClickException(f"vtep: {' '.join(str(exc).split())}") from None


@vtep.command("stats")
@click.option("--control-socket", required=True, help="The running VTEP's control socket.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def vtep_stats(control_socket: str, as_json: bool) -> None:
    """Counters of a running VTEP: per VNI, per port, drops by reason, table sizes."""
    try:
        stats = request(control_socket, "stats")
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(stats, indent=2, sort_keys=True))
        return
    console = Console()
    for title, rows in (("VNI", stats["vni"]), ("port", stats["port"])):
        if not rows:
            continue
        cols = list(next(iter(rows.values())))
        table = Table(title=f"per {title}")
        table.add_column(title)
        for c in cols:
            table.add_column(c, justify="right")
        for key, counters in rows.items():
            table.add_row(key, *(str(counters[c]) for c in cols))
        console.print(table)
    drops = ", ".join(f"{k}={v}" for k, v in stats["drops"].items()) or "none"
    console.print(f"drops: {drops}")
    fc = stats["flow_cache"]
    console.print(
        f"fib entries: {stats['fib_entries']}  bindings: {stats['bindings']}  "
        f"flow cache: {fc['entries']} entries, {fc['hits']} hits, {fc['misses']} misses"
    )


@app.command("controller")
@click.option(
    "--db",
    "db_url",
    help="SQLAlchemy URL (default: SQLite under the user's data directory; "
    "postgresql+psycopg://... for a shared store).",
)
@click.option("--listen", default="127.0.0.1:9696", show_default=True, help="HOST:PORT for the REST API.")
@click.option("--unix-socket", help="Also serve the API on this Unix socket (for agents).")
@click.option(
    "--default-project",
    default="netweave",
    show_default=True,
    help="Project of requests without an X-Project-Id header.",
)
@click.option(
    "--default-network-type",
    type=click.Choice(["vxlan", "geneve", "gre", "nvgre"]),
    default="vxlan",
    show_default=True,
    help="Type of tenant networks created without provider attributes.",
)
@click.option(
    "--underlay-mtu",
    type=click.IntRange(576, 65535),
    default=1500,
    show_default=True,
    help="MTU of the underlay: overlay network MTUs are this minus the encapsulation overhead.",
)
@click.option(
    "--segment-range",
    "segment_ranges",
    multiple=True,
    metavar="TYPE:MIN:MAX",
    help="Segmentation IDs to allocate for a network type (vxlan, geneve, gre, nvgre, vlan); repeatable.",
)
@click.option(
    "--agent-down-time",
    type=click.FloatRange(1, 3600),
    default=15.0,
    show_default=True,
    help="Seconds without a heartbeat after which a chassis is shown down.",
)
def controller(
    *,
    db_url: str | None,
    listen: str,
    unix_socket: str | None,
    default_project: str,
    default_network_type: str,
    underlay_mtu: int,
    segment_ranges: tuple[str, ...],
    agent_down_time: float,
) -> None:
    """Run the controller: the Neutron v2.0-compatible API over the store."""
    import uvicorn  # noqa: PLC0415 - the web stack loads only for this command (agents start faster)

    from netweave.controller.api import create_app  # noqa: PLC0415
    from netweave.controller.store import Store  # noqa: PLC0415
    from netweave.controller.store import default_db_url as store_default_url  # noqa: PLC0415
    from netweave.controller.typedrivers import TypeConfig  # noqa: PLC0415

    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageFail(f"--listen {listen!r} is not HOST:PORT")
    try:
        store = Store(db_url)
        store.upgrade()
    except Exception as exc:  # any driver or migration failure, reported in one line
        raise click.ClickException(
            f"store {db_url or store_default_url()}: {' '.join(str(exc).split())}"
        ) from None
    types = TypeConfig(default_type=default_network_type, underlay_mtu=underlay_mtu)
    for spec in segment_ranges:
        try:
            types.set_range(spec)
        except ValueError as exc:
            raise UsageFail(f"--segment-range {spec}: {exc}") from None
    api = create_app(store, types, default_project=default_project, agent_down_time_s=agent_down_time)
    servers = [
        uvicorn.Server(
            uvicorn.Config(
                api,
                host=host.strip("[]") or "127.0.0.1",
                port=int(port_text),
                log_level="warning",
                timeout_graceful_shutdown=1,
            )
        )
    ]
    if unix_socket:
        servers.append(
            uvicorn.Server(
                uvicorn.Config(api, uds=unix_socket, log_level="warning", timeout_graceful_shutdown=1)
            )
        )
    click.echo(f"netweave controller: listening on http://{listen}/ (store {store.url})")

    async def serve() -> None:
        await asyncio.gather(*(s.serve() for s in servers))

    asyncio.run(serve())


@app.command("agent")
@click.option(
    "--controller",
    "controller_url",
    required=True,
    help="The controller: http://HOST:PORT or unix:/PATH/TO/controller.sock.",
)
@click.option("--chassis", required=True, help="This host's chassis name (what ports' binding:host_id say).")
@click.option("--vtep-ip", required=True, help="This host's underlay (VTEP) address.")
@click.option(
    "--datapath",
    type=click.Choice(["userspace", "kernel"]),
    default="userspace",
    show_default=True,
    help="Which datapath this host forwards with: the `netweave vtep` daemon, or the Linux kernel.",
)
@click.option(
    "--underlay-mtu",
    type=click.IntRange(576, 65535),
    default=1500,
    show_default=True,
    help="The underlay's MTU (kernel datapath: VM ports get it minus the encapsulation overhead).",
)
@click.option(
    "--vtep-socket",
    help="Control socket of the userspace VTEP daemon (`netweave vtep "
    "--vtep-ip`); default /run/netweave-vtep-<vtep ip>.sock.",
)
@click.option(
    "--vm-netns-prefix",
    help="Ports without a namespace in their binding profile get their device "
    "in a namespace <prefix><port name>, created by the agent.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log what the agent does.")
def agent_cmd(
    *,
    controller_url: str,
    chassis: str,
    vtep_ip: str,
    datapath: str,
    underlay_mtu: int,
    vtep_socket: str | None,
    vm_netns_prefix: str | None,
    verbose: bool,
) -> None:
    """Run this host's agent: register the chassis, keep the datapath equal to the controller's view."""
    import ipaddress  # noqa: PLC0415 - only this command needs them
    import signal  # noqa: PLC0415

    from netweave.agent.agent import Agent  # noqa: PLC0415
    from netweave.agent.client import ControllerClient  # noqa: PLC0415
    from netweave.agent.drivers import Driver, KernelDriver, UserspaceDriver  # noqa: PLC0415
    from netweave.vtep.daemon import default_control_socket  # noqa: PLC0415

    try:
        ipaddress.ip_address(vtep_ip)
    except ValueError:
        raise UsageFail(f"--vtep-ip {vtep_ip!r} is not an IP address") from None
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        client = ControllerClient(controller_url, chassis)
    except ValueError as exc:
        raise UsageFail(str(exc)) from None
    driver: Driver
    if datapath == "kernel":
        driver = KernelDriver(vtep_ip, underlay_mtu=underlay_mtu)
    else:
        driver = UserspaceDriver(vtep_socket or default_control_socket(vtep_ip))
    agent = Agent(
        client,
        driver,
        vtep_ip=vtep_ip,
        vm_netns_prefix=vm_netns_prefix,
        on_ready=lambda: click.echo(f"netweave agent {chassis}: ready, datapath {datapath}"),
    )

    def stop(*_: object) -> None:
        # the agent owns nothing that needs tearing down (the datapath keeps forwarding without it), so
        # leave at once, also from the middle of a long-poll
        agent.stop()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run()


app.add_command(lab)


def main(argv: list[str] | None = None) -> None:
    """Entry point: click's errors become one line on stderr with click's exit code."""
    try:
        rv = app.main(args=argv, prog_name="netweave", standalone_mode=False)
    except click.ClickException as exc:
        no_args = getattr(click.exceptions, "NoArgsIsHelpError", None)
        if no_args is not None and isinstance(exc, no_args):  # bare `netweave`: show help, not an error
            click.echo(exc.format_message())
            sys.exit(0)
        click.echo(f"netweave: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("netweave: interrupted", err=True)
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
