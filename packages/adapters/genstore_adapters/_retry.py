"""Retrying a backend call: exponential backoff with full jitter, within a deadline.

The mechanism only. Each backend passes its own ``is_transient`` (which failures another attempt
may cure) and ``translate`` (the error to raise when retrying stops), because what a failure
means is backend-specific. The rules every backend shares:

- An attempt failing with an error ``is_transient`` rejects is not retried.
- After a transient failure the call waits a random time in ``[0, min(cap, base * 2**(n-1)))``
  ("full jitter": clients failing together spread out instead of stampeding), cut short at the
  deadline. No wait ends past ``deadline`` seconds after the first attempt began, and no attempt
  starts after it; a transient failure with no time left ends the retries.
- Either way ``translate(error, attempts)`` says what to raise: a new error (raised from the
  original, so ``__cause__`` keeps it) or the original itself (re-raised unchanged).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Attempts", "RetryPolicy", "retry_call", "retry_call_async"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How long one call may keep retrying, and how the waits between attempts grow."""

    deadline: float = 5.0
    """Seconds after the first attempt began past which no wait ends and no attempt starts."""
    base: float = 0.05
    """Ceiling of the first wait in seconds; it doubles with each attempt, up to ``cap``."""
    cap: float = 1.0
    """Largest ceiling of one wait in seconds."""

    def backoff(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt ``attempt`` (1-based), before any deadline cut.

        ``rng`` returns a float in ``[0, 1)``; the wait is that fraction of the ceiling.
        """
        # The exponent is bounded so that a very long run of attempts cannot overflow a float.
        ceiling: float = min(self.cap, self.base * 2.0 ** min(attempt - 1, 32))
        return rng() * ceiling


@dataclass(frozen=True, slots=True)
class Attempts:
    """How a retried call has gone so far: given to ``translate`` and ``on_retry``."""

    count: int
    """Attempts made, the failed one included."""
    elapsed: float
    """Seconds since the first attempt began."""
    exhausted: bool
    """True when the deadline ended the retries; False when the error was not transient (or,
    for ``on_retry``, when another attempt follows)."""


Translate = Callable[[Exception, Attempts], BaseException]
OnRetry = Callable[[Exception, Attempts, float], None]


class _Retries:
    """One call's bookkeeping, shared by the sync and async loops."""

    __slots__ = ("clock", "count", "give_up_at", "is_transient", "on_retry", "policy", "start")

    def __init__(
        self,
        policy: RetryPolicy,
        is_transient: Callable[[Exception], bool],
        on_retry: OnRetry | None,
        clock: Callable[[], float],
    ) -> None:
        self.policy = policy
        self.is_transient = is_transient
        self.on_retry = on_retry
        self.clock = clock
        self.start = clock()
        self.give_up_at = self.start + policy.deadline
        self.count = 0

    def failed(self, exc: Exception, translate: Translate) -> float:
        """Seconds to wait before the next attempt; raises what ``translate`` says when none."""
        self.count += 1
        now = self.clock()
        left = self.give_up_at - now
        transient = self.is_transient(exc)
        if not transient or left <= 0:
            error = translate(exc, Attempts(self.count, now - self.start, exhausted=transient))
            if error is exc:
                raise exc
            raise error from exc
        delay = min(left, self.policy.backoff(self.count))
        if self.on_retry is not None:
            self.on_retry(exc, Attempts(self.count, now - self.start, exhausted=False), delay)
        return delay


def retry_call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy,
    is_transient: Callable[[Exception], bool],
    translate: Translate,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], object] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``fn()`` until it returns, retrying failures ``is_transient`` accepts (see module).

    ``on_retry(error, attempts, delay)`` runs before each wait (to log, say). ``fn`` must be safe
    to repeat. Only ``Exception`` subclasses are caught: ``KeyboardInterrupt`` and friends pass.
    """
    retries = _Retries(policy, is_transient, on_retry, clock)
    while True:
        try:
            return fn()
        except Exception as exc:
            delay = retries.failed(exc, translate)
        sleep(delay)


async def retry_call_async(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    is_transient: Callable[[Exception], bool],
    translate: Translate,
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """``retry_call`` for a coroutine function: awaits ``fn()`` and ``sleep(delay)``."""
    retries = _Retries(policy, is_transient, on_retry, clock)
    while True:
        try:
            return await fn()
        except Exception as exc:
            delay = retries.failed(exc, translate)
        await sleep(delay)
