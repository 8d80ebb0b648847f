"""Verifiers from the environment: Clerk's own variables (as the seed sets them), any other
issuer (GENSTORE_JWKS_URL / GENSTORE_JWT_PUBLIC_KEY / GENSTORE_JWT_SECRET), and the dev secret.

Clerk, networkless: CLERK_JWT_KEY (the instance's PEM public key). Otherwise the JWKS from
Clerk's Backend API (``{CLERK_API_URL}/v1/jwks`` with CLERK_SECRET_KEY), else from the Frontend
API the publishable key names (``https://<frontend api>/.well-known/jwks.json``). The publishable
key also gives the issuer every Clerk token must carry. CLERK_AUTHORIZED_PARTIES (comma-separated
origins) enables the ``azp`` check.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping

from genstore.exceptions import ConfigurationError

from ._keys import ASYMMETRIC, FixedKey, JwksKeys, pem_key
from ._verifier import TokenPolicy, Verifier

__all__ = ["DEV_SECRET_ENV", "clerk_frontend_api", "verifiers_from_env"]

DEV_SECRET_ENV = "GENSTORE_DEV_SECRET"  # noqa: S105 - a variable's name, not a secret
_CLERK_API = "https://api.clerk.com"


def clerk_frontend_api(publishable_key: str) -> str:
    """The Frontend API host a Clerk publishable key encodes (``pk_test_<base64 of host$>``)."""
    _, _, encoded = publishable_key.strip().partition("_")
    _, _, encoded = encoded.partition("_")
    try:
        host = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        host = ""
    if not publishable_key.startswith(("pk_test_", "pk_live_")) or not host.endswith("$"):
        raise ConfigurationError("CLERK_PUBLISHABLE_KEY is not a Clerk publishable key")
    return host.removesuffix("$")


def _clerk(env: Mapping[str, str]) -> list[Verifier]:
    jwt_key, secret = env.get("CLERK_JWT_KEY"), env.get("CLERK_SECRET_KEY")
    publishable = env.get("CLERK_PUBLISHABLE_KEY")
    if not (jwt_key or secret or publishable):
        return []
    parties = tuple(
        p.strip() for p in env.get("CLERK_AUTHORIZED_PARTIES", "").split(",") if p.strip()
    )
    issuer = f"https://{clerk_frontend_api(publishable)}" if publishable else None
    policy = TokenPolicy(issuer=issuer, authorized_parties=parties, clerk_active_sessions=True)
    if jwt_key:
        return [Verifier(FixedKey(pem_key(jwt_key), ("RS256",)), policy)]
    if secret:
        api = env.get("CLERK_API_URL", _CLERK_API).rstrip("/")
        keys = JwksKeys(f"{api}/v1/jwks", headers={"Authorization": f"Bearer {secret}"})
        return [Verifier(keys, policy)]
    return [Verifier(JwksKeys(f"{issuer}/.well-known/jwks.json"), policy)]


def _generic(env: Mapping[str, str]) -> list[Verifier]:
    policy = TokenPolicy(
        issuer=env.get("GENSTORE_JWT_ISSUER") or None,
        audience=env.get("GENSTORE_JWT_AUDIENCE") or None,
    )
    verifiers = []
    if env.get("GENSTORE_JWKS_URL"):
        verifiers.append(Verifier(JwksKeys(env["GENSTORE_JWKS_URL"]), policy))
    if env.get("GENSTORE_JWT_PUBLIC_KEY"):
        key = FixedKey(pem_key(env["GENSTORE_JWT_PUBLIC_KEY"]), ASYMMETRIC)
        verifiers.append(Verifier(key, policy))
    if env.get("GENSTORE_JWT_SECRET"):
        verifiers.append(Verifier(FixedKey(env["GENSTORE_JWT_SECRET"], ("HS256",)), policy))
    return verifiers


def verifiers_from_env(env: Mapping[str, str] = os.environ) -> list[Verifier]:
    """Clerk's verifier, then the generic ones, then ``--dev``'s secret, as configured."""
    verifiers = _clerk(env) + _generic(env)
    if env.get(DEV_SECRET_ENV):
        verifiers.append(Verifier(FixedKey(env[DEV_SECRET_ENV], ("HS256",))))
    return verifiers
