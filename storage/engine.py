"""Engines and sessions: SQLite tuned for several processes, PostgreSQL through psycopg 3.

SQLite settings, applied to every new connection:
- WAL journal, so readers (the UI polling progress) never block the writer (a worker);
- ``busy_timeout`` 30 s, so a writer waits for the lock instead of failing at once;
- foreign keys on (SQLite leaves them off by default);
- ``synchronous=NORMAL``: in WAL mode a commit survives a process crash; only a power cut can
  lose the last transactions, which is the usual trade-off for WAL.

SQLite transactions: Python's sqlite3 driver issues a deferred ``BEGIN`` on its own. A deferred
transaction that reads and then writes can fail with "database is locked" at once when another
process wrote in between, and ``busy_timeout`` cannot help there. We therefore take over BEGIN
(SQLAlchemy's documented recipe) and start transactions ``BEGIN IMMEDIATE`` by default, so the
write lock is taken (or waited for) up front. Read-only work can ask for a deferred transaction
with ``Database.read()`` so that polling never waits for a busy writer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from storage.config import resolve_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option naming the BEGIN mode of a SQLite transaction ("IMMEDIATE" or "DEFERRED").
SQLITE_BEGIN_OPTION = "cagul_sqlite_begin"


def _install_sqlite_hooks(engine: Engine, *, foreign_keys: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Driver-level autocommit: SQLAlchemy's "begin" hook below emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # busy_timeout first: switching to WAL needs a lock another process may hold.
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str | None = None, *, foreign_keys: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url`` (resolved like :func:`storage.config.resolve_url`).

    ``foreign_keys=False`` is only for SQLite schema migrations, which rebuild tables.
    """
    url = resolve_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _install_sqlite_hooks(engine, foreign_keys=foreign_keys)
        return engine
    # pre_ping: long-lived workers outlive server restarts and idle-connection timeouts.
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


@dataclass
class Database:
    """One database: its URL, engine and session factory.

    ``transaction()`` is the usual way in: a session whose work is committed when the block ends
    and rolled back when it raises. Objects stay usable after the commit (no expiry).
    """

    url: str
    engine: Engine
    sessions: sessionmaker[Session]

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A read-write unit of work (``BEGIN IMMEDIATE`` on SQLite)."""
        with self.sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work that never waits for a SQLite writer. Nothing is committed;
        closing the session ends its transaction, and the loaded objects stay readable."""
        bind = self.engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
        with Session(bind=bind, expire_on_commit=False) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
