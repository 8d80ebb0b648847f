"""What a route needs, as small objects: the store, the caller, the body reader, the guard.

A guarded route is ``async def handler(request, ctx: RequestContext) -> Response``; the ``Guard``
authenticates, applies the rate limit, calls it, turns errors into the one error shape and logs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import genstore
from genstore.exceptions import InvalidInput, PayloadTooLarge
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ._auth import Authenticator
from ._errors import error_response, response_for
from ._ratelimit import RateLimiter

__all__ = [
    "Guard",
    "Handler",
    "RequestContext",
    "ServiceDeps",
    "StoreAccess",
    "query",
    "read_body",
    "validate",
]

logger = logging.getLogger("genstore_asgi.service")

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# Room for the prompt and metadata around the base64 image in a create body.
_BODY_SLACK = 256 * 1024


@dataclass(frozen=True)
class StoreAccess:
    """The store the service works on: the caller's, else ``genstore.default_store()`` on use.

    The store is the caller's: the service never closes it.
    """

    store: genstore.Store | None = None

    def get(self) -> genstore.Store:
        """The store (the default one is opened on first use)."""
        return self.store if self.store is not None else genstore.default_store()

    def max_body(self) -> int:
        """The largest request body accepted: a base64 image of the store's limit, plus slack."""
        # base64 inflates by 4/3.
        return self.get().options.max_image_bytes * 4 // 3 + _BODY_SLACK


@dataclass(frozen=True)
class ServiceDeps:
    """Everything the routes share: store access, the authenticator, the rate limiter."""

    stores: StoreAccess
    auth: Authenticator
    limiter: RateLimiter


@dataclass(frozen=True)
class RequestContext:
    """One authenticated request: who calls, and the store to act on for them."""

    user_id: str
    deps: ServiceDeps

    @property
    def store(self) -> genstore.Store:
        return self.deps.stores.get()

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in the thread pool: store calls block and must not stall the loop."""
        return await run_in_threadpool(fn, *args, **kwargs)


Handler = Callable[[Request, RequestContext], Awaitable[Response]]


async def read_body(request: Request, limit: int) -> bytes:
    """The request body; ``PayloadTooLarge`` past ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body over {limit} bytes", limit=limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"request body over {limit} bytes", limit=limit)
    return bytes(body)


def validate(model: type[M], data: bytes | Mapping[str, Any]) -> M:
    """``data`` (JSON bytes or a mapping) as ``model``; ``InvalidInput`` naming the bad fields.

    The message never repeats the input (it may hold a secret or megabytes of base64).
    """
    try:
        if isinstance(data, bytes):
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            (".".join(str(p) for p in e["loc"]) + ": " if e["loc"] else "") + e["msg"]
            for e in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        raise InvalidInput("; ".join(problems[:5])) from None


def query(request: Request, model: type[M]) -> M:
    """The query string as ``model``; empty values count as absent."""
    return validate(model, {k: v for k, v in request.query_params.items() if v != ""})


class Guard:
    """A route's endpoint: authenticate, rate-limit, run the handler, answer errors, log."""

    def __init__(self, deps: ServiceDeps, handler: Handler) -> None:
        self.deps = deps
        self.handler = handler

    async def endpoint(self, request: Request) -> Response:
        """The Starlette endpoint (a bound method, so Starlette treats it as request/response)."""
        started = time.perf_counter()
        user_id = "-"
        try:
            user_id = await self.deps.auth.user_id(request.headers.get("authorization"))
            wait = self.deps.limiter.check(user_id)
            if wait:
                retry = {"Retry-After": self.deps.limiter.retry_after(wait)}
                response: Response = error_response(429, "rate limit exceeded", retry)
            else:
                response = await self.handler(request, RequestContext(user_id, self.deps))
        except Exception as exc:
            response = response_for(exc)
        _log(request, response, user_id, started)
        return response


def _log(request: Request, response: Response, user_id: str, started: float) -> None:
    logger.info(
        "request",
        extra={
            "method": request.method,
            "path": request.url.path,
            "status": response.status_code,
            "user_id": user_id,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
