"""Engine, sessions and migrations. SQLite by default (a file under the user's data directory),
PostgreSQL (`postgresql+psycopg://...`) for a shared store."""

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from netweave.controller.db import GlobalRevision

MIGRATIONS = Path(__file__).parent / "migrations"


def default_db_url() -> str:
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "netweave"
    base.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{base / 'controller.db'}"


class Store:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_db_url()
        kwargs: dict[str, Any] = {}
        if self.url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = create_engine(self.url, **kwargs)
        if self.url.startswith("sqlite"):
            # pysqlite's own transaction handling is switched off so that writers can BEGIN IMMEDIATE:
            # a deferred writer that read first and then tries to write loses to a concurrent writer
            # with "database is locked" at once instead of waiting (the SQLAlchemy pysqlite recipe)
            @event.listens_for(self.engine, "connect")
            def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.close()

            @event.listens_for(self.engine, "begin")
            def _sqlite_begin(conn: Any) -> None:
                immediate = conn.get_execution_options().get("netweave_write", False)
                conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._writers = sessionmaker(
            self.engine.execution_options(netweave_write=True), expire_on_commit=False
        )
        #: called after every committed write transaction with that session's `info` (which holds the
        #: new global revision and whatever the flush listeners collected)
        self.committed: list[Callable[[dict[str, Any]], None]] = []

    def on_flush(self, fn: Callable[[Session], None]) -> None:
        """Run `fn(session)` after each flush of a write transaction (to see what it changes)."""
        event.listen(self._writers, "after_flush", lambda session, _ctx: fn(session))

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (idempotent)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One request's writes: committed together with the global revision bump, or not at all."""
        with self._writers.begin() as session:
            yield session
        for fn in self.committed:
            fn(session.info)

    def revision(self, session: Session) -> int:
        row = session.get(GlobalRevision, 1)
        return row.value if row else 0

    def bump(self, session: Session) -> int:
        """Advance the global revision inside the caller's transaction (row-locked on PostgreSQL)."""
        row = session.execute(select(GlobalRevision).where(GlobalRevision.id == 1).with_for_update()).scalar()
        if row is None:
            row = GlobalRevision(id=1, value=0)
            session.add(row)
        row.value += 1
        session.info["revision"] = row.value
        return row.value
