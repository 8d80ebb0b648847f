"""One accepted token issuer: where its keys come from (``Verifier``) and what its tokens must
claim (``TokenPolicy``). A leaf of the auth modules: ``_auth`` and ``_clerk`` both build on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt

from ._keys import KeySource

__all__ = ["TokenPolicy", "Verifier"]


@dataclass(frozen=True)
class TokenPolicy:
    """The claims a token must carry besides a valid signature and ``exp``."""

    issuer: str | None = None
    audience: str | None = None
    authorized_parties: tuple[str, ...] = ()
    """Clerk's ``azp`` check: when set, a token's ``azp`` (if any) must be one of these."""
    leeway: float = 5.0
    clerk_active_sessions: bool = False
    """Clerk: refuse tokens whose session status (``sts``) is ``pending``, as Clerk's SDKs do
    by default (a user who still has a step to complete is not signed in)."""


@dataclass(frozen=True)
class Verifier:
    """One accepted issuer: where its keys come from and what its tokens must claim."""

    keys: KeySource
    policy: TokenPolicy = TokenPolicy()

    def accepts(self, alg: str) -> bool:
        return alg in self.keys.algorithms

    async def claims(self, token: str, kid: str | None) -> dict[str, Any]:
        """The verified claims; ``jwt.PyJWTError`` or ``UnknownKey`` when the token fails."""
        key = await self.keys.key(kid)
        p = self.policy
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(self.keys.algorithms),
            issuer=p.issuer,
            audience=p.audience,
            leeway=p.leeway,
            options={"require": ["sub", "exp"], "verify_aud": p.audience is not None},
        )
        azp = claims.get("azp")
        if p.authorized_parties and azp is not None and azp not in p.authorized_parties:
            raise jwt.InvalidTokenError("azp is not an authorized party")
        if p.clerk_active_sessions and claims.get("sts") == "pending":
            raise jwt.InvalidTokenError("the session is pending")
        return claims
