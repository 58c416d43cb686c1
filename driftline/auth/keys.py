"""API keys Driftline issues: `dl_<key id>_<secret>`, stored as a SHA-256, checked in constant time.

A plain SHA-256 is enough here, unlike for passwords: the secret is 256 random bits from
`secrets`, so a stolen hash cannot be reversed by guessing, and a slow KDF (bcrypt, argon2)
would only add milliseconds of CPU to every request. The public key id finds the row; the
hash comparison uses `hmac.compare_digest`, so timing reveals nothing about the secret.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from driftline.auth.errors import (
    ExpiredCredentialsError,
    InvalidCredentialsError,
    KeyStoreUnavailableError,
    RevokedCredentialsError,
)
from driftline.auth.principal import Principal
from driftline.auth.scopes import Scope, format_scopes, parse_scopes
from driftline.store.keys import StoredKey
from driftline.store.retry import store_unreachable

log = logging.getLogger(__name__)

PREFIX = "dl_"
KEY_ID_CHARS = 12
_KEY = re.compile(rf"^{PREFIX}([0-9a-f]{{{KEY_ID_CHARS}}})_([A-Za-z0-9_-]{{43}})$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


class KeyLookup(Protocol):
    """What the verifier needs of the key store."""

    def by_key_id(self, key_id: str) -> StoredKey | None: ...


class KeyRepository(KeyLookup, Protocol):
    """What issuing a key needs of the key store."""

    def add(self, key: StoredKey) -> None: ...


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: `key` is shown once and never stored."""

    key: str
    stored: StoredKey


def looks_like_key(token: str) -> bool:
    """Whether a bearer token is (meant to be) a Driftline API key rather than a JWT."""
    return token.startswith(PREFIX)


def hash_key(key: str) -> str:
    """The hex SHA-256 the store keeps for `key`."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh `(key_id, key)`: 48 bits of public id and 256 bits of secret."""
    key_id = secrets.token_hex(KEY_ID_CHARS // 2)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def issue_key(
    store: KeyRepository,
    name: str,
    scopes: frozenset[Scope],
    *,
    expires_in: timedelta | None = None,
    now: datetime | None = None,
) -> IssuedKey:
    """Create and store a key named `name` with `scopes`; the returned key is not kept."""
    if not NAME.match(name):
        raise ValueError(f"key name {name!r}: 1-64 letters, digits, '.', '_', ':' or '-'")
    if not scopes:
        raise ValueError("a key needs at least one scope")
    created = now or datetime.now(UTC)
    key_id, key = new_key()
    stored = StoredKey(
        name=name,
        key_id=key_id,
        key_hash=hash_key(key),
        scopes=format_scopes(scopes),
        created_at=created,
        expires_at=None if expires_in is None else created + expires_in,
    )
    store.add(stored)
    return IssuedKey(key=key, stored=stored)


@functools.cache
def _scopes(stored: str) -> frozenset[Scope]:
    # A handful of distinct scope strings exist; parsing one per request is wasted work.
    return parse_scopes(stored)


class KeyVerifier:
    """Turns a presented key into a `Principal`, caching store rows for `ttl_s` seconds.

    The cache bounds how long a revocation takes to reach this replica; it also remembers
    unknown key ids (bounded in number), so random keys do not each cost a store query.
    """

    def __init__(
        self,
        store: KeyLookup,
        *,
        ttl_s: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._now = now
        self._cache: OrderedDict[str, tuple[float, StoredKey | None]] = OrderedDict()
        self._lock = threading.Lock()
        # One store query per key id at a time: when a busy key's entry expires, every request
        # in flight misses at once, and all but one wait for that query's answer.
        self._inflight: dict[str, threading.Lock] = {}

    def is_cached(self, key: str) -> bool:
        """Whether verifying `key` needs no store query (so it can run on an event loop)."""
        match = _KEY.match(key)
        return match is None or self._cached(match.group(1)) is not None

    def is_known(self, key: str) -> bool:
        """Whether `key`'s id was found in the store before (its entry may have expired): a
        lookup for it is a refresh, not a guess, and is not charged to the caller's address."""
        match = _KEY.match(key)
        if match is None:
            return False
        with self._lock:
            entry = self._cache.get(match.group(1))
        return entry is not None and entry[1] is not None

    def verify(self, key: str) -> Principal:
        """The principal `key` stands for; refusals raise a `SecurityError`."""
        match = _KEY.match(key)
        if match is None:
            raise InvalidCredentialsError("malformed API key")
        stored = self._lookup(match.group(1))
        if stored is None or not hmac.compare_digest(stored.key_hash, hash_key(key)):
            raise InvalidCredentialsError("unknown API key")
        if stored.revoked_at is not None:
            raise RevokedCredentialsError(f"API key {stored.name!r} was revoked")
        if stored.expires_at is not None and stored.expires_at <= self._now():
            raise ExpiredCredentialsError(f"API key {stored.name!r} expired")
        return Principal(
            name=stored.name,
            kind="key",
            scopes=_scopes(stored.scopes),
            expires=stored.expires_at,
        )

    def _lookup(self, key_id: str) -> StoredKey | None:
        cached = self._cached(key_id)
        if cached is not None:
            return cached[1]
        with self._lock:
            flight = self._inflight.setdefault(key_id, threading.Lock())
        with flight:
            cached = self._cached(key_id)  # answered while this thread waited
            if cached is not None:
                return cached[1]
            try:
                stored = self._store.by_key_id(key_id)
            except Exception as error:
                if not store_unreachable(error):
                    raise
                return self._stale(key_id, error)
            finally:
                with self._lock:
                    self._inflight.pop(key_id, None)
            with self._lock:
                self._cache[key_id] = (self._clock(), stored)
                self._cache.move_to_end(key_id)
                while len(self._cache) > self._max_entries:
                    self._cache.popitem(last=False)
        return stored

    def _stale(self, key_id: str, error: BaseException) -> StoredKey:
        # Fail static: while the store is down nothing can be revoked in it either, so a key this
        # replica verified keeps its last answer (rechecked on the next call); others get a 503.
        with self._lock:
            entry = self._cache.get(key_id)
        if entry is None or entry[1] is None:
            raise KeyStoreUnavailableError("the key store is unreachable; retry shortly") from error
        log.warning("key store unreachable: key %s keeps its last verification", entry[1].name)
        return entry[1]

    def _cached(self, key_id: str) -> tuple[float, StoredKey | None] | None:
        with self._lock:
            entry = self._cache.get(key_id)
        if entry is None or self._clock() - entry[0] >= self._ttl_s:
            return None
        return entry
