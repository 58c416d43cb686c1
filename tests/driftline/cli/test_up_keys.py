"""`driftline up`'s keys: an admin key for the user and one per own client, each 0600, reused."""

from __future__ import annotations

from pathlib import Path

from driftline.auth.keys import KeyVerifier
from driftline.auth.scopes import Scope
from driftline.cli.up import UpKeys
from driftline.config import Settings
from driftline.store import migrate
from driftline.store.keys import KeyStore


def test_up_issues_its_keys_once_with_the_scopes_its_clients_need(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    migrate.upgrade(settings.store_url)
    first = UpKeys.ensure(settings)
    assert UpKeys.ensure(settings) == first
    for name in ("admin", "up-stream", "up-controller"):
        assert (settings.home / f"{name}.key").stat().st_mode & 0o777 == 0o600
    store = KeyStore.from_settings(settings)
    verify = KeyVerifier(store, ttl_s=0).verify
    assert verify(first.admin).scopes == frozenset({Scope.ADMIN})
    assert verify(first.stream).scopes == frozenset({Scope.STREAM})
    assert verify(first.controller).scopes == frozenset({Scope.READ})
    store.close()
