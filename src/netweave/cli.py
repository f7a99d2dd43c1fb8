"""The `netweave` command line (click + rich).

Every failure is one line on stderr and a non-zero exit (DESIGN.md conventions); tracebacks are for bugs.
"""

import json
import sys

import click
from rich.console import Console
from rich.table import Table

from netweave.packet import GeneveOption, overhead_table


class UsageFail(click.UsageError):
    """A bad value the command itself found; reported like click's own usage errors."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def app() -> None:
    """NetWeave: tenant networks over any routed underlay."""


@app.group("encap")
def encap_group() -> None:
    """Encapsulation facts computed from the codecs."""


@encap_group.command("overhead")
@click.option("--underlay-mtu", type=click.IntRange(68, 65535), default=1500, show_default=True,
              help="IP MTU of the underlay links.")
@click.option("--geneve-option-bytes", type=click.IntRange(0, 124), default=0, show_default=True,
              help="Bytes of Geneve option data carried (a multiple of 4).")
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
        click.echo(json.dumps([{"encap": r.encap, "underlay": r.underlay, "overhead_bytes": r.overhead_bytes,
                                "inner_mtu": r.inner_mtu} for r in rows], indent=2))
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
