"""`netweave lab up|test|status|down [FILE]`: the click group that `netweave.cli` registers.

FILE names the lab (its `name:`); without it, the built-in default lab `demo`. `test`, `status` and
`down` act on what state.json recorded for that name, so they see the lab as it was built even if the
file changed since. Errors are LabError/SpecError, turned into one `netweave: error: ...` line.
"""

import os
import subprocess
import sys

import click
from pyroute2.netlink.exceptions import NetlinkError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from netweave.lab import build, ecmp, matrix, netns, spec
from netweave.lab.api import Api, Endpoint, discover
from netweave.lab.errors import LabError
from netweave.lab.state import State, down, leftovers, run_dir

FILE = click.argument("file", required=False, type=click.Path(exists=True, dir_okay=False))
TEST_ACTIVE_TIMEOUT_S = 30.0


def _need_root() -> None:
    if os.geteuid() != 0:
        raise click.ClickException("netweave lab needs root (it creates network namespaces)")


def _lab(file: str | None) -> spec.Lab:
    try:
        return spec.load(file)
    except LabError as exc:
        raise click.ClickException(str(exc)) from None


def _cmd(verb: str, file: str | None) -> str:
    return f"netweave lab {verb}" + (f" {file}" if file else "")


def _running(lab: spec.Lab, file: str | None) -> State:
    state = State.load(lab.name)
    if state is None or not state.live():
        raise click.ClickException(f"lab {lab.name} is not up (run `{_cmd('up', file)}`)")
    return state


def _measure(lab: spec.Lab, state: State, *, quiet: bool) -> tuple[list[Endpoint], list[matrix.Pair]]:
    err = Console(stderr=True, quiet=quiet)
    with Api(state.api_url) as api, err.status("waiting for ports to be ACTIVE and addressed"):
        endpoints = build.prepare(api, lab, TEST_ACTIVE_TIMEOUT_S)
    return _ping_all(err, endpoints)


def _ping_all(err: Console, endpoints: list[Endpoint]) -> tuple[list[Endpoint], list[matrix.Pair]]:
    kept, skipped = matrix.measurable(endpoints)
    if skipped:
        err.print(f"left out (no fixed IP): {', '.join(e.name for e in skipped)}", soft_wrap=True)
    with err.status(f"pinging {len(kept) * (len(kept) - 1)} pairs"):
        return kept, matrix.measure(kept)


def _report(
    ctx: click.Context,
    lab: spec.Lab,
    endpoints: list[Endpoint],
    pairs: list[matrix.Pair],
    as_json: bool,
    *,
    split: ecmp.Split | None = None,
) -> None:
    if as_json:
        click.echo(matrix.as_json(lab.name, pairs, split.as_json() if split else None))
    else:
        matrix.render(Console(), lab.name, endpoints, pairs)
        if split is not None:
            ecmp.render(Console(), split)
    if matrix.mismatches(pairs):
        ctx.exit(1)


@click.group("lab")
def lab() -> None:
    """Whole topologies in network namespaces: underlay, hosts (vtep + agent), VMs and a controller."""


@lab.command("up")
@FILE
@click.option(
    "--datapath",
    type=click.Choice(["userspace", "kernel"]),
    help="Datapath of the hosts whose entry in the file does not say (default: userspace).",
)
@click.pass_context
def lab_up(ctx: click.Context, file: str | None, datapath: str | None) -> None:
    """Build the lab in FILE (default: the built-in demo lab), then print its connectivity matrix.

    Exit status 1 if any pair differs from what the lab expects. If the build fails midway it stops and
    leaves everything (and the logs) in place: `netweave lab down` removes it.
    """
    _need_root()
    the_lab = _lab(file).with_datapath(datapath)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=Console(stderr=True)) as progress:
            state, endpoints = build.up(the_lab, progress, _cmd("down", file))
    except build.BuildFailedError as exc:
        raise click.ClickException(f"{exc} (run `{_cmd('down', file)}` to clean up)") from None
    except LabError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.ClickException(f"interrupted (run `{_cmd('down', file)}` to clean up)") from None
    err = Console(stderr=True)
    err.print(
        f"lab {the_lab.name} is up: API {state.api_url} (openstack --os-auth-type none --os-endpoint "
        f"{state.api_url} ...), run dir {state.rundir}",
        soft_wrap=True,
    )
    endpoints, pairs = _ping_all(err, endpoints)
    _report(ctx, the_lab, endpoints, pairs, as_json=False)


