"""The `api_keys` table: stored key hashes, their scopes, expiry and revocation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from driftline.config import Settings
from driftline.store.engine import create_engine
from driftline.store.tables import api_keys


class DuplicateKeyNameError(ValueError):
    """A key of that name exists already (revoked ones too: names are never reused)."""


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One issued key as stored: its public id and hash, never the key itself."""

    name: str
    key_id: str
    key_hash: str
    scopes: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


class KeyStore:
    """Reads and writes `api_keys` through its own engine."""

    def __init__(self, url: str, *, pool_size: int = 0) -> None:
        # Unpooled: lookups are the verifier's cache misses, seconds apart, and a guard's store
        # then holds no connection open for as long as its application lives.
        self.engine = create_engine(url, pool_size=pool_size)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyStore:
        """A key store on the configured store URL (SQLite under `home` by default)."""
        if settings.store.database_url is None:
            settings.ensure_home()
        return cls(settings.store_url)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def add(self, key: StoredKey) -> None:
        """Store `key`; a name already taken raises `DuplicateKeyNameError`."""
        row = {field: getattr(key, field) for field in StoredKey.__slots__}
        try:
            with self.engine.begin() as conn:
                conn.execute(api_keys.insert().values(row))
        except sa.exc.IntegrityError:
            raise DuplicateKeyNameError(f"a key named {key.name!r} exists already") from None

    def by_key_id(self, key_id: str) -> StoredKey | None:
        """The key with public id `key_id`, or None."""
        query = sa.select(api_keys).where(api_keys.c.key_id == key_id)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else StoredKey(**row._mapping)

    def by_name(self, name: str) -> StoredKey | None:
        """The key named `name`, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(api_keys).where(api_keys.c.name == name)).first()
        return None if row is None else StoredKey(**row._mapping)

    def all(self) -> list[StoredKey]:
        """Every key, oldest first."""
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.name)
        with self.engine.connect() as conn:
            return [StoredKey(**row._mapping) for row in conn.execute(query)]

    def revoke(self, name: str, at: datetime) -> bool:
        """Mark the key `name` revoked at `at`; False when no unrevoked key has that name."""
        update = (
            api_keys.update()
            .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        with self.engine.begin() as conn:
            return conn.execute(update).rowcount == 1
