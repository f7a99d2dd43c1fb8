"""netns tests need root and iproute2; every test gets its own Topology, closed in a finalizer."""

import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from netweave.lab import state as lab_state

from .topo import Topology, free_port

Lab = Callable[[dict[str, Any]], tuple[str, Path]]

pytestmark = pytest.mark.netns


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/netns" in str(item.fspath):
            item.add_marker(pytest.mark.netns)


@pytest.fixture
def topo() -> Iterator[Topology]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    t = Topology()
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def topo6() -> Iterator[Topology]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2")
    t = Topology(v6=True)
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """Write a lab file with a fresh name and port; every lab made here is taken down afterwards."""
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "ping", "nsenter")):
        pytest.skip("needs root, iproute2, iputils-ping and nsenter")
    names: list[str] = []

    def make(doc: dict[str, Any]) -> tuple[str, Path]:
        name = "t" + secrets.token_hex(3)
        names.append(name)
        doc = {**doc, "name": name, "api": {"listen": f"127.0.0.1:{free_port()}"}}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return name, path

    try:
        yield make
    finally:
        for name in names:
            lab_state.down(name)
