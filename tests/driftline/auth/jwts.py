"""Signing keys and JWTs for the auth tests: real RSA keys, tokens signed with PyJWT."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

ISSUER = "https://issuer.example.test"
AUDIENCE = "driftline"


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
