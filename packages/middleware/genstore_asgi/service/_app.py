"""The reference images service of the seed, on Starlette: the REST API, health, history, gallery.

    POST   /api/images                 {prompt, imageData, metadata}  -> 201 {success, data}
    GET    /api/images?page&limit&status                                -> {success, data, pagination}
    GET    /api/images/{id}            PATCH /api/images/{id}/status {status}
    DELETE /api/images/{id}            GET   /api/images/{id}/file  (the PNG)
    GET    /api/history?type&status&limit&cursor   GET /api/health   GET /gallery
    GET    /openapi.json (OpenAPI 3.1, from the route table)   GET /docs (that document as a page)

Every /api route but health needs ``Authorization: Bearer <jwt>`` and is limited per user; the
others are limited per client address. The routes live in ``routes/`` (one module per area);
this module only assembles them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import genstore
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ._auth import Authenticator
from ._deps import ServiceDeps, StoreAccess
from ._docs import docs_html
from ._errors import error_response, response_for
from ._gallery import GALLERY_HTML
from ._guard import Public
from ._metrics import MetricsPage
from ._openapi import openapi_document
from ._ratelimit import RateLimiter
from ._routing import build_routes
from ._uploads import UploadBudget
from .routes import API_ROUTES
from .ui import ui_routes

__all__ = ["DEFAULT_MAX_INFLIGHT_BYTES", "create_app"]

DEFAULT_MAX_INFLIGHT_BYTES = 48 * 1024 * 1024


def create_app(
    store: genstore.Store | None = None,
    *,
    auth: Authenticator | None = None,
    rate_limit: int | str = "100/minute",
    rate_window: float = 60.0,
    anonymous_rate_limit: int | str = "120/minute",
    rate_limit_storage: str = "memory://",
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES,
    base_url: str | None = None,
    trusted_hosts: Sequence[str] = (),
    close_store: bool = False,
    dev_token: str | None = None,
) -> Starlette:
    """The images service over ``store`` (default: ``genstore.default_store()``).

    ``auth`` defaults to ``Authenticator.from_env()`` (see ``genstore serve --help``).
    ``rate_limit`` is per user (``"100/minute"``, or an int per ``rate_window`` seconds);
    ``anonymous_rate_limit`` per client address for requests without a valid token;
    ``rate_limit_storage`` ``memory://`` or ``redis://...`` (shared by every instance).
    ``max_inflight_bytes`` bounds request bodies being read and handled (503 beyond it).
    Links are paths unless ``base_url`` is given; ``trusted_hosts`` refuses other Host headers.
    ``dev_token`` offers a one-click sign-in to the web UI (``genstore serve --dev``).
    The store is the caller's: the app closes it at shutdown only with ``close_store``.
    Mounted in another app, this app's lifespan does not run: close the limiter's connections
    with ``await app.state.limiter.aclose()`` in yours when it uses Redis.
    """
    deps = ServiceDeps(
        stores=StoreAccess(store),
        auth=auth or Authenticator.from_env(),
        limiter=RateLimiter(
            rate_limit, rate_window, per_address=anonymous_rate_limit, storage=rate_limit_storage
        ),
        uploads=UploadBudget(max_inflight_bytes),
        base_url=base_url.rstrip("/") if base_url else None,
        dev_token=dev_token,
    )
    routes = build_routes(API_ROUTES, deps)
    routes += _page_routes(deps)
    routes += _ui_routes(deps)
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=list(trusted_hosts))]
    app = Starlette(
        routes=routes,
        middleware=middleware if trusted_hosts else None,
        lifespan=_Lifespan(deps, close_store=close_store),
        exception_handlers={HTTPException: _http_error, Exception: _crash},
    )
    app.state.limiter = deps.limiter
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    """The router's own answers (no such path, method not allowed) in the one error shape."""
    if not isinstance(exc, HTTPException):  # registered for HTTPException only
        return response_for(exc)
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _crash(request: Request, exc: Exception) -> Response:
    return response_for(exc)


class _Lifespan:
    """At shutdown: close the limiter's connections, and the store when the app owns it."""

    def __init__(self, deps: ServiceDeps, *, close_store: bool) -> None:
        self.deps = deps
        self.close_store = close_store

    @asynccontextmanager
    async def __call__(self, app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.deps.limiter.aclose()
            if self.close_store:
                self.deps.stores.get().close()


class _Page:
    """A fixed body built once (the OpenAPI document, its page, the gallery); a fresh response
    per request, since the guard adds per-request headers."""

    def __init__(self, body: str, media_type: str) -> None:
        self.body = body.encode()
        self.media_type = media_type

    async def __call__(self, request: Request, deps: ServiceDeps) -> Response:
        return Response(self.body, media_type=self.media_type)


def _page_routes(deps: ServiceDeps) -> list[BaseRoute]:

    document = openapi_document(API_ROUTES)
    pages: dict[str, tuple[str, Callable[[Request, ServiceDeps], Awaitable[Response]]]] = {
        "/openapi.json": ("openapi", _Page(json.dumps(document), "application/json")),
        "/docs": ("docs", _Page(docs_html(document), "text/html; charset=utf-8")),
        "/gallery": ("gallery", _Page(GALLERY_HTML, "text/html; charset=utf-8")),
        "/metrics": ("metrics", MetricsPage()),
    }
    return [
        Route(path, Public(deps, page).endpoint, methods=["GET"], name=name)
        for path, (name, page) in pages.items()
    ]


def _ui_routes(deps: ServiceDeps) -> list[BaseRoute]:
    """The web UI at ``/ui``: the signed-in user's operations and images."""
    return [ui_routes(deps.stores.get, deps.auth.user_id, dev_token=deps.dev_token)]
