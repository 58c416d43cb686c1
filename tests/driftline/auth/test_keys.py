"""API keys: format, hash-only storage, constant-time comparison, expiry, revocation within TTL."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from driftline.auth import keys as keys_module
from driftline.auth.errors import (
    ExpiredCredentialsError,
    InvalidCredentialsError,
    KeyStoreUnavailableError,
    RevokedCredentialsError,
)
from driftline.auth.keys import KeyVerifier, hash_key, issue_key, new_key
from driftline.auth.scopes import Scope
from driftline.store import Store
from driftline.store.keys import KeyStore, StoredKey


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def keys_on_both(store: Store) -> Iterator[KeyStore]:
    """The key store on PostgreSQL and SQLite (the shared `store` fixture migrates both)."""
    keys = KeyStore(store.url)
    yield keys
    keys.close()


def test_keys_are_prefixed_random_and_distinct() -> None:
    made = {new_key()[1] for _ in range(200)}
    assert len(made) == 200
    for key in made:
        assert re.fullmatch(r"dl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key), key


def test_verifier_returns_the_principal_with_its_scopes(key_store: KeyStore) -> None:
    issued = issue_key(key_store, "ci", frozenset({Scope.PREDICT, Scope.READ}))
    principal = KeyVerifier(key_store).verify(issued.key)
    assert (principal.name, principal.kind) == ("ci", "key")
    assert principal.scopes == {Scope.PREDICT, Scope.READ}
    assert principal.allows(Scope.READ)
    assert not principal.allows(Scope.OUTCOMES_WRITE)


def test_admin_implies_every_scope(key_store: KeyStore) -> None:
    issued = issue_key(key_store, "root", frozenset({Scope.ADMIN}))
    principal = KeyVerifier(key_store).verify(issued.key)
    assert all(principal.allows(scope) for scope in Scope)


def test_the_right_key_id_with_a_wrong_secret_is_refused(key_store: KeyStore) -> None:
    issued = issue_key(key_store, "ci", frozenset({Scope.READ}))
    forged = issued.key[:-4] + ("AAAA" if not issued.key.endswith("AAAA") else "BBBB")
    with pytest.raises(InvalidCredentialsError, match="unknown API key"):
        KeyVerifier(key_store).verify(forged)


@pytest.mark.parametrize("key", ["dl_", "dl_xyz", "dl_" + "0" * 12 + "_short", "dl_" + "g" * 60])
def test_malformed_keys_are_refused_without_a_store_query(key: str) -> None:
    class NoStore:
        def by_key_id(self, key_id: str) -> None:
            raise AssertionError("a malformed key must not reach the store")

    with pytest.raises(InvalidCredentialsError, match="malformed"):
        KeyVerifier(NoStore()).verify(key)


def test_the_secret_is_compared_in_constant_time(
    key_store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    issued = issue_key(key_store, "ci", frozenset({Scope.READ}))
    calls: list[tuple[str, str]] = []
    real = keys_module.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    verifier = KeyVerifier(key_store)
    verifier.verify(issued.key)
    with pytest.raises(InvalidCredentialsError):
        verifier.verify(issued.key[:-1] + ("x" if issued.key[-1] != "x" else "y"))
    # Both outcomes went through compare_digest on the stored hash, never through `==`.
    assert [a for a, _ in calls] == [issued.stored.key_hash] * 2
    assert calls[0][1] == issued.stored.key_hash
    assert calls[1][1] != issued.stored.key_hash


def test_an_expired_key_is_refused(key_store: KeyStore) -> None:
    issued = issue_key(
        key_store,
        "old",
        frozenset({Scope.READ}),
        expires_in=timedelta(days=1),
        now=datetime.now(UTC) - timedelta(days=2),
    )
    with pytest.raises(ExpiredCredentialsError, match="'old' expired"):
        KeyVerifier(key_store).verify(issued.key)


def test_a_key_is_valid_until_its_expiry(key_store: KeyStore) -> None:
    issued = issue_key(key_store, "soon", frozenset({Scope.READ}), expires_in=timedelta(hours=1))
    later = issued.stored.expires_at
    assert later is not None
    verifier = KeyVerifier(key_store, now=lambda: later - timedelta(seconds=1))
    assert verifier.verify(issued.key).expires == later
    with pytest.raises(ExpiredCredentialsError):
        KeyVerifier(key_store, now=lambda: later).verify(issued.key)


def test_revocation_is_seen_once_the_cache_ttl_has_passed(keys_on_both: KeyStore) -> None:
    issued = issue_key(keys_on_both, "ci", frozenset({Scope.PREDICT}))
    clock = Clock()
    verifier = KeyVerifier(keys_on_both, ttl_s=5.0, clock=clock)
    verifier.verify(issued.key)
    assert keys_on_both.revoke("ci", datetime.now(UTC))
    clock.now += 4.9  # within the TTL this replica still answers from its cache
    verifier.verify(issued.key)
    clock.now += 0.1
    with pytest.raises(RevokedCredentialsError, match="'ci' was revoked"):
        verifier.verify(issued.key)


def test_every_replica_refuses_a_revoked_key_within_the_ttl(keys_on_both: KeyStore) -> None:
    issued = issue_key(keys_on_both, "ci", frozenset({Scope.PREDICT}))
    replicas = [KeyVerifier(keys_on_both, ttl_s=0.5) for _ in range(3)]
    for replica in replicas:
        replica.verify(issued.key)
    keys_on_both.revoke("ci", datetime.now(UTC))
    revoked_at = time.monotonic()
    for replica in replicas:
        while True:
            try:
                replica.verify(issued.key)
            except RevokedCredentialsError:
                break
            time.sleep(0.02)
    assert time.monotonic() - revoked_at < 0.5 + 0.2


def test_a_new_verifier_sees_a_revocation_at_once(keys_on_both: KeyStore) -> None:
    issued = issue_key(keys_on_both, "ci", frozenset({Scope.PREDICT}))
    keys_on_both.revoke("ci", datetime.now(UTC))
    with pytest.raises(RevokedCredentialsError):
        KeyVerifier(keys_on_both).verify(issued.key)


def test_unknown_key_ids_are_cached_and_the_cache_is_bounded() -> None:
    queries: list[str] = []

    class CountingStore:
        def by_key_id(self, key_id: str) -> None:
            queries.append(key_id)

    verifier = KeyVerifier(CountingStore(), max_entries=2, clock=Clock())
    keys = [new_key()[1] for _ in range(3)]
    for key in [keys[0], keys[0], keys[1], keys[2], keys[0]]:
        with pytest.raises(InvalidCredentialsError):
            verifier.verify(key)
    # keys[0] was answered from the cache once, then evicted by keys[1] and keys[2].
    assert len(queries) == 4
    assert verifier.is_cached(keys[2])
    assert not verifier.is_cached(new_key()[1])


def test_issue_rejects_bad_names_and_empty_scopes(key_store: KeyStore) -> None:
    with pytest.raises(ValueError, match="key name"):
        issue_key(key_store, "has space", frozenset({Scope.READ}))
    with pytest.raises(ValueError, match="at least one scope"):
        issue_key(key_store, "none", frozenset())


def test_hash_is_the_sha256_of_the_whole_key(issue: Callable[..., str]) -> None:
    key = issue(Scope.READ)
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()


def test_a_store_outage_keeps_verified_keys_and_answers_others_503(key_store: KeyStore) -> None:
    class Outage:
        down = False

        def by_key_id(self, key_id: str) -> StoredKey | None:
            if self.down:
                raise ConnectionError("connection refused")
            return key_store.by_key_id(key_id)

    store, clock = Outage(), Clock()
    verifier = KeyVerifier(store, ttl_s=5, clock=clock)
    key = issue_key(key_store, "outage", frozenset({Scope.READ})).key
    assert verifier.verify(key).name == "outage"
    store.down, clock.now = True, clock.now + 60
    # Fail static: nothing can be revoked in a store that is down either.
    assert verifier.verify(key).name == "outage"
    with pytest.raises(KeyStoreUnavailableError) as refused:
        verifier.verify(issue_key(key_store, "unseen", frozenset({Scope.READ})).key)
    assert (refused.value.status, refused.value.headers()) == (503, {"Retry-After": "1"})
    # The next call after the outage asks the store again: a revocation made then is seen.
    store.down = False
    key_store.revoke("outage", datetime.now(UTC))
    with pytest.raises(RevokedCredentialsError):
        verifier.verify(key)
