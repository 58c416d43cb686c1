"""Alembic environment: migrates the connection or URL that driftline.store.migrate passes in."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from driftline.store.migrate import include_name
from driftline.store.tables import metadata

config = context.config


def run_migrations_online() -> None:
    """Migrate over a live connection; SQLite gets batch mode so ALTERs work there too."""
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = sa.create_engine(
            config.get_main_option("sqlalchemy.url") or "", poolclass=sa.NullPool
        )
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
