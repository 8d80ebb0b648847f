"""Retrying one S3 request: exponential backoff with full jitter, within a deadline.

Each request (a PUT, one part of a multipart upload, a GET of a range, a page of a listing) is
retried on its own, so a streamed upload never has to be replayed from its start. botocore's own
retries are switched off (``total_max_attempts=1``) and s3fs's are reduced to one attempt, so this
loop is the only one and its deadline holds: a call gives up after at most ``deadline`` seconds of
attempts plus one request's connect/read timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["RetryPolicy", "retrying"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often a transient failure is retried."""

    deadline: float = 5.0
    """Seconds after the first attempt past which no new attempt starts."""
    base: float = 0.05
    """First backoff ceiling in seconds; doubles each attempt, up to ``cap``."""
    cap: float = 1.0
    """Largest backoff ceiling in seconds."""

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (full jitter: uniform in the ceiling)."""
        ceiling: float = min(self.cap, self.base * 2.0 ** min(attempt - 1, 32))
        return rng() * ceiling


async def retrying(
    call: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    transient: Callable[[BaseException], bool],
    what: str = "S3 request",
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Await ``call()`` until it succeeds, fails for good, or the deadline passes.

    The last error is raised as it is, with a note saying how many attempts were made.
    """
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await call()
        except Exception as exc:
            if not transient(exc):
                raise
            delay = policy.backoff(attempt)
            elapsed = clock() - start
            if elapsed + delay > policy.deadline:
                exc.add_note(f"gave up after {attempt} attempt(s) in {elapsed:.2f}s")
                raise
            logger.debug(
                "%s failed (%s: %s); retry %d in %.3fs",
                what,
                type(exc).__name__,
                exc,
                attempt,
                delay,
            )
            await sleep(delay)
