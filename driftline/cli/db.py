"""`driftline db`: migrate the store up or down."""

from __future__ import annotations

import json

import click

from driftline.config import Settings
from driftline.store import Store, migrate
from driftline.store.engine import create_engine
from driftline.store.repository import retention_policy


@click.group()
def db() -> None:
    """Manage the store's schema (Alembic migrations).

    \b
    Examples:
      driftline db upgrade
      driftline db current --json
      driftline db prune
    """


JSON = click.option(
    "--json", "as_json", is_flag=True, help='Print {"revision", "head"} as one JSON document.'
)


@db.command()
@click.argument("revision", default="head")
@JSON
def upgrade(revision: str, as_json: bool) -> None:
    """Migrate the store up to REVISION (default: head)."""
    settings = Settings()
    if settings.store.database_url is None:
        settings.ensure_home()
    migrate.upgrade(settings.store_url, revision)
    _show(settings.store_url, as_json)


@db.command()
@click.argument("revision", default="-1")
@JSON
def downgrade(revision: str, as_json: bool) -> None:
    """Migrate the store down to REVISION (default: one step; `base` drops every table)."""
    settings = Settings()
    migrate.downgrade(settings.store_url, revision)
    _show(settings.store_url, as_json)


@db.command()
@JSON
def current(as_json: bool) -> None:
    """Print the store's revision and the newest one this code ships."""
    _show(Settings().store_url, as_json)


def _show(url: str, as_json: bool) -> None:
    revision, head = _current(url), migrate.head_revision()
    if as_json:
        click.echo(json.dumps({"revision": revision, "head": head}, indent=2))
    else:
        click.echo(f"store at revision {revision} (newest {head})")


@db.command()
def prune() -> None:
    """Delete predictions, drift reports and audit events older than their retention.

    On PostgreSQL, predictions are partitioned by UTC day: a day older than the limit is dropped
    whole (its rows counted first), and rows of the day the limit falls in are deleted.

    \b
    Limits (days): DRIFTLINE_PREDICTIONS_RETENTION_DAYS, DRIFTLINE_DRIFT_RETENTION_DAYS,
    DRIFTLINE_AUDIT_RETENTION_DAYS. The drift monitor also prunes once a day.
    """
    settings = Settings()
    store = Store.from_settings(settings)
    try:
        pruned = store.prune(retention_policy(settings))
    finally:
        store.close()
    counts = sorted(pruned.deleted.items())
    click.echo(", ".join(f"{table}: {count} deleted" for table, count in counts))
    if pruned.partitions_dropped:
        dropped = pruned.partitions_dropped
        click.echo(f"{len(dropped)} day partition(s) of predictions dropped: {', '.join(dropped)}")


def _current(url: str) -> str:
    engine = create_engine(url)
    try:
        return migrate.current_revision(engine) or "base"
    finally:
        engine.dispose()
