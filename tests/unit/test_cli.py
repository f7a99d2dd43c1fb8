"""`netweave encap overhead`: output shapes and one-line errors with a non-zero exit."""

import json
import subprocess
import sys

import pytest

from netweave.packet import overhead_table


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "netweave.cli", *args], capture_output=True, text=True,
                          timeout=60, check=False)


def test_json_output_is_the_computed_table() -> None:
    r = run("encap", "overhead", "--underlay-mtu", "9000", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert {tuple(sorted(row)) for row in rows} == {("encap", "inner_mtu", "overhead_bytes", "underlay")}
    expected = [(t.encap, t.underlay, t.overhead_bytes, t.inner_mtu) for t in overhead_table(9000)]
    assert [(x["encap"], x["underlay"], x["overhead_bytes"], x["inner_mtu"]) for x in rows] == expected
    assert {"encap": "vxlan", "underlay": "ipv4", "overhead_bytes": 50, "inner_mtu": 8950} in rows


def test_table_output() -> None:
    r = run("encap", "overhead")
    assert r.returncode == 0
    assert "vxlan" in r.stdout and "1450" in r.stdout and "1430" in r.stdout and "stt" in r.stdout


@pytest.mark.parametrize("args", [
    ["encap", "overhead", "--underlay-mtu", "abc"],
    ["encap", "overhead", "--underlay-mtu", "20"],
    ["encap", "overhead", "--geneve-option-bytes", "6"],
    ["encap", "overhead", "--no-such-flag"],
    ["no-such-command"],
])
def test_bad_input_is_one_line_on_stderr_and_nonzero(args: list[str]) -> None:
    r = run(*args)
    assert r.returncode != 0
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netweave: error:"), r.stderr
