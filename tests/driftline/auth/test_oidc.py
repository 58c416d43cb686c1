"""JWTs from an OIDC issuer: real RSA keys, a JWKS from httpx's mock transport or a file."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest

from driftline.auth.errors import ExpiredCredentialsError, InvalidCredentialsError
from driftline.auth.oidc import JwksFile, JwksUrl, JwtVerifier, OidcConfig
from driftline.auth.scopes import Scope
from tests.driftline.auth.jwts import AUDIENCE, ISSUER, SigningKey, new_signing_key, sign

JWKS_URL = "https://issuer.example.test/.well-known/jwks.json"


class Issuer:
    """Serves a JWKS through httpx.MockTransport and counts the fetches."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.fetches = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        return httpx.Response(200, json={"keys": [k.jwk for k in self.keys]})

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.MockTransport(self.handle))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def verifier(source: Any, **config: Any) -> JwtVerifier:
    return JwtVerifier(OidcConfig(issuer=ISSUER, audience=AUDIENCE, **config), source)


@pytest.fixture
def issuer(signing_key: SigningKey) -> Issuer:
    return Issuer(signing_key)


@pytest.fixture
def jwts(issuer: Issuer) -> JwtVerifier:
    return verifier(JwksUrl(JWKS_URL, client=issuer.client()))


def test_a_valid_token_names_its_subject_and_scopes(
    jwts: JwtVerifier, signing_key: SigningKey
) -> None:
    principal = jwts.verify(sign(signing_key, scope="read predict openid email"))
    assert principal.name == "system:serviceaccount:driftline:monitor"
    assert principal.kind == "jwt"
    # Scopes the issuer grants for other services are ignored.
    assert principal.scopes == {Scope.READ, Scope.PREDICT}


def test_scopes_may_come_from_a_list_claim_of_another_name(
    issuer: Issuer, signing_key: SigningKey
) -> None:
    jwts = verifier(JwksUrl(JWKS_URL, client=issuer.client()), scope_claim="driftline_scopes")
    token = sign(signing_key, scope=None, driftline_scopes=["outcomes:write", 7])
    assert jwts.verify(token).scopes == {Scope.OUTCOMES_WRITE}


@pytest.mark.parametrize(
    ("claims", "error", "message"),
    [
        ({"aud": "someone-else"}, InvalidCredentialsError, "another audience"),
        ({"iss": "https://evil.example.test"}, InvalidCredentialsError, "another issuer"),
        ({"exp": int(time.time()) - 3600}, ExpiredCredentialsError, "expired"),
        ({"exp": None}, InvalidCredentialsError, "MissingRequiredClaimError"),
        ({"aud": None}, InvalidCredentialsError, "MissingRequiredClaimError"),
        ({"sub": None}, InvalidCredentialsError, "MissingRequiredClaimError"),
        ({"nbf": int(time.time()) + 3600}, InvalidCredentialsError, "ImmatureSignatureError"),
    ],
)
def test_claims_that_do_not_hold_are_refused(
    jwts: JwtVerifier,
    signing_key: SigningKey,
    claims: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        jwts.verify(sign(signing_key, **claims))


def test_a_token_within_the_leeway_is_accepted(issuer: Issuer, signing_key: SigningKey) -> None:
    token = sign(signing_key, exp=int(time.time()) - 5)
    assert verifier(JwksUrl(JWKS_URL, client=issuer.client()), leeway_s=30).verify(token)
    with pytest.raises(ExpiredCredentialsError):
        verifier(JwksUrl(JWKS_URL, client=issuer.client()), leeway_s=0).verify(token)


def test_a_bad_signature_is_refused(
    jwts: JwtVerifier, signing_key: SigningKey, other_key: SigningKey
) -> None:
    forged = sign(other_key, kid=signing_key.kid)  # another key claiming the issuer's kid
    with pytest.raises(InvalidCredentialsError, match="signature does not verify"):
        jwts.verify(forged)
    header, _, signature = sign(signing_key).split(".")
    tampered_payload = sign(signing_key, sub="admin").split(".")[1]
    with pytest.raises(InvalidCredentialsError, match="signature"):
        jwts.verify(f"{header}.{tampered_payload}.{signature}")


def test_unsigned_and_symmetric_tokens_are_refused(
    jwts: JwtVerifier, signing_key: SigningKey
) -> None:
    claims = jwt.decode(sign(signing_key), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": signing_key.kid})
    with pytest.raises(InvalidCredentialsError):
        jwts.verify(unsigned)
    # The classic confusion: HS256 keyed with the issuer's public key (PyJWT will not even
    # sign that, so the attacker's token is put together by hand).
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": signing_key.kid})
    body = f"{header}.{_b64(claims)}"
    mac = hmac.new(orjson.dumps(signing_key.jwk), body.encode(), hashlib.sha256).digest()
    with pytest.raises(InvalidCredentialsError):
        jwts.verify(f"{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}")


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "x" * 50])
def test_malformed_tokens_are_refused(jwts: JwtVerifier, token: str) -> None:
    with pytest.raises(InvalidCredentialsError):
        jwts.verify(token)


def test_an_unknown_kid_refetches_at_most_every_tenth_of_the_refresh(
    issuer: Issuer, signing_key: SigningKey
) -> None:
    clock = Clock()
    jwts = verifier(JwksUrl(JWKS_URL, client=issuer.client(), refresh_s=300, clock=clock))
    jwts.verify(sign(signing_key))
    assert issuer.fetches == 1
    rotated = new_signing_key("key-rotated")
    clock.now = 10.0
    with pytest.raises(InvalidCredentialsError, match="unknown key"):
        jwts.verify(sign(rotated))
    assert issuer.fetches == 1  # a flood of unknown kids does not become a flood of fetches
    issuer.keys.append(rotated)
    clock.now = 31.0
    assert jwts.verify(sign(rotated)).kind == "jwt"
    assert issuer.fetches == 2
    clock.now = 200.0
    jwts.verify(sign(signing_key))
    assert issuer.fetches == 2  # known kids answer from the cache until refresh_s
    assert jwts.is_cached()
    clock.now = 331.0  # refresh_s after the refetch at 31
    assert not jwts.is_cached()


def test_an_unreachable_issuer_refuses_with_a_clear_message(signing_key: SigningKey) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = httpx.Client(transport=httpx.MockTransport(down))
    jwts = verifier(JwksUrl(JWKS_URL, client=client))
    with pytest.raises(InvalidCredentialsError, match="cannot fetch the JWKS"):
        jwts.verify(sign(signing_key))


def test_a_jwks_file_is_reread_when_it_changes(
    tmp_path: Path, signing_key: SigningKey, other_key: SigningKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_bytes(orjson.dumps({"keys": [signing_key.jwk]}))
    jwts = verifier(JwksFile(path))
    assert jwts.verify(sign(signing_key)).kind == "jwt"
    with pytest.raises(InvalidCredentialsError, match="unknown key"):
        jwts.verify(sign(other_key))
    path.write_bytes(orjson.dumps({"keys": [signing_key.jwk, other_key.jwk]}))
    stat = path.stat()
    os.utime(path, (stat.st_atime, stat.st_mtime + 5))
    assert jwts.verify(sign(other_key)).kind == "jwt"


def test_a_missing_jwks_file_refuses_tokens(tmp_path: Path, signing_key: SigningKey) -> None:
    jwts = verifier(JwksFile(tmp_path / "absent.json"))
    with pytest.raises(InvalidCredentialsError, match="cannot read the JWKS file"):
        jwts.verify(sign(signing_key))


def _b64(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(document)).rstrip(b"=").decode()
