"""Bearer-token authentication: a JWT verified with PyJWT, the user id taken from ``sub``.

Clerk (the seed's provider) signs RS256 session tokens whose ``sub`` is the user id; point
``jwks_url`` at the instance's JWKS. HS256 with a shared secret and a fixed RS256 public key work too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import jwt
from genstore.exceptions import ConfigurationError

__all__ = ["AuthFailed", "JWTAuthenticator"]

_KEY_VARIABLES = ("GENSTORE_JWT_SECRET", "GENSTORE_JWT_PUBLIC_KEY", "GENSTORE_JWKS_URL")


class AuthFailed(Exception):
    """The request carries no valid bearer token (HTTP 401)."""


@dataclass
class JWTAuthenticator:
    """Verifies ``Authorization: Bearer <jwt>`` and returns the ``sub`` claim."""

    secret: str | None = None
    public_key: str | None = None
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway: float = 5.0

    def __post_init__(self) -> None:
        if not (self.secret or self.public_key or self.jwks_url):
            raise ConfigurationError(
                "the images service needs GENSTORE_JWT_SECRET, GENSTORE_JWT_PUBLIC_KEY "
                "or GENSTORE_JWKS_URL to verify bearer tokens"
            )
        self._jwks = jwt.PyJWKClient(self.jwks_url) if self.jwks_url else None

    @staticmethod
    def configured() -> bool:
        """Whether the environment names a way to verify tokens (a dev secret does not count)."""
        return any(os.environ.get(name) for name in _KEY_VARIABLES)

    @classmethod
    def from_env(cls) -> JWTAuthenticator:
        """Configured from GENSTORE_JWT_SECRET / _PUBLIC_KEY / GENSTORE_JWKS_URL (+ _ISSUER)."""
        return cls(
            secret=os.environ.get("GENSTORE_JWT_SECRET") or os.environ.get("GENSTORE_DEV_SECRET"),
            public_key=os.environ.get("GENSTORE_JWT_PUBLIC_KEY"),
            jwks_url=os.environ.get("GENSTORE_JWKS_URL"),
            issuer=os.environ.get("GENSTORE_JWT_ISSUER"),
            audience=os.environ.get("GENSTORE_JWT_AUDIENCE"),
        )

    def user_id(self, authorization: str | None) -> str:
        """The verified user id; ``AuthFailed`` with a short reason otherwise."""
        if not authorization:
            raise AuthFailed("missing Authorization header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthFailed("Authorization must be 'Bearer <token>'")
        token = token.strip()
        try:
            if self._jwks is not None:
                key: object = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256"]
            elif self.public_key:
                key, algorithms = self.public_key, ["RS256", "ES256"]
            else:
                key, algorithms = self.secret, ["HS256"]
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=algorithms,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["sub", "exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthFailed("token expired") from None
        except jwt.PyJWTError as exc:
            raise AuthFailed(f"invalid token: {exc}") from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthFailed("token has no subject")
        return sub
