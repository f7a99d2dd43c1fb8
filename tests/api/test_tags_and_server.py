"""Neutron's tag API and tag filters; the controller's Unix socket and command-line errors."""

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from .test_networks import create, error


def test_tag_api_on_a_network(client: TestClient) -> None:
    net = create(client)
    base = f"/v2.0/networks/{net['id']}/tags"
    assert client.put(base, json={"tags": ["blue", "prod"]}).json() == {"tags": ["blue", "prod"]}
    assert client.put(f"{base}/red").status_code == 201
    assert client.get(base).json() == {"tags": ["blue", "prod", "red"]}
    assert client.get(f"{base}/red").status_code == 204
    error(client.get(f"{base}/green"), 404)
    assert client.delete(f"{base}/prod").status_code == 204
    error(client.delete(f"{base}/prod"), 404)
    error(client.put(base, json={"tags": ["a,b"]}), 400)
    error(client.put(base, json={"labels": []}), 400)
    shown = client.get(f"/v2.0/networks/{net['id']}").json()["network"]
    assert shown["tags"] == ["blue", "red"] and shown["revision_number"] == 3
    assert client.delete(base).status_code == 204
    assert client.get(base).json() == {"tags": []}
    error(client.get("/v2.0/networks/nope/tags"), 404)


def test_tag_filters(client: TestClient) -> None:
    a = create(client, name="a", tags=["x", "y"])
    b = create(client, name="b", tags=["y"])
    c = create(client, name="c")

    def names(q: str) -> set[str]:
        return {n["name"] for n in client.get(f"/v2.0/networks?{q}").json()["networks"]}

    assert names("tags=x,y") == {"a"}
    assert names("tags=y") == {"a", "b"}
    assert names("tags-any=x") == {"a"}
    assert names("not-tags=x,y") == {"b", "c"}
    assert names("not-tags-any=y") == {"c"}
    assert {a["id"], b["id"], c["id"]}


def test_tags_on_other_resources(client: TestClient) -> None:
    r = client.post("/v2.0/routers", json={"router": {}}).json()["router"]
    assert client.put(f"/v2.0/routers/{r['id']}/tags/edge").status_code == 201
    assert client.get("/v2.0/routers?tags=edge").json()["routers"][0]["id"] == r["id"]
    q = client.post("/v2.0/qos/policies", json={"policy": {}}).json()["policy"]
    assert client.put(f"/v2.0/qos/policies/{q['id']}/tags", json={"tags": ["gold"]}).status_code == 200


def test_unix_socket_and_cli_errors(tmp_path: Path) -> None:
    netweave = str(Path(sys.executable).parent / "netweave")
    sock = tmp_path / "api.sock"
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            netweave,
            "controller",
            "--db",
            f"sqlite:///{tmp_path / 'c.db'}",
            "--listen",
            f"127.0.0.1:{port}",
            "--unix-socket",
            str(sock),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.05)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)), base_url="http://agent") as c:
            assert c.get("/").json()["versions"][0]["status"] == "CURRENT"
            assert c.post("/v2.0/networks", json={"network": {"name": "via-uds"}}).status_code == 201
        assert httpx.get(f"http://127.0.0.1:{port}/v2.0/networks").json()["networks"][0]["name"] == "via-uds"
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stderr:
            proc.stderr.close()
    bad = subprocess.run(
        [netweave, "controller", "--listen", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    bad_db = subprocess.run(
        [netweave, "controller", "--db", "nosuchdriver://x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad_db.returncode != 0 and len(bad_db.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("path", ["/v2.0/networks/x/tags", "/v2.0/ports/x/tags/t"])
def test_tags_of_missing_resources(client: TestClient, path: str) -> None:
    error(client.get(path), 404)
