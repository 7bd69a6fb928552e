"""Alembic environment for cagul-studio's schema.

:func:`storage.migrate.upgrade` hands us an open connection (already inside a locked transaction)
through ``config.attributes["connection"]``; the ``alembic`` command line gets one from the URL
resolved like the app's (``-x url=...``, else ``DATABASE_URL``, else the SQLite file).
SQLite runs in batch mode, because its ALTER TABLE cannot change or drop columns and constraints.
"""

from __future__ import annotations

from alembic import context

from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from storage.engine import make_engine

    engine = make_engine(context.get_x_argument(as_dictionary=True).get("url"), foreign_keys=False)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


if context.is_offline_mode():
    from storage.config import resolve_url

    context.configure(url=resolve_url(None), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
