"""Opening the database: the engine (`storage.engine`) after, on request, the schema's
migrations (`storage.migrate`, which makes its own engine with `storage.engine`: so neither of
those two imports the other's caller)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import sessionmaker

from storage.config import resolve_url
from storage.engine import Database, make_engine


def connect(url: str | None = None, *, upgrade: bool = False, **engine_kwargs: Any) -> Database:
    """Open the database at ``url`` (default: ``DATABASE_URL`` or the SQLite file).

    ``upgrade=True`` first brings the schema to the newest migration, as the app and the worker
    do on start.
    """
    url = resolve_url(url)
    if upgrade:
        from storage.migrate import upgrade as upgrade_schema  # alembic: only when asked

        upgrade_schema(url)
    engine = make_engine(url, **engine_kwargs)
    return Database(url=url, engine=engine, sessions=sessionmaker(engine, expire_on_commit=False))
