"""What a route needs, as small objects: the store, the limits, the caller, input validation.

A guarded route is ``async def handler(request, ctx: RequestContext) -> Response`` (see
``_guard``); public routes get the ``ServiceDeps`` themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import genstore
from genstore.exceptions import GenstoreError, InvalidInput
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from ._auth import Authenticator
from ._ratelimit import RateLimiter
from ._uploads import UploadBudget, UploadReservation

__all__ = [
    "RequestContext",
    "ServiceDeps",
    "StoreAccess",
    "StoredDataUnreadable",
    "query",
    "validate",
]

P = ParamSpec("P")
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

logger = logging.getLogger("genstore_asgi.service")


class StoredDataUnreadable(GenstoreError):
    """A record read from the store failed validation (HTTP 503; ``genstore verify`` finds it)."""


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
    """Everything the routes share: store access, auth, rate limits, the upload budget."""

    stores: StoreAccess
    auth: Authenticator
    limiter: RateLimiter
    uploads: UploadBudget
    base_url: str | None = None
    """Absolute links start with this when set; otherwise links are paths (never from Host)."""
    dev_token: str | None = None
    """A development token the web UI offers as a one-click sign-in (``--dev`` only)."""


@dataclass
class RequestContext:
    """One authenticated request: who calls, the store to act on, its share of the upload budget."""

    user_id: str
    deps: ServiceDeps
    reservation: UploadReservation = field(init=False)

    def __post_init__(self) -> None:
        self.reservation = UploadReservation(self.deps.uploads)

    @property
    def store(self) -> genstore.Store:
        return self.deps.stores.get()

    async def body(self, request: Request) -> bytearray:
        """The request body, within the body limit and the upload budget (held until release)."""
        return await self.reservation.read(request, self.deps.stores.max_body())

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``fn(*args, **kwargs)`` in the thread pool: store calls block and must not stall the loop."""
        return await run_in_threadpool(fn, *args, **kwargs)

    async def read(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """``run`` for a call that only reads: a record failing validation there was stored
        corrupt (a catalog row edited by hand, a half-written migration), not sent by the
        caller, and is answered as ``StoredDataUnreadable`` (503), not as a crash."""
        try:
            return await run_in_threadpool(fn, *args, **kwargs)
        except ValidationError as exc:
            logger.error("stored record failed validation: %s", exc)
            raise StoredDataUnreadable("stored data is unreadable") from None


def validate(model: type[M], data: bytes | bytearray | Mapping[str, Any]) -> M:
    """``data`` (JSON bytes or a mapping) as ``model``; ``InvalidInput`` naming the bad fields.

    The message never repeats the input (it may hold a secret or megabytes of base64).
    """
    try:
        if isinstance(data, bytes | bytearray):
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
