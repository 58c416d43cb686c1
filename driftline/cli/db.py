"""`driftline db`: migrate the store up or down."""

from __future__ import annotations

import click

from driftline.config import Settings
from driftline.store import migrate
from driftline.store.engine import create_engine


@click.group()
def db() -> None:
    """Manage the store's schema (Alembic migrations).

    \b
    Examples:
      driftline db upgrade
      driftline db current
    """


@db.command()
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the store up to REVISION (default: head)."""
    settings = Settings()
    if settings.store.database_url is None:
        settings.ensure_home()
    migrate.upgrade(settings.store_url, revision)
    click.echo(f"store at revision {_current(settings.store_url)}")


@db.command()
@click.argument("revision", default="-1")
def downgrade(revision: str) -> None:
    """Migrate the store down to REVISION (default: one step; `base` drops every table)."""
    settings = Settings()
    migrate.downgrade(settings.store_url, revision)
    click.echo(f"store at revision {_current(settings.store_url)}")


@db.command()
def current() -> None:
    """Print the store's revision and the newest one this code ships."""
    settings = Settings()
    click.echo(f"current {_current(settings.store_url)} head {migrate.head_revision()}")


def _current(url: str) -> str:
    engine = create_engine(url)
    try:
        return migrate.current_revision(engine) or "base"
    finally:
        engine.dispose()
