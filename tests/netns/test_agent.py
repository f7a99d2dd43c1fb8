"""Agents and the controller's views end to end: ports wired from the API, status, restarts."""

from collections.abc import Iterator

import pytest

from .cluster import Cluster
from .topo import Topology


@pytest.fixture
def cluster(topo: Topology) -> Iterator[Cluster]:
    c = Cluster(topo)
    try:
        yield c
    finally:
        c.api.close()


def test_ports_from_the_api_are_wired_and_reach_each_other(cluster: Cluster) -> None:
    for i in (1, 2):
        cluster.add_host(f"h{i}", i)
    net = cluster.network("web", "10.1.0.0/24")
    a = cluster.vm("va", net, "h1", "10.1.0.11")
    b = cluster.vm("vb", net, "h2", "10.1.0.12")
    assert cluster.topo.ping(a["netns"], "10.1.0.12", count=2)
    assert cluster.topo.ping(b["netns"], "10.1.0.11", count=2)
