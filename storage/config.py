"""Where the database lives: resolving the URL from arguments and the environment.

Order: an explicit URL, then ``DATABASE_URL`` (PostgreSQL for shared, multi-host deployments),
then a SQLite file at ``CAGUL_DB`` or ``<repo>/.cagul/cagul.sqlite`` (single host, zero setup).
PostgreSQL URLs are normalised to the psycopg 3 driver, because that is the driver we ship.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = REPO_ROOT / ".cagul" / "cagul.sqlite"


def default_sqlite_path() -> Path:
    """The SQLite file used when no ``DATABASE_URL`` is set (``CAGUL_DB`` overrides it)."""
    env = os.environ.get("CAGUL_DB")
    return Path(env).expanduser().resolve() if env else DEFAULT_SQLITE_PATH


def normalize_url(url: str) -> str:
    """Point bare ``postgres://`` / ``postgresql://`` URLs at psycopg 3 (SQLAlchemy's default
    PostgreSQL driver is psycopg2, which is not installed)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def resolve_url(url: str | None = None) -> str:
    """The database URL to use: ``url``, else ``DATABASE_URL``, else the default SQLite file."""
    if url:
        return normalize_url(url)
    env = os.environ.get("DATABASE_URL")
    if env:
        return normalize_url(env)
    return f"sqlite:///{default_sqlite_path()}"
