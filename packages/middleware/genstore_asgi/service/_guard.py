"""The endpoints around the handlers: authenticate, rate-limit, answer errors in one shape, log.

Requests with a valid token are limited per user; everything else (a bad or missing token, the
public routes) per client address, so unauthenticated traffic is limited too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from ._deps import RequestContext, ServiceDeps
from ._errors import error_response, response_for
from ._ratelimit import RateDecision

__all__ = ["Guard", "Handler", "Public", "PublicHandler"]

logger = logging.getLogger("genstore_asgi.service")

Handler = Callable[[Request, RequestContext], Awaitable[Response]]
PublicHandler = Callable[[Request, ServiceDeps], Awaitable[Response]]


async def _limit(deps: ServiceDeps, key: str) -> RateDecision | None:
    try:
        return await deps.limiter.hit(key)
    except Exception as exc:  # a limiter outage must not take the API down: fail open, loudly
        logger.warning("rate limiter unavailable: %s: %s", type(exc).__name__, exc)
        return None


def _address(request: Request) -> str:
    return f"addr:{request.client.host if request.client else '-'}"


def _finish(request: Request, response: Response, who: str, decision: RateDecision | None,
            started: float) -> Response:  # fmt: skip
    if decision is not None:
        response.headers.update(decision.headers())
    logger.info(
        "request",
        extra={
            "method": request.method,
            "path": request.url.path,
            "status": response.status_code,
            "user_id": who,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
    return response


def _too_many() -> Response:
    return error_response(429, "rate limit exceeded")


class Guard:
    """A guarded route's endpoint: a valid bearer token, then the per-user limit."""

    def __init__(self, deps: ServiceDeps, handler: Handler) -> None:
        self.deps = deps
        self.handler = handler

    async def endpoint(self, request: Request) -> Response:
        """The Starlette endpoint (a bound method, so Starlette treats it as request/response)."""
        started = time.perf_counter()
        try:
            user_id = await self.deps.auth.user_id(request.headers.get("authorization"))
        except Exception as exc:
            decision = await _limit(self.deps, _address(request))
            limited = decision is not None and not decision.allowed
            response = _too_many() if limited else response_for(exc)
            return _finish(request, response, "-", decision, started)
        decision = await _limit(self.deps, f"user:{user_id}")
        if decision is not None and not decision.allowed:
            return _finish(request, _too_many(), user_id, decision, started)
        ctx = RequestContext(user_id, self.deps)
        try:
            response = await self.handler(request, ctx)
        except Exception as exc:
            response = response_for(exc)
        finally:
            ctx.reservation.release()
        return _finish(request, response, user_id, decision, started)


class Public:
    """A route that needs no token (health, docs): limited per client address."""

    def __init__(self, deps: ServiceDeps, handler: PublicHandler) -> None:
        self.deps = deps
        self.handler = handler

    async def endpoint(self, request: Request) -> Response:
        started = time.perf_counter()
        decision = await _limit(self.deps, _address(request))
        if decision is not None and not decision.allowed:
            return _finish(request, _too_many(), "-", decision, started)
        try:
            response = await self.handler(request, self.deps)
        except Exception as exc:
            response = response_for(exc)
        return _finish(request, response, "-", decision, started)
