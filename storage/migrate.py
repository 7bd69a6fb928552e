"""Schema migrations: ``upgrade(url)`` brings a database to the newest revision.

The app and every worker call it on start, so several processes may call it at once. We
serialise them on the database itself: a transaction-scoped advisory lock on PostgreSQL, a
``BEGIN IMMEDIATE`` transaction on SQLite (DDL is transactional on both). The loser of the race
waits, then finds the schema already at head and does nothing.

SQLite migrations run with foreign keys off, because batch mode rebuilds tables (copy, drop,
rename), which the foreign-key checks would block or cascade; ``PRAGMA foreign_key_check``
afterwards makes sure the rebuilt tables still agree.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from storage.config import resolve_url
from storage.engine import make_engine
from storage.errors import MigrationError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Arbitrary constant key for pg_advisory_xact_lock: "cagul" in ASCII.
_PG_LOCK_KEY = 0x636167756C


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise MigrationError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def current_revision(url: str | None = None) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str | None = None, revision: str = "head") -> str:
    """Migrate the database at ``url`` (default: ``DATABASE_URL`` or the SQLite file) to
    ``revision``; safe to call from several processes at once. Returns the resulting revision."""
    url = resolve_url(url)
    engine = make_engine(url, foreign_keys=False)
    cfg = _config()
    try:
        with engine.begin() as conn:  # BEGIN IMMEDIATE on SQLite: the migration lock
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            if conn.dialect.name == "sqlite":
                problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if problems:
                    raise MigrationError(f"foreign key violations after migration: {problems}")
            return MigrationContext.configure(conn).get_current_revision() or ""
    except MigrationError:
        raise
    except Exception as exc:  # keep the cause, but give callers one type to catch
        raise MigrationError(f"could not migrate {engine.url!r}: {exc}") from exc
    finally:
        engine.dispose()
