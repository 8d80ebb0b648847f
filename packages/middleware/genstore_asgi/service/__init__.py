"""The reference images service (the seed's Express service, on Starlette).

    from genstore_asgi.service import create_app, JWTAuthenticator
    app = create_app(store, auth=JWTAuthenticator(secret="..."))

Run it with ``genstore serve`` or ``python -m genstore_asgi.service`` (uvicorn, JSON logs, settings
from the environment); mount it in an existing app with ``app.mount("/images", create_app(store))``.
"""

from __future__ import annotations

from ._app import create_app
from ._auth import Authenticator, AuthFailed, JWTAuthenticator, TokenPolicy, Verifier
from ._keys import FixedKey, JwksKeys
from ._ratelimit import RateLimiter
from ._server import ServeOptions, app_from_env, dev_token, serve

__all__ = [
    "AuthFailed",
    "Authenticator",
    "FixedKey",
    "JWTAuthenticator",
    "JwksKeys",
    "RateLimiter",
    "ServeOptions",
    "TokenPolicy",
    "Verifier",
    "app_from_env",
    "create_app",
    "dev_token",
    "serve",
]
