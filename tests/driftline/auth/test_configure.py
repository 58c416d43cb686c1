"""The guard built from settings: key TTL, issuer, rate limits, Redis, auth switch."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from driftline.auth.configure import guard_from_settings, jwt_verifier, secure
from driftline.auth.errors import ForbiddenError, RateLimitedError
from driftline.auth.oidc import JwksFile, JwksUrl
from driftline.auth.ratelimit import LOOKUPS, LocalLimiter, Rate, RedisLimiter
from driftline.auth.routes import PUBLIC, Route, RouteTable
from driftline.auth.scopes import Scope
from driftline.config import Settings
from driftline.store.keys import KeyStore
from tests.driftline.auth.jwts import AUDIENCE, ISSUER, SigningKey, sign

TABLE = RouteTable(
    [Route("GET", "/healthz", PUBLIC), Route("POST", "/v2/models/{model}/infer", Scope.PREDICT)]
)


def test_defaults_protect_with_keys_only_and_per_replica_limits(
    tmp_path: Path, key_store: KeyStore
) -> None:
    settings = Settings(home=tmp_path)
    assert settings.auth.enabled
    guard = guard_from_settings(settings, TABLE, key_store)
    assert guard.enabled
    assert guard.authenticator.jwts is None
    assert isinstance(guard.limiter, LocalLimiter)
    assert guard.limiter.rates[Scope.PREDICT] == Rate(5000.0, 10000)
    assert set(guard.limiter.rates) == {*Scope, LOOKUPS}
    assert guard.limiter.rates[LOOKUPS] == Rate(2.0, 20)
    middleware = secure(lambda *_: None, settings, guard)  # type: ignore[arg-type,return-value]
    assert middleware.websockets.max_per_principal == settings.auth.ws_max_per_principal


def test_an_issuer_needs_a_jwks(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="DRIFTLINE_AUTH_JWKS_URL"):
        jwt_verifier(Settings(home=tmp_path, auth={"oidc_issuer": ISSUER}))
    by_url = jwt_verifier(
        Settings(home=tmp_path, auth={"oidc_issuer": ISSUER, "jwks_url": "https://x/jwks"})
    )
    assert by_url is not None
    assert isinstance(by_url.keys, JwksUrl)
    assert by_url.config.audience == "driftline"
    assert by_url.config.algorithms == ("RS256", "ES256")


def test_a_jwks_file_and_scope_claim_from_settings(
    tmp_path: Path, signing_key: SigningKey, key_store: KeyStore
) -> None:
    jwks = tmp_path / "jwks.json"
    jwks.write_bytes(orjson.dumps({"keys": [signing_key.jwk]}))
    settings = Settings(
        home=tmp_path,
        auth={
            "oidc_issuer": ISSUER,
            "oidc_audience": AUDIENCE,
            "jwks_file": jwks,
            "scope_claim": "roles",
        },
    )
    guard = guard_from_settings(settings, TABLE, key_store)
    assert guard.authenticator.jwts is not None
    assert isinstance(guard.authenticator.jwts.keys, JwksFile)
    token = sign(signing_key, scope=None, roles=["predict"])
    access = guard.check("POST", "/v2/models/m/infer", {"authorization": f"Bearer {token}"}, None)
    assert access.principal.scopes == {Scope.PREDICT}
    with pytest.raises(ForbiddenError):
        guard.check(
            "POST", "/v2/models/m/infer", {"authorization": f"Bearer {sign(signing_key)}"}, None
        )


def test_unknown_scopes_in_rate_limits_fail_at_start(tmp_path: Path, key_store: KeyStore) -> None:
    settings = Settings(home=tmp_path, auth={"rate_limits": {"predictions": (1.0, 1)}})
    with pytest.raises(ValueError, match="unknown scope"):
        guard_from_settings(settings, TABLE, key_store)


def test_auth_can_be_switched_off(tmp_path: Path, key_store: KeyStore) -> None:
    guard = guard_from_settings(Settings(home=tmp_path, auth={"enabled": False}), TABLE, key_store)
    assert guard.check("POST", "/v2/models/m/infer", {}, "10.0.0.1").principal.kind == "anonymous"


@pytest.mark.redis
async def test_a_redis_url_shares_the_limit(
    tmp_path: Path, key_store: KeyStore, redis_url: str, issue: object
) -> None:
    settings = Settings(
        home=tmp_path,
        auth={"rate_limit_redis_url": redis_url, "rate_limits": {"predict": (0.5, 1)}},
    )
    replicas = [guard_from_settings(settings, TABLE, key_store) for _ in range(2)]
    assert all(isinstance(g.limiter, RedisLimiter) for g in replicas)
    key = issue(Scope.PREDICT)  # type: ignore[operator]
    headers = {"authorization": f"Bearer {key}"}
    try:
        await replicas[0].admit("POST", "/v2/models/m/infer", headers, None)
        with pytest.raises(RateLimitedError) as caught:
            await replicas[1].admit("POST", "/v2/models/m/infer", headers, None)
        assert caught.value.headers() == {"Retry-After": "2"}
    finally:
        for guard in replicas:
            assert guard.limiter is not None
            await guard.limiter.close()
