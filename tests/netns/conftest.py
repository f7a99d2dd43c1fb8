"""netns tests need root and iproute2; every test gets its own Topology, closed in a finalizer."""

import os
import shutil
from collections.abc import Iterator

import pytest

from .topo import Topology

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
