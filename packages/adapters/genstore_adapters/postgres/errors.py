"""psycopg errors -> genstore errors, and the retry loop for the transient ones.

The shared SQLSTATE table (``genstore_adapters._sqlstate``) decides: connection trouble, server
shutdowns and restarts, serialization failures and deadlocks, plus pool timeouts and client-side
connection failures (which carry no SQLSTATE), are retried with exponential backoff and full
jitter until the call's deadline (``genstore_adapters._retry``); everything else is translated at
once. A connection the server refuses for good (no such database or role, wrong password,
no CONNECT privilege) carries no SQLSTATE at connect time: its message gives the code back
(``_sqlstate.connect_sqlstate``), so it fails at once as ``ConfigurationError`` or ``AuthError``.
No psycopg error leaves this module untranslated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
from genstore.exceptions import (
    AlreadyExists,
    AuthError,
    BackendUnavailable,
    ConfigurationError,
    GenstoreError,
    InvalidInput,
)
from psycopg_pool import PoolClosed, PoolTimeout, TooManyRequests

from .._retry import Attempts, RetryPolicy, retry_call
from .._sqlstate import CONFIGURATION_CODES, Meaning, classify, connect_sqlstate

__all__ = ["is_transient", "retrying", "sqlstate_of", "translate"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def sqlstate_of(exc: psycopg.Error) -> str | None:
    """The error's SQLSTATE; for a refused connection, the one its message stands for."""
    if exc.sqlstate is not None:
        return exc.sqlstate
    if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, PoolTimeout):
        return connect_sqlstate(str(exc))
    return None


def _detail(exc: psycopg.Error) -> str:
    """The server's one-line reason: libpq's connect messages lose their prefix and newlines."""
    text = exc.diag.message_primary or str(exc)
    text = text.rpartition("FATAL:")[2] if "FATAL:" in text else text
    return " ".join(text.split())


def is_transient(exc: psycopg.Error) -> bool:
    """Whether another attempt may succeed where ``exc`` failed."""
    if isinstance(exc, PoolClosed):
        return False
    if isinstance(exc, PoolTimeout | TooManyRequests):
        return True
    state = sqlstate_of(exc)
    if state is None:
        # Client-side failures (connection refused, reset, closed by the server) carry no state.
        return isinstance(exc, psycopg.OperationalError)
    return classify(state) is Meaning.RETRY


def translate(exc: psycopg.Error, what: str) -> GenstoreError:
    """The genstore error for a psycopg error that retrying will not cure."""
    state = sqlstate_of(exc) or ""
    meaning = classify(state)
    detail = _detail(exc)
    if state in CONFIGURATION_CODES:
        return ConfigurationError(f"{what}: check the catalog URL: PostgreSQL says {detail}")
    if meaning is Meaning.CONFLICT:
        return AlreadyExists(f"{what}: {detail}")
    if isinstance(exc, psycopg.DataError) or meaning is Meaning.INPUT:
        return InvalidInput(f"{what}: PostgreSQL refused a value: {detail}")
    if meaning is Meaning.AUTH:
        return AuthError(f"{what}: PostgreSQL refused the credentials or privilege: {detail}")
    if isinstance(exc, PoolClosed):
        return BackendUnavailable(f"{what}: the PostgreSQL catalog is closed")
    return BackendUnavailable(f"{what}: PostgreSQL error: {detail}")


def retrying(
    attempt: Callable[[float], T],
    *,
    what: str,
    deadline: float,
    explain: Callable[[psycopg.Error], str] = str,
) -> T:
    """Call ``attempt(seconds_left)`` until it returns, retrying transient psycopg errors.

    Raises ``BackendUnavailable`` once ``deadline`` seconds have passed (the message ends with
    ``explain(last_error)``), or the translated error at once for a non-transient one; errors
    that are not psycopg's pass unchanged. ``attempt`` must be safe to repeat: every catalog
    statement is an idempotent upsert, delete or read.
    """
    give_up_at = time.monotonic() + deadline

    def once() -> T:
        return attempt(max(give_up_at - time.monotonic(), 0.01))

    def give_up(exc: Exception, attempts: Attempts) -> BaseException:
        if not isinstance(exc, psycopg.Error):
            return exc
        if not attempts.exhausted:
            return translate(exc, what)
        return BackendUnavailable(
            f"{what}: PostgreSQL did not answer within {deadline:g} s "
            f"({attempts.count} attempts): {explain(exc)}"
        )

    def log(exc: Exception, attempts: Attempts, delay: float) -> None:
        logger.debug("%s: transient PostgreSQL error, retry in %.3f s: %s", what, delay, exc)

    return retry_call(
        once,
        policy=RetryPolicy(deadline=deadline),
        is_transient=lambda exc: isinstance(exc, psycopg.Error) and is_transient(exc),
        translate=give_up,
        on_retry=log,
    )
