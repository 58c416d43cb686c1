"""Fixtures of the auth tests: a key store, issued keys, RSA keys and signed JWTs, Redis."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from driftline.auth.keys import issue_key
from driftline.auth.scopes import Scope
from driftline.store import migrate
from driftline.store.keys import KeyStore

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
ISSUER = "https://issuer.example.test"
AUDIENCE = "driftline"


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


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair, its kid, and the public half as a JWK."""

    kid: str
    private: rsa.RSAPrivateKey
    jwk: dict[str, Any]


def new_signing_key(kid: str) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return SigningKey(kid, private, {**public, "kid": kid, "alg": "RS256", "use": "sig"})


@pytest.fixture(scope="session")
def signing_key() -> SigningKey:
    return new_signing_key("key-1")


@pytest.fixture(scope="session")
def other_key() -> SigningKey:
    return new_signing_key("key-2")


def sign(key: SigningKey, kid: str | None = None, **overrides: Any) -> str:
    """A JWT for `driftline` from ISSUER, valid for a minute, with `overrides` applied."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "system:serviceaccount:driftline:monitor",
        "iat": now,
        "exp": now + 60,
        "scope": "read predict",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key.private, algorithm="RS256", headers={"kid": kid or key.kid})


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis `make test` starts (scripts/redis.sh); absent locally means skip."""
    url = os.environ.get("DRIFTLINE_TEST_REDIS_URL")
    if not url:
        if IN_CI:
            pytest.fail("DRIFTLINE_TEST_REDIS_URL is unset: run the tests through `make test`")
        pytest.skip("Redis tests need DRIFTLINE_TEST_REDIS_URL (`make test` sets it)")
    return url
