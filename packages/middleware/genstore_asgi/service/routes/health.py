"""Health: whether the store's blobs and catalog answer (no token needed).

The answer names the part that failed and nothing else: no path, URL or backend message, which
would tell anyone where the data lives. The reason is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import genstore
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .._deps import ServiceDeps
from .._models import Health, dump
from .._routing import ApiRoute

__all__ = ["ROUTES"]

logger = logging.getLogger("genstore_asgi.service")

_PROBES: dict[str, Callable[[genstore.Store], object]] = {
    "blobs": lambda s: s.blobs.exists("health/probe"),
    "catalog": lambda s: s.catalog.get_operation("health-probe"),
}


def _check(deps: ServiceDeps) -> dict[str, Literal["ok", "unavailable"]]:
    checks: dict[str, Literal["ok", "unavailable"]] = {}
    for part, probe in _PROBES.items():
        try:
            probe(deps.stores.get())
            checks[part] = "ok"
        except Exception as exc:  # any failure means unavailable; the reason goes to the log
            logger.warning("health: %s unavailable: %s: %s", part, type(exc).__name__, exc)
            checks[part] = "unavailable"
    return checks


async def health(request: Request, deps: ServiceDeps) -> Response:
    checks = await run_in_threadpool(_check, deps)
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(dump(body), status_code=200 if ok else 503)


ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute(
        "GET", "/api/health", "health", "Whether the storage answers", public=health,
        tag="health", response=Health, also=(503,),
    ),
)  # fmt: skip
