"""Bearer-token authentication: a JWT verified with PyJWT, the user id taken from ``sub``.

An ``Authenticator`` holds one ``Verifier`` per accepted issuer: Clerk (the seed's provider,
configured by its own variables, see ``_clerk``), any issuer by JWKS URL or PEM key, an HS256
shared secret, and ``genstore serve --dev``'s secret. ``exp`` is required; ``nbf``, ``iss``,
``aud`` and Clerk's ``azp`` are checked when configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jwt
from genstore.exceptions import ConfigurationError

from ._keys import ASYMMETRIC, FixedKey, JwksKeys, UnknownKey, pem_key
from ._verifier import TokenPolicy, Verifier

__all__ = ["AuthFailed", "Authenticator", "JWTAuthenticator", "TokenPolicy", "Verifier"]

_KEY_VARIABLES = (
    "GENSTORE_JWT_SECRET",
    "GENSTORE_JWT_PUBLIC_KEY",
    "GENSTORE_JWKS_URL",
    "CLERK_JWT_KEY",
    "CLERK_SECRET_KEY",
    "CLERK_PUBLISHABLE_KEY",
)


class AuthFailed(Exception):
    """The request carries no valid bearer token (HTTP 401)."""


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise AuthFailed("missing Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthFailed("Authorization must be 'Bearer <token>'")
    return token.strip()


class Authenticator:
    """Verifies ``Authorization: Bearer <jwt>`` against its verifiers; the ``sub`` claim."""

    def __init__(self, verifiers: Sequence[Verifier]) -> None:
        if not verifiers:
            raise ConfigurationError(
                "the images service needs a way to verify bearer tokens: CLERK_JWT_KEY, "
                "CLERK_SECRET_KEY, CLERK_PUBLISHABLE_KEY, GENSTORE_JWKS_URL, "
                "GENSTORE_JWT_PUBLIC_KEY or GENSTORE_JWT_SECRET (see genstore serve --help)"
            )
        self.verifiers = tuple(verifiers)

    async def user_id(self, authorization: str | None) -> str:
        """The verified user id; ``AuthFailed`` with a short reason otherwise."""
        token = _bearer(authorization)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthFailed(f"invalid token: {exc}") from None
        alg, kid = header.get("alg"), header.get("kid")
        candidates = [v for v in self.verifiers if isinstance(alg, str) and v.accepts(alg)]
        if not candidates:
            raise AuthFailed("invalid token: algorithm not accepted")
        failure: Exception | None = None
        for verifier in candidates:
            try:
                claims = await verifier.claims(token, kid if isinstance(kid, str) else None)
            except (jwt.PyJWTError, UnknownKey) as exc:
                failure = failure if isinstance(failure, jwt.ExpiredSignatureError) else exc
                continue
            return _subject(claims)
        if isinstance(failure, jwt.ExpiredSignatureError):
            raise AuthFailed("token expired")
        raise AuthFailed(f"invalid token: {failure}")

    @staticmethod
    def configured(environ: Mapping[str, str] = os.environ) -> bool:
        """Whether ``environ`` names a way to verify tokens (a dev secret does not count)."""
        return any(environ.get(name) for name in _KEY_VARIABLES)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Authenticator:
        """Every verifier the environment configures (see ``genstore serve --help``)."""
        from ._clerk import verifiers_from_env

        return cls(verifiers_from_env(environ))


def _subject(claims: Mapping[str, Any]) -> str:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise AuthFailed("token has no subject")
    return sub


class JWTAuthenticator(Authenticator):
    """An authenticator for one issuer, by HS256 ``secret``, PEM ``public_key`` or ``jwks_url``."""

    def __init__(
        self,
        secret: str | None = None,
        public_key: str | None = None,
        jwks_url: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float = 5.0,
        authorized_parties: Sequence[str] = (),
    ) -> None:
        policy = TokenPolicy(issuer, audience, tuple(authorized_parties), leeway)
        verifiers = []
        if jwks_url:
            verifiers.append(Verifier(JwksKeys(jwks_url), policy))
        if public_key:
            verifiers.append(Verifier(FixedKey(pem_key(public_key), ASYMMETRIC), policy))
        if secret:
            verifiers.append(Verifier(FixedKey(secret, ("HS256",)), policy))
        super().__init__(verifiers)
