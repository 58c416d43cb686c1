"""The admin key `driftline up` creates on first start, kept in `home` with mode 0600."""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Protocol

from driftline.auth.keys import KeyRepository, hash_key, issue_key
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.store.keys import KeyStore, StoredKey

ADMIN_KEY_NAME = "admin"
ADMIN_KEY_FILE = "admin.key"


class AdminKeyStore(KeyRepository, Protocol):
    """What the admin key needs of the key store."""

    def by_name(self, name: str) -> StoredKey | None: ...


class AdminKeyError(RuntimeError):
    """The saved admin key no longer works and cannot be replaced without a decision."""


def admin_key_path(settings: Settings) -> Path:
    """Where the admin key is kept."""
    return settings.home / ADMIN_KEY_FILE


def ensure_admin_key(settings: Settings, store: AdminKeyStore | None = None) -> str:
    """The admin key saved in `home`, issuing one on first start (or after the store was reset).

    `store` defaults to the configured key store, which must be migrated already.
    """
    if store is None:
        own = KeyStore.from_settings(settings)
        try:
            return ensure_admin_key(settings, own)
        finally:
            own.close()
    path = admin_key_path(settings)
    stored = store.by_name(ADMIN_KEY_NAME)
    if path.exists():
        _check_private(path)
        key = path.read_text().strip()
        if stored is not None and hmac.compare_digest(stored.key_hash, hash_key(key)):
            if stored.revoked_at is not None:
                raise AdminKeyError(f"the admin key in {path} was revoked; remove the file")
            return key
        if stored is not None:
            raise AdminKeyError(f"{path} does not hold the store's admin key")
    elif stored is not None:
        raise AdminKeyError(
            f"the store has an admin key but {path} is missing; create another admin key with "
            "`driftline keys create NAME --scope admin`"
        )
    issued = issue_key(store, ADMIN_KEY_NAME, frozenset({Scope.ADMIN}))
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
