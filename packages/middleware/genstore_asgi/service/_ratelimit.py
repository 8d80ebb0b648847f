"""Rate limits through the ``limits`` library: a moving window per key, in memory by default or
in Redis (``redis://...``) so that every instance of the service shares one count.

Keys are ``user:<id>`` for authenticated requests (the seed's 100/minute) and ``addr:<ip>`` for
requests without a valid token. Storage calls are async (``limits.aio``): Redis never blocks the
event loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from genstore.exceptions import ConfigurationError
from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

__all__ = ["RateDecision", "RateLimiter", "limit_item"]


def limit_item(limit: int | str, window: float = 60.0) -> RateLimitItem:
    """``"100/minute"`` (limits' notation), or ``limit`` requests per ``window`` seconds."""
    text = limit if isinstance(limit, str) else f"{limit}/{max(1, round(window))} seconds"
    try:
        return parse(text)
    except ValueError as exc:
        raise ConfigurationError(f"rate limit {text!r} is not like '100/minute': {exc}") from None


def _async_uri(uri: str) -> tuple[str, dict[str, str]]:
    if uri.startswith(("redis://", "rediss://", "redis+unix://")):
        # redis-py's asyncio client (the async+ prefix picks limits' async storage).
        return f"async+{uri}", {"implementation": "redispy"}
    if uri.startswith("memory://"):
        return "async+memory://", {}
    if uri.startswith("async+"):
        return uri, {}
    raise ConfigurationError("GENSTORE_RATE_LIMIT_STORAGE must be memory:// or redis://...")


@dataclass(frozen=True)
class RateDecision:
    """Whether one request may go on, and the X-RateLimit-* headers to answer with."""

    allowed: bool
    limit: int
    remaining: int
    reset_at: float
    """Epoch seconds when the oldest counted request leaves the window."""

    def headers(self) -> dict[str, str]:
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.reset_at - time.time())))
        return out


class RateLimiter:
    """Counts requests per key: ``per_user`` for ``user:`` keys, ``per_address`` for the rest."""

    def __init__(
        self,
        per_user: int | str = "100/minute",
        window: float = 60.0,
        *,
        per_address: int | str = "120/minute",
        storage: str = "memory://",
    ) -> None:
        self.per_user = limit_item(per_user, window)
        self.per_address = limit_item(per_address, window)
        uri, options = _async_uri(storage)
        backend = storage_from_string(uri, **options)
        if not isinstance(backend, Storage):
            raise ConfigurationError(f"{storage!r} has no async rate-limit storage")
        self.storage = backend
        self._limiter = MovingWindowRateLimiter(backend)

    async def aclose(self) -> None:
        """Close the storage's connections (Redis); memory storage has none."""
        # limits has no close(): its Redis storage keeps the redis-py client on its bridge.
        client = getattr(getattr(self.storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()

    async def hit(self, key: str) -> RateDecision:
        """Count one request for ``key`` (``user:<id>`` or ``addr:<ip>``) if the limit allows."""
        item = self.per_user if key.startswith("user:") else self.per_address
        allowed = await self._limiter.hit(item, "genstore", key)
        stats = await self._limiter.get_window_stats(item, "genstore", key)
        return RateDecision(allowed, item.amount, max(0, stats.remaining), stats.reset_time)
