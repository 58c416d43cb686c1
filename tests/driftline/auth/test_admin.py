"""The admin key `driftline up` creates on first start: saved with mode 0600, reused after."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from driftline.auth.admin import AdminKeyError, admin_key_path, ensure_admin_key
from driftline.auth.keys import KeyVerifier
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.store import migrate
from driftline.store.keys import KeyStore


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    migrate.upgrade(settings.store_url)
    return settings


def test_first_start_issues_an_admin_key_readable_only_by_its_owner(settings: Settings) -> None:
    key = ensure_admin_key(settings)
    path = admin_key_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == key + "\n"
    store = KeyStore.from_settings(settings)
    try:
        principal = KeyVerifier(store).verify(key)
    finally:
        store.close()
    assert (principal.name, principal.scopes) == ("admin", {Scope.ADMIN})
    assert ensure_admin_key(settings) == key  # later starts reuse it
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".admin")] == []


def test_a_store_that_was_reset_gets_a_new_admin_key(settings: Settings) -> None:
    first = ensure_admin_key(settings)
    migrate.downgrade(settings.store_url, "base")
    migrate.upgrade(settings.store_url)
    second = ensure_admin_key(settings)
    assert second != first
    assert admin_key_path(settings).read_text().strip() == second


def test_a_key_file_others_can_read_is_refused(settings: Settings) -> None:
    ensure_admin_key(settings)
    os.chmod(admin_key_path(settings), 0o644)
    with pytest.raises(AdminKeyError, match="chmod 600"):
        ensure_admin_key(settings)


def test_a_revoked_or_lost_admin_key_needs_a_decision(settings: Settings) -> None:
    ensure_admin_key(settings)
    store = KeyStore.from_settings(settings)
    try:
        store.revoke("admin", datetime.now(UTC))
        with pytest.raises(AdminKeyError, match="was revoked"):
            ensure_admin_key(settings, store)
        admin_key_path(settings).unlink()
        with pytest.raises(AdminKeyError, match="keys create NAME --scope admin"):
            ensure_admin_key(settings, store)
    finally:
        store.close()
