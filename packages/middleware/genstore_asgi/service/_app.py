"""The reference images service of the seed, on Starlette: the REST API, health, history, gallery.

    POST   /api/images                 {prompt, imageData, metadata}  -> 201 {success, data}
    GET    /api/images?page&limit&status                                -> {success, data, pagination}
    GET    /api/images/{id}            PATCH /api/images/{id}/status {status}
    DELETE /api/images/{id}            GET   /api/images/{id}/file  (the PNG)
    GET    /api/history?type&status&limit&cursor   GET /api/health   GET /gallery
    GET    /openapi.json (OpenAPI 3.1, from the route table)   GET /docs (that document as a page)

Every /api route but health needs ``Authorization: Bearer <jwt>`` and is limited per user.
The routes live in ``routes/`` (one module per area); this module only assembles them.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import genstore
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ._auth import Authenticator
from ._deps import ServiceDeps, StoreAccess
from ._docs import docs_html
from ._gallery import GALLERY_HTML
from ._openapi import openapi_document
from ._ratelimit import RateLimiter
from ._routing import build_routes
from .routes import API_ROUTES

__all__ = ["create_app"]


def create_app(
    store: genstore.Store | None = None,
    *,
    auth: Authenticator | None = None,
    rate_limit: int = 100,
    rate_window: float = 60.0,
) -> Starlette:
    """The images service over ``store`` (default: ``genstore.default_store()``).

    ``auth`` defaults to ``Authenticator.from_env()`` (see ``genstore serve --help``). The store is the caller's: the app
    never closes it.
    """
    deps = ServiceDeps(
        stores=StoreAccess(store),
        auth=auth or Authenticator.from_env(),
        limiter=RateLimiter(rate_limit, rate_window),
    )
    routes = build_routes(API_ROUTES, deps)
    routes += _docs_routes(openapi_document(API_ROUTES))
    routes += _ui_routes(deps)
    return Starlette(routes=routes)


class _Static:
    """A fixed answer (the OpenAPI document and its page are built once, at app creation)."""

    def __init__(self, response: Response) -> None:
        self.response = response

    async def endpoint(self, request: Request) -> Response:
        return self.response


def _docs_routes(document: dict[str, Any]) -> list[BaseRoute]:
    as_json = JSONResponse(document)
    page = HTMLResponse(docs_html(document))
    return [
        Route("/openapi.json", _Static(as_json).endpoint, methods=["GET"], name="openapi"),
        Route("/docs", _Static(page).endpoint, methods=["GET"], name="docs"),
    ]


async def _gallery(request: Request) -> Response:
    return HTMLResponse(GALLERY_HTML)


def _ui_routes(deps: ServiceDeps) -> list[BaseRoute]:
    """The web UI's mount point: ``/ui`` from the ``ui`` sub-package once it exists.

    The ``ui`` package provides ``create_ui(deps: ServiceDeps) -> ASGIApp``; until it lands, the
    static ``/gallery`` page is all there is.
    """
    routes: list[BaseRoute] = [Route("/gallery", _gallery, methods=["GET"], name="gallery")]
    if importlib.util.find_spec(f"{__package__}.ui") is not None:
        from . import ui  # type: ignore[attr-defined,unused-ignore]

        routes.append(Mount("/ui", app=ui.create_ui(deps), name="ui"))
    return routes
