"""The reference images service (the seed's Express service, on Starlette).

    from genstore_asgi.service import create_app, JWTAuthenticator
    app = create_app(store, auth=JWTAuthenticator(secret="..."))

Run it with ``python -m genstore_asgi.service`` (uvicorn, JSON logs, settings from the environment).
"""

from __future__ import annotations

from ._app import create_app
from ._auth import AuthFailed, JWTAuthenticator
from ._ratelimit import RateLimiter

__all__ = ["AuthFailed", "JWTAuthenticator", "RateLimiter", "create_app"]
