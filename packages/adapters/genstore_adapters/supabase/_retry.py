"""Retry transient Supabase failures with exponential backoff and full jitter, within a deadline."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from genstore.exceptions import BackendUnavailable, GenstoreError

from ._errors import describe, is_transient, to_genstore

__all__ = ["RetryPolicy"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long one call may keep retrying, and how the waits between attempts grow."""

    deadline: float = 15.0
    """Seconds from the first attempt after which no new attempt starts."""
    base_delay: float = 0.05
    """The first wait's upper bound; it doubles with each attempt."""
    max_delay: float = 2.0
    """No single wait is longer than this."""

    def call(self, fn: Callable[[], T], *, what: str, upsert: bool = False) -> T:
        """Run ``fn``; retry transient failures; raise only ``genstore.exceptions`` errors.

        ``what`` names the operation for messages; ``upsert`` makes a 409 transient (see
        ``_errors.is_transient``). Exceptions that are not backend errors (bugs) propagate.
        """
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except GenstoreError:
                raise
            except Exception as exc:
                failure = describe(exc)
                if failure is None:
                    raise
                if not is_transient(failure, upsert=upsert):
                    raise to_genstore(failure, what=what) from exc
                # Full jitter: instances retrying together spread out instead of stampeding.
                delay = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
                elapsed = time.monotonic() - started
                if elapsed + delay > self.deadline:
                    last = to_genstore(failure, what=what)
                    raise BackendUnavailable(
                        f"{last} - gave up after {attempt} attempt(s) in {elapsed:.1f}s"
                    ) from exc
                logger.debug(
                    "%s: attempt %d failed (%s %s), retrying in %.2fs",
                    what,
                    attempt,
                    failure.status,
                    failure.code,
                    delay,
                )
                time.sleep(delay)
