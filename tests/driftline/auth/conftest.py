"""Fixtures of the auth tests: a key store, issued keys, RSA keys and signed JWTs, Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.store import migrate
from driftline.store.keys import KeyStore
from tests.driftline.auth.jwts import SigningKey, new_signing_key

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
def key_store(tmp_path: Path) -> Iterator[KeyStore]:
    """A migrated SQLite key store of this test's own."""
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    migrate.upgrade(url)
    store = KeyStore(url)
    yield store
    store.close()


@pytest.fixture
def issue(key_store: KeyStore) -> Callable[..., str]:
    """Issue a key with the given scopes in `key_store`; returns the key."""

    def make(*scopes: Scope, name: str | None = None, **kwargs: Any) -> str:
        label = name or f"k-{uuid.uuid4().hex[:8]}"
        return issue_key(key_store, label, frozenset(scopes), **kwargs).key

    return make


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return new_signing_key("key-1")


@pytest.fixture(scope="session")
def other_key() -> SigningKey:
    return new_signing_key("key-2")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis `make test` starts (scripts/redis.sh); absent locally means skip."""
    url = os.environ.get("DRIFTLINE_TEST_REDIS_URL")
    if not url:
        if IN_CI:
            pytest.fail("DRIFTLINE_TEST_REDIS_URL is unset: run the tests through `make test`")
        pytest.skip("Redis tests need DRIFTLINE_TEST_REDIS_URL (`make test` sets it)")
    return url
