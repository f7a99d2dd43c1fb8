"""API tests run against a fresh store each, once on SQLite (in a temp dir) and once on PostgreSQL.

For PostgreSQL the session starts its own throwaway cluster with Debian's `postgresql` binaries
(scripts/install-system-deps installs them): listening only on 127.0.0.1 on a free port, trust auth,
run as the unprivileged `postgres` user when we are root, and stopped and removed at the end. Each test
gets a database of its own in that cluster.
"""

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from netweave.controller.api import create_app
from netweave.controller.store import Store

PG_USER = "postgres"


@dataclass(frozen=True)
class PgCluster:
    host: str
    port: int

    def admin_conninfo(self) -> str:
        return f"host={self.host} port={self.port} user={PG_USER} dbname=postgres"

    def url(self, dbname: str) -> str:
        return f"postgresql+psycopg://{PG_USER}@{self.host}:{self.port}/{dbname}"


def _pg_bindir() -> Path | None:
    """The newest Debian PostgreSQL version directory that has both initdb and pg_ctl."""
    candidates = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        p = Path(d)
        if (p / "initdb").is_file() and (p / "pg_ctl").is_file():
            version = p.parent.name
            candidates.append((int(version) if version.isdigit() else 0, p))
    return max(candidates)[1] if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin: "
            "run scripts/install-system-deps"
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed: pip install -e '.[test]'")

    as_root = os.geteuid() == 0
    prefix: list[str] = []
    if as_root:
        try:
            import pwd

            pw = pwd.getpwnam(PG_USER)
        except KeyError:
            pytest.skip(f"running as root and there is no {PG_USER!r} OS user to run initdb as")
        prefix = ["runuser", "-u", PG_USER, "--"]

    base = Path(tempfile.mkdtemp(prefix="netweave-pg-"))
    data, sockdir, log = base / "data", base / "sock", base / "postgres.log"
    sockdir.mkdir()
    if as_root:
        for p in (base, sockdir):
            os.chown(p, pw.pw_uid, pw.pw_gid)

    def run(*args: str) -> None:
        # cwd=base: the postgres user may not be allowed into the caller's working directory.
        r = subprocess.run(
            [*prefix, *args], check=False, cwd=base, capture_output=True, text=True, timeout=120
        )
        if r.returncode != 0:
            logtext = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n{logtext}")

    try:
        run(
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            PG_USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        opts = (
            f"-p {{port}} -k {sockdir} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        for attempt in range(3):  # the free port can be taken between probing and binding
            port = _free_port()
            try:
                run(
                    str(bindir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    opts.format(port=port),
                )
                break
            except RuntimeError:
                if attempt == 2 or (data / "postmaster.pid").exists():
                    raise
        yield PgCluster("127.0.0.1", port)
    finally:
        # Stop whatever came up, even if the start itself reported failure (e.g. it timed out waiting).
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(data)],
                cwd=base,
                capture_output=True,
                timeout=120,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'controller.db'}")
        s.upgrade()
        yield s
        s.engine.dispose()
        return

    import psycopg

    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    dbname = f"netweave_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    s = Store(cluster.url(dbname))
    try:
        s.upgrade()
        yield s
    finally:
        s.engine.dispose()
        with psycopg.connect(cluster.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store)) as c:
        yield c
