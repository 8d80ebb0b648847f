"""Health: whether the store's blobs and catalog answer (no token needed)."""

from __future__ import annotations

from genstore.exceptions import GenstoreError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._deps import ServiceDeps
from .._routing import ApiRoute

__all__ = ["ROUTES"]


async def health(request: Request, deps: ServiceDeps) -> Response:
    def probe() -> None:
        s = deps.stores.get()
        s.blobs.exists("health/probe")
        s.catalog.get_operation("health-probe")

    try:
        await run_in_threadpool(probe)
    except GenstoreError as exc:
        return JSONResponse({"status": "unavailable", "error": str(exc)}, status_code=503)
    s = deps.stores.get()
    return JSONResponse({"status": "ok", "store": s.blobs.url, "catalog": type(s.catalog).__name__})


ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET", "/api/health", "health", "Whether the store answers", public=health, tag="health"
    ),
)
