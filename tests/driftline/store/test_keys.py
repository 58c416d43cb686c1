"""The `api_keys` table on PostgreSQL and SQLite: only a hash is stored, names are unique."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.store import Store
from driftline.store.keys import DuplicateKeyNameError, KeyStore


@pytest.fixture
def keys(store: Store) -> Iterator[KeyStore]:
    key_store = KeyStore(store.url)
    yield key_store
    key_store.close()


def test_the_row_holds_a_hash_and_never_the_key(keys: KeyStore) -> None:
    issued = issue_key(keys, "ci", frozenset({Scope.PREDICT, Scope.READ}))
    secret = issued.key.split("_", 2)[2]  # dl_<id>_<secret>; the secret may hold "_"
    with keys.engine.connect() as conn:
        rows = [dict(row._mapping) for row in conn.execute(sa.text("SELECT * FROM api_keys"))]
    assert len(rows) == 1
    (row,) = rows
    assert row["key_hash"] == hashlib.sha256(issued.key.encode()).hexdigest()
    assert row["scopes"] == "predict,read"
    for value in row.values():
        assert issued.key not in str(value)
        assert secret not in str(value)


def test_lookups_by_id_and_name_and_listing(keys: KeyStore) -> None:
    first = issue_key(keys, "a", frozenset({Scope.READ}), expires_in=timedelta(days=30))
    second = issue_key(keys, "b", frozenset({Scope.ADMIN}))
    assert keys.by_key_id(first.stored.key_id) == first.stored
    assert keys.by_name("b") == second.stored
    assert keys.by_key_id("0" * 12) is None
    assert [k.name for k in keys.all()] == ["a", "b"]
    expires = keys.by_name("a").expires_at  # type: ignore[union-attr]
    assert expires is not None
    assert expires.tzinfo is not None


def test_names_are_unique_even_after_revocation(keys: KeyStore) -> None:
    issue_key(keys, "ci", frozenset({Scope.READ}))
    assert keys.revoke("ci", datetime.now(UTC))
    assert not keys.revoke("ci", datetime.now(UTC))
    assert not keys.revoke("nobody", datetime.now(UTC))
    with pytest.raises(DuplicateKeyNameError, match="'ci' exists already"):
        issue_key(keys, "ci", frozenset({Scope.READ}))
    assert keys.by_name("ci").revoked_at is not None  # type: ignore[union-attr]
