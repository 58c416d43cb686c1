"""Alembic migrations driven from code: `driftline db upgrade` and `driftline db downgrade`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from driftline.store.partitions import is_partition

# Alembic loads in the functions that migrate: reading the store (`driftline status`) never
# needs it, and it costs as much to import as SQLAlchemy itself.
if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.config import Config
    from alembic.runtime.environment import NameFilterParentNames, NameFilterType

MIGRATIONS = Path(__file__).with_name("migrations")


def include_name(name: str | None, type_: NameFilterType, _parents: NameFilterParentNames) -> bool:
    """Alembic's filter for comparing schemas: the metadata describes the predictions table, not
    the day partitions PostgreSQL adds to it as time goes by."""
    return not (type_ == "table" and name is not None and is_partition(name))


def alembic_config(url: str) -> Config:
    """An Alembic config for the store at `url`, with no alembic.ini on disk."""
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser treats % as interpolation; URLs may carry percent-encoded passwords.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the store at `url` up to `revision`."""
    from alembic import command  # noqa: PLC0415

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "-1") -> None:
    """Migrate the store at `url` down to `revision` (``base`` removes every table)."""
    from alembic import command  # noqa: PLC0415

    command.downgrade(alembic_config(url), revision)


def current_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at, or None before the first migration."""
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest revision this code ships."""
    from alembic.script import ScriptDirectory  # noqa: PLC0415

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