@lab.command("test")
@FILE
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def lab_test(ctx: click.Context, file: str | None, as_json: bool) -> None:
    """Measure the connectivity matrix again, including ports made by hand on lab hosts.

    On a leaf-spine underlay, then the spine split: packets per spine during iperf3 -P 16 between two
    VMs of one network on hosts under different leaves."""
    _need_root()
    the_lab = _lab(file)
    state = _running(the_lab, file)
    recorded = spec.parse(state.spec)
    try:
        endpoints, pairs = _measure(recorded, state, quiet=as_json)
        split = None
        if recorded.leaf_spine:
            with Console(stderr=True, quiet=as_json).status(f"iperf3 -P {ecmp.STREAMS} across the spines"):
                split = ecmp.measure(recorded, endpoints)
    except (LabError, NetlinkError, OSError, subprocess.SubprocessError) as exc:
        raise click.ClickException(" ".join(str(exc).split())) from None
    _report(ctx, recorded, endpoints, pairs, as_json, split=split)


@lab.command("status")
@FILE
@click.pass_context
def lab_status(ctx: click.Context, file: str | None) -> None:
    """Processes, namespaces, chassis and ports of the lab; exit status 1 unless all is well."""
    the_lab = _lab(file)
    state = State.load(the_lab.name)
    console = Console()
    if state is None:
        what = "not up"
        if leftovers(the_lab.name):
            what = f"not up, but remains are left (run `{_cmd('down', file)}`)"
        console.print(f"lab {the_lab.name}: {what}")
        ctx.exit(1)
    healthy = True
    procs = Table(title=f"lab {the_lab.name} ({state.rundir})", title_justify="left")
    for col in ("process", "host", "pid", "state"):
        procs.add_column(col)
    live = {p.pid for p in state.live()}
    for p in state.procs:
        healthy &= p.pid in live
        procs.add_row(
            p.role, p.host or "-", str(p.pid), "[green]running[/]" if p.pid in live else "[red]gone[/]"
        )
    console.print(procs)
    missing = [n for n in state.namespaces if not netns.exists(n)]
    healthy &= not missing
    console.print(
        f"namespaces: {len(state.namespaces) - len(missing)} of {len(state.namespaces)} present"
        + (f" [red](missing: {', '.join(missing)})[/]" if missing else "")
    )
    recorded = spec.parse(state.spec)
    with Api(state.api_url) as api:
        if not api.answers():
            console.print(f"API {state.api_url}: [red]not answering[/]")
            ctx.exit(1)
        try:
            alive = api.agents_alive()
            endpoints = discover(api, recorded)
        except LabError as exc:
            raise click.ClickException(str(exc)) from None
    hosts = [h.name for h in recorded.hosts]
    healthy &= set(hosts) <= alive
    console.print(
        f"API {state.api_url}: answering; chassis alive: "
        + ", ".join(f"[green]{h}[/]" if h in alive else f"[red]{h} (not alive)[/]" for h in hosts)
    )
    ports = Table(title="ports on lab hosts", title_justify="left")
    for col in ("port", "host", "network", "tenant", "addresses", "status"):
        ports.add_column(col)
    for e in endpoints:
        healthy &= e.status == "ACTIVE"
        ports.add_row(
            e.name,
            e.host,
            e.network,
            e.tenant,
            " ".join(f"{ip}/{n}" for ip, n in e.addresses),
            f"[green]{e.status}[/]" if e.status == "ACTIVE" else f"[red]{e.status}[/]",
        )
    console.print(ports)
    if not healthy:
        ctx.exit(1)


@lab.command("down")
@FILE
def lab_down(file: str | None) -> None:
    """Remove every namespace, device and process of the lab, and its run dir. Safe to run twice, and
    after a crash or `kill -9` of the lab and its processes."""
    _need_root()
    the_lab = _lab(file)
    try:
        report = down(the_lab.name)
    except LabError as exc:
        raise click.ClickException(str(exc)) from None
    if not report.anything:
        click.echo(f"lab {the_lab.name}: nothing to remove")
        return
    rd = f" and {run_dir(the_lab.name)}" if report.rundir else ""
    click.echo(
        f"lab {the_lab.name}: stopped {report.processes} processes, "
        f"removed {report.namespaces} namespaces{rd}"
    )


def main(argv: list[str] | None = None) -> None:
    """`python -m netweave.lab.cli ...` = `netweave lab ...`, through netweave's own error handling."""
    from netweave.cli import app  # noqa: PLC0415  (netweave.cli will import this module)
    from netweave.cli import main as netweave_main  # noqa: PLC0415

    if "lab" not in app.commands:
        app.add_command(lab)
    netweave_main(["lab", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
