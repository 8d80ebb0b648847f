"""Retrying one S3 request: exponential backoff with full jitter, within a deadline.

Each request (a PUT, one part of a multipart upload, a GET of a range, a page of a listing) is
retried on its own, so a streamed upload never has to be replayed from its start. botocore's own
retries are switched off (``total_max_attempts=1``) and s3fs's are reduced to one attempt, so this
loop (``genstore_adapters._retry``) is the only one and its deadline holds: a call gives up after
at most ``deadline`` seconds of attempts plus one request's connect/read timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .._retry import Attempts, RetryPolicy, retry_call_async

__all__ = ["RetryPolicy", "retrying"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


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

    The last error is raised as it is (``_errors`` translates it where the key is known), with a
    note saying how many attempts were made when the deadline ended the retries.
    """

    def as_is(exc: Exception, attempts: Attempts) -> BaseException:
        if attempts.exhausted:
            exc.add_note(f"gave up after {attempts.count} attempt(s) in {attempts.elapsed:.2f}s")
        return exc

    def log(exc: Exception, attempts: Attempts, delay: float) -> None:
        logger.debug(
            "%s failed (%s: %s); retry %d in %.3fs",
            what,
            type(exc).__name__,
            exc,
            attempts.count,
            delay,
        )

    return await retry_call_async(
        call,
        policy=policy,
        is_transient=transient,
        translate=as_is,
        on_retry=log,
        sleep=sleep,
        clock=clock,
    )
