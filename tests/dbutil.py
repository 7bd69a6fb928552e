"""Database fixtures for the storage and job tests.

Names are prefixed (``storage_``, ``pg_``) so they do not clash with fixtures of the shared
conftest.py.

- ``storage_url`` / ``storage_db``: run a test on both backends: a fresh, migrated SQLite file
  per test, and the session's PostgreSQL database, emptied before each test (marked
  ``postgres``);
- ``pg_fresh_url``: an empty PostgreSQL database for one test (migration tests);
- ``pg_server_url`` / ``pg_session_url``: the server, and a throwaway database created on it for
  this test session and dropped afterwards. The server is 127.0.0.1:5432 as user postgres or
  root (``CAGUL_TEST_PG_URL`` overrides it); tests are skipped, with the reason, when none
  answers.

Test modules load these with ``pytest_plugins = ["tests.dbutil"]``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import storage

_DEFAULT_SERVERS = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
_pg_probe: tuple[str | None, str] | None = None


def pg_server() -> tuple[str | None, str]:
    """(admin URL, "") of a PostgreSQL server that answers, else (None, why not)."""
    global _pg_probe
    if _pg_probe is not None:
        return _pg_probe
    candidates = [os.environ["CAGUL_TEST_PG_URL"]] if os.environ.get("CAGUL_TEST_PG_URL") else []
    errors = []
    for url in candidates or list(_DEFAULT_SERVERS):
        url = storage.resolve_url(url)
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            _pg_probe = (url, "")
            return _pg_probe
        except Exception as exc:  # any failure means "no usable server"
            errors.append(f"{make_url(url).render_as_string()}: {type(exc).__name__}")
        finally:
            engine.dispose()
    _pg_probe = (None, "no PostgreSQL server answers (" + "; ".join(errors) + ")")
    return _pg_probe


@contextmanager
def temporary_pg_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``admin_url``; dropped (even if in use) after."""
    name = f"cagul_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def truncate_all(url: str) -> None:
    tables = ", ".join(t.name for t in storage.Base.metadata.sorted_tables)
    engine = storage.make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    url, reason = pg_server()
    if url is None:
        pytest.skip(reason)
    return url


@pytest.fixture(scope="session")
def pg_session_url(pg_server_url: str) -> Iterator[str]:
    with temporary_pg_database(pg_server_url) as url:
        storage.upgrade(url)
        yield url


@pytest.fixture
def pg_fresh_url(pg_server_url: str) -> Iterator[str]:
    """An empty (never migrated) PostgreSQL database for one test."""
    with temporary_pg_database(pg_server_url) as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'cagul.sqlite'}"
        storage.upgrade(url)
        return url
    url = request.getfixturevalue("pg_session_url")
    truncate_all(url)
    return url


@pytest.fixture
def storage_db(storage_url: str) -> Iterator[storage.Database]:
    database = storage.connect(storage_url)
    yield database
    database.dispose()
