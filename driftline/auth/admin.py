"""The keys `driftline up` creates on first start (admin, its own clients), kept in `home` 0600."""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Protocol

from driftline.auth.keys import KeyRepository, hash_key, issue_key
from driftline.auth.scopes import Scope, format_scopes
from driftline.config import Settings
from driftline.store.keys import KeyStore, StoredKey

ADMIN_KEY_NAME = "admin"


class AdminKeyStore(KeyRepository, Protocol):
    """What the admin key needs of the key store."""

    def by_name(self, name: str) -> StoredKey | None: ...


class AdminKeyError(RuntimeError):
    """The saved admin key no longer works and cannot be replaced without a decision."""


def admin_key_path(settings: Settings) -> Path:
    """Where the admin key is kept."""
    return key_path(settings, ADMIN_KEY_NAME)


def key_path(settings: Settings, name: str) -> Path:
    """Where the key named `name` that `driftline up` keeps for itself is saved."""
    return settings.home / f"{name}.key"


def ensure_admin_key(settings: Settings, store: AdminKeyStore | None = None) -> str:
    """The admin key saved in `home`, issuing one on first start (or after the store was reset).

    `store` defaults to the configured key store, which must be migrated already.
    """
    return ensure_saved_key(settings, ADMIN_KEY_NAME, frozenset({Scope.ADMIN}), store)


def ensure_saved_key(
    settings: Settings,
    name: str,
    scopes: frozenset[Scope],
    store: AdminKeyStore | None = None,
) -> str:
    """The key `name` saved in `home` (mode 0600), issued with `scopes` on first use.

    `driftline up` keeps one for itself and one per client it runs (stream, controller).
    """
    if store is None:
        own = KeyStore.from_settings(settings)
        try:
            return ensure_saved_key(settings, name, scopes, own)
        finally:
            own.close()
    path = key_path(settings, name)
    stored = store.by_name(name)
    if path.exists():
        _check_private(path)
        key = path.read_text().strip()
        if stored is not None and hmac.compare_digest(stored.key_hash, hash_key(key)):
            if stored.revoked_at is not None:
                raise AdminKeyError(f"the {name} key in {path} was revoked; remove the file")
            return key
        if stored is not None:
            raise AdminKeyError(f"{path} does not hold the store's {name} key")
    elif stored is not None:
        raise AdminKeyError(
            f"the store has a key named {name!r} but {path} is missing; create another key "
            f"with `driftline keys create NAME --scope {format_scopes(scopes)}`"
        )
    issued = issue_key(store, name, scopes)
    _write_private(path, issued.key)
    return issued.key


def _write_private(path: Path, key: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    # The mode is given at creation: the key is never readable by others, not even for the
    # moment between writing and a chmod.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.replace(partial, path)


def _check_private(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise AdminKeyError(
            f"{path} is readable by others (mode {mode:o}); `chmod 600 {path}` and retry"
        )
