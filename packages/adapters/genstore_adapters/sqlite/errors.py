"""sqlite3 errors -> genstore errors, and which of them another attempt may cure.

``busy_timeout`` covers most contention between processes; a WAL checkpoint can still answer
"database is locked" or "busy", which is retried with the adapters' shared backoff
(``genstore_adapters._retry``) until the catalog's timeout. Every other database error fails at
once as ``BackendUnavailable``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from genstore.exceptions import BackendUnavailable

from .._retry import Attempts, RetryPolicy, retry_call

__all__ = ["is_transient", "retrying"]

T = TypeVar("T")


def is_transient(exc: Exception) -> bool:
    """A lock held by another connection: waiting may cure it."""
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def retrying(fn: Callable[[], T], *, path: Path, deadline: float) -> T:
    """Call ``fn``, retrying transient lock errors until ``deadline`` seconds; raise
    ``BackendUnavailable`` for any ``sqlite3`` error left (other errors pass unchanged)."""

    def translate(exc: Exception, attempts: Attempts) -> BaseException:
        if isinstance(exc, sqlite3.DatabaseError):
            return BackendUnavailable(f"SQLite catalog {path}: {exc}")
        return exc

    policy = RetryPolicy(deadline=deadline, base=0.01, cap=0.5)
    return retry_call(fn, policy=policy, is_transient=is_transient, translate=translate)
