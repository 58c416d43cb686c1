"""JWTs from an OIDC issuer (Kubernetes projected ServiceAccount tokens are such JWTs), via PyJWT.

The JWKS comes from a URL (fetched with httpx, reused for `refresh_s`, refetched early at most
every `refresh_s / 10` when a token names an unknown `kid`, since issuers rotate keys) or from
a file (re-read when it changes). PyJWT checks signature, `exp`, `nbf`, `iss` and `aud`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt

from driftline.auth.errors import ExpiredCredentialsError, InvalidCredentialsError
from driftline.auth.principal import Principal
from driftline.auth.scopes import known_scopes


class JwksError(RuntimeError):
    """The JWKS could not be fetched or read."""


class KeySource(Protocol):
    """Where verification keys come from."""

    def key(self, kid: str | None) -> jwt.PyJWK | None:
        """The key for `kid` (the only key when `kid` is None and there is one), or None."""
        ...

    def is_fresh(self) -> bool:
        """Whether `key` answers from memory, without I/O."""
        ...


def _pick(keys: dict[str | None, jwt.PyJWK], kid: str | None) -> jwt.PyJWK | None:
    if kid is None and len(keys) == 1:
        return next(iter(keys.values()))
    return keys.get(kid)


def _parse(document: Any) -> dict[str | None, jwt.PyJWK]:
    try:
        # PyJWKSet skips keys of unusable types or algorithms; an empty result raises.
        return {k.key_id: k for k in jwt.PyJWKSet.from_dict(document).keys}
    except (jwt.PyJWKSetError, jwt.InvalidKeyError, TypeError, KeyError) as error:
        raise JwksError(f"unusable JWKS: {error}") from None


class JwksFile:
    """A JWKS on disk, re-read when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}

    def key(self, kid: str | None) -> jwt.PyJWK | None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError as error:
            raise JwksError(f"cannot read the JWKS file {self.path}: {error}") from None
        if mtime != self._mtime:
            import orjson  # noqa: PLC0415

            self._keys = _parse(orjson.loads(self.path.read_bytes()))
            self._mtime = mtime
        return _pick(self._keys, kid)

    def is_fresh(self) -> bool:
        return True  # a stat and, rarely, a small read: cheap enough for the event loop


class JwksUrl:
    """A JWKS fetched over HTTP and cached; `client` is injectable for tests."""

    def __init__(
        self,
        url: str,
        *,
        refresh_s: float = 300.0,
        client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.refresh_s = refresh_s
        self._client = client or httpx.Client(timeout=5.0)
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str | None) -> jwt.PyJWK | None:
        if not self.is_fresh():
            self._fetch()
        found = _pick(self._keys, kid)
        if found is None and self._may_refetch():
            self._fetch()
            found = _pick(self._keys, kid)
        return found

    def is_fresh(self) -> bool:
        fetched = self._fetched_at
        return fetched is not None and self._clock() - fetched < self.refresh_s

    def _may_refetch(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or self._clock() - fetched >= self.refresh_s / 10

    def _fetch(self) -> None:
        with self._lock:
            try:
                response = self._client.get(self.url)
                response.raise_for_status()
                self._keys = _parse(response.json())
            except (httpx.HTTPError, ValueError) as error:
                raise JwksError(f"cannot fetch the JWKS from {self.url}: {error}") from None
            finally:
                # A failing issuer is not asked again on every request.
                self._fetched_at = self._clock()


@dataclass(frozen=True, slots=True)
class OidcConfig:
    """What a token must satisfy and where its scopes are."""

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    scope_claim: str = "scope"
    leeway_s: float = 30.0


class JwtVerifier:
    """Turns a JWT into a `Principal` named by its `sub`, with scopes from `scope_claim`."""

    def __init__(self, config: OidcConfig, keys: KeySource) -> None:
        self.config = config
        self.keys = keys

    def is_cached(self) -> bool:
        """Whether verifying needs no network I/O."""
        return self.keys.is_fresh()

    def verify(self, token: str) -> Principal:
        """The principal `token` stands for; refusals raise a `SecurityError`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise InvalidCredentialsError("malformed token") from None
        try:
            key = self.keys.key(header.get("kid"))
        except JwksError as error:
            raise InvalidCredentialsError(f"cannot verify the token: {error}") from None
        if key is None:
            raise InvalidCredentialsError("token signed by an unknown key")
        claims = self._decode(token, key)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise InvalidCredentialsError("token has no subject")
        return Principal(
            name=subject[:128],
            kind="jwt",
            scopes=known_scopes(_names(claims.get(self.config.scope_claim))),
        )

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        config = self.config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=list(config.algorithms),
                audience=config.audience,
                issuer=config.issuer,
                leeway=config.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise ExpiredCredentialsError("token expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidCredentialsError("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidCredentialsError("token from another issuer") from None
        except jwt.InvalidSignatureError:
            raise InvalidCredentialsError("token signature does not verify") from None
        except jwt.InvalidTokenError as error:
            raise InvalidCredentialsError(f"invalid token: {type(error).__name__}") from None
        return claims


def _names(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return ()
