"""Retry transient Supabase failures with exponential backoff and full jitter, within a deadline."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from genstore.exceptions import BackendUnavailable, GenstoreError

from .. import _retry
from ._errors import Failure, describe, is_transient, to_genstore

__all__ = ["RetryPolicy"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy(_retry.RetryPolicy):
    """How long one call may keep retrying, and how the waits between attempts grow."""

    deadline: float = 15.0
    """Seconds after the first attempt began past which no wait ends and no attempt starts."""
    cap: float = 2.0
    """Largest ceiling of one wait in seconds."""

    def call(self, fn: Callable[[], T], *, what: str, upsert: bool = False) -> T:
        """Run ``fn``; retry transient failures; raise only ``genstore.exceptions`` errors.

        ``what`` names the operation for messages; ``upsert`` makes a 409 transient (see
        ``_errors.is_transient``). Exceptions that are not backend errors (bugs) propagate.
        """

        def transient(exc: Exception) -> bool:
            failure = _failure(exc)
            return failure is not None and is_transient(failure, upsert=upsert)

        def translate(exc: Exception, attempts: _retry.Attempts) -> BaseException:
            failure = _failure(exc)
            if failure is None:
                return exc
            error = to_genstore(failure, what=what)
            if not attempts.exhausted:
                return error
            return BackendUnavailable(
                f"{error} - gave up after {attempts.count} attempt(s) in {attempts.elapsed:.1f}s"
            )

        def log(exc: Exception, attempts: _retry.Attempts, delay: float) -> None:
            failure = _failure(exc)
            logger.debug(
                "%s: attempt %d failed (%s %s), retrying in %.2fs",
                what,
                attempts.count,
                failure.status if failure else None,
                failure.code if failure else None,
                delay,
            )

        return _retry.retry_call(
            fn, policy=self, is_transient=transient, translate=translate, on_retry=log
        )


def _failure(exc: Exception) -> Failure | None:
    # genstore's own errors (raised inside ``fn``, or already translated) stand as they are.
    return None if isinstance(exc, GenstoreError) else describe(exc)
