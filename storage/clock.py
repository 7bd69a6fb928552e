"""Time in the database: an always-UTC column type and a ``db_now()`` SQL expression.

Queue decisions (is a heartbeat stale? may a retry run yet?) compare times written by different
worker hosts. Taking "now" from the database server, not from each host, removes clock skew
between hosts from those decisions. On SQLite the server is the local host anyway.

``db_now(offset_seconds)`` renders as
- PostgreSQL: ``statement_timestamp() + make_interval(secs => :offset)``
- SQLite: ``strftime('%Y-%m-%d %H:%M:%f000', 'now', :offset || ' seconds')``, which is the same
  text layout SQLAlchemy uses to store SQLite datetimes (microseconds, six digits), so stored
  values and ``db_now()`` compare correctly as strings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Float, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from storage.errors import NaiveDatetimeError


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned time-zone aware (SQLite has no zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise NaiveDatetimeError(f"naive datetime {value!r}: pass a UTC-aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The local clock in UTC, for values the ORM sets (creation times, audit times)."""
    return datetime.now(UTC)


class db_now(FunctionElement[datetime]):  # noqa: N801 - reads like a SQL function
    """The database server's current time plus ``offset_seconds`` (may be negative)."""

    type = UTCDateTime()
    inherit_cache = True

    def __init__(self, offset_seconds: float = 0.0):
        # Millisecond resolution is plenty for queue timing and keeps SQLite's modifier text
        # (CAST(x AS TEXT)) free of exponent notation.
        super().__init__(literal(round(float(offset_seconds), 3), Float()))


@compiles(db_now, "postgresql")
def _db_now_pg(element: db_now, compiler: Any, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"(statement_timestamp() + make_interval(secs => {offset}))"


@compiles(db_now, "sqlite")
def _db_now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now', CAST({offset} AS TEXT) || ' seconds')"
