"""`driftline keys create | list | revoke`: the API keys Driftline issues."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import click
import sqlalchemy as sa

from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope, format_scopes, parse_scopes
from driftline.config import Settings
from driftline.store import migrate
from driftline.store.keys import DuplicateKeyNameError, KeyStore, StoredKey

T = TypeVar("T")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (shown once, stored only as a hash).

    \b
    Examples:
      driftline keys create ci --scope predict,read --expires 30d
      driftline keys list
      driftline keys revoke ci
    """


@keys.command()
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    required=True,
    help=f"Comma-separated scopes: {', '.join(s.value for s in Scope)} (admin implies all).",
)
@click.option("--expires", default=None, help="Lifetime such as 30d, 12h, 90m (default: never).")
@click.option("--json", "as_json", is_flag=True, help='Print {"name","key","scopes","expires"}.')
def create(name: str, scopes: str, expires: str | None, as_json: bool) -> None:
    """Issue a key NAME with --scope; the key is printed once and never again."""
    try:
        wanted = parse_scopes(scopes)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--scope") from None
    try:
        lifetime = None if expires is None else parse_duration(expires)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--expires") from None
    issued = _with_store(
        lambda store: issue_key(store, name, wanted, expires_in=lifetime),
    )
    expiry = _iso(issued.stored.expires_at)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "name": name,
                    "key": issued.key,
                    "scopes": sorted(s.value for s in wanted),
                    "expires": expiry,
                }
            )
        )
        return
    click.echo(issued.key)
    click.echo(
        f"key {name!r} ({format_scopes(wanted)}; expires {expiry or 'never'}): "
        "store it now, it is not shown again",
        err=True,
    )


@keys.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key.")
def list_keys(as_json: bool) -> None:
    """List keys with their scopes, expiry and state (never the keys themselves)."""
    found = _with_store(lambda store: store.all())
    now = datetime.now(UTC)
    for key in found:
        if as_json:
            click.echo(json.dumps(_describe(key, now)))
        else:
            click.echo(
                f"{key.name:<24} {_state(key, now):<8} {key.scopes:<40} "
                f"expires {_iso(key.expires_at) or 'never'}"
            )
    if not found and not as_json:
        click.echo("no keys yet: `driftline keys create NAME --scope SCOPE`")


@keys.command()
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke key NAME; every replica refuses it within DRIFTLINE_AUTH_KEY_CACHE_TTL_S."""
    if not _with_store(lambda store: store.revoke(name, datetime.now(UTC))):
        raise click.ClickException(f"no unrevoked key named {name!r}")
    click.echo(f"revoked {name!r}")


def parse_duration(text: str) -> timedelta:
    """`45s`, `30m`, `12h`, `30d` as a positive timedelta."""
    match = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", text)
    if not match or int(match[1]) == 0:
        raise ValueError(f"{text!r}: use a positive duration like 90m, 12h or 30d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def _with_store(action: Callable[[KeyStore], T]) -> T:
    settings = Settings()
    store = KeyStore.from_settings(settings)
    try:
        migrate.upgrade(settings.store_url)
        return action(store)
    except (DuplicateKeyNameError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    except sa.exc.SQLAlchemyError as error:
        line = str(error).splitlines()[0]
        raise click.ClickException(f"store unavailable: {line}") from None
    finally:
        store.close()


def _state(key: StoredKey, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def _describe(key: StoredKey, now: datetime) -> dict[str, object]:
    return {
        "name": key.name,
        "scopes": key.scopes.split(","),
        "state": _state(key, now),
        "created": _iso(key.created_at),
        "expires": _iso(key.expires_at),
        "revoked": _iso(key.revoked_at),
    }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds")
