"""One translation table from Supabase Storage, PostgREST and httpx errors to genstore errors.

Supabase Storage answers almost every 4xx as HTTP 400 with the real status as a *string* in the
body (``{"statusCode": "404", "error": "not_found", ...}``); storage3 copies that string into
``StorageApiError.status``. PostgREST errors carry a SQLSTATE or ``PGRST`` code instead of a status.
Both are first reduced to a ``Failure`` with the status the error stands for, then mapped by
``_BY_STATUS``: nothing else in this package decides what a backend error means. SQLSTATE codes
are read through the table every PostgreSQL catalog shares (``genstore_adapters._sqlstate``):
only connection-level ones are retried. ``call`` runs a request under the shared backoff
(``genstore_adapters._retry``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from genstore.exceptions import (
    AlreadyExists,
    AuthError,
    BackendUnavailable,
    ConfigurationError,
    GenstoreError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)

from .._retry import Attempts, RetryPolicy, retry_call
from .._sqlstate import Meaning, classify

__all__ = ["Failure", "call", "describe", "is_transient", "to_genstore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

SCHEMA_MISSING = -1
"""Pseudo-status: the genstore tables or columns are not there (the migration was not applied)."""
BAD_URL = -2
"""Pseudo-status: the configured URL cannot be used (not http or https)."""
FAILED = -3
"""Pseudo-status: a database error no retry cures (a SQLSTATE the shared table does not retry)."""

_BY_STATUS: dict[int, type[GenstoreError]] = {
    SCHEMA_MISSING: ConfigurationError,
    BAD_URL: ConfigurationError,
    FAILED: BackendUnavailable,
    400: InvalidInput,
    401: AuthError,
    403: AuthError,
    404: NotFound,
    406: NotFound,
    409: AlreadyExists,
    413: PayloadTooLarge,
    415: InvalidInput,
    416: InvalidInput,
    422: InvalidInput,
}
"""What each (real) status means; anything else, 5xx included, is ``BackendUnavailable``."""

_TRANSIENT_STATUSES = frozenset({408, 425, 429})
"""4xx statuses worth retrying (timeouts, throttling); every 5xx is retried too."""

# PostgREST codes that stand for an HTTP status (https://postgrest.org/en/stable/references/errors.html).
_POSTGREST_CODES: dict[str, int] = {
    "PGRST000": 503,  # could not connect to the database
    "PGRST001": 503,  # database connection error
    "PGRST002": 503,  # schema cache not loaded yet
    "PGRST003": 504,  # timed out acquiring a pool connection
    "PGRST103": 416,  # offset out of range
    "PGRST116": 406,  # not exactly one row for a single-object request
    "PGRST204": SCHEMA_MISSING,  # column not in the schema cache
    "PGRST205": SCHEMA_MISSING,  # table not in the schema cache
    "PGRST301": 401,  # JWT invalid
    "PGRST302": 401,  # anonymous access disabled
    "PGRST303": 401,  # JWT claims invalid
}
_BY_MEANING: dict[Meaning, int] = {
    Meaning.RETRY: 503,
    Meaning.CONFLICT: 409,
    Meaning.INPUT: 400,
    Meaning.AUTH: 403,
    Meaning.SCHEMA: SCHEMA_MISSING,
    Meaning.FAIL: FAILED,
}
"""SQLSTATE meaning (the shared table) -> the status it stands for here."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A backend error reduced to what it means: the real status, a code and the server's text."""

    status: int
    code: str
    message: str


def _int_status(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 500


def describe(exc: BaseException) -> Failure | None:
    """The ``Failure`` an exception from storage3, postgrest or httpx stands for; None otherwise."""
    import httpx
    from postgrest.exceptions import APIError
    from pydantic import ValidationError
    from storage3.exceptions import StorageApiError
    from storage3.utils import StorageException

    if isinstance(exc, StorageApiError):
        return Failure(_int_status(exc.status), str(exc.code), str(exc.message))
    if isinstance(exc, APIError):
        return _describe_postgrest(exc)
    if isinstance(exc, StorageException):
        return Failure(502, "StorageException", str(exc))
    if isinstance(exc, httpx.TimeoutException):
        return Failure(504, type(exc).__name__, str(exc) or "timed out")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return Failure(BAD_URL, type(exc).__name__, str(exc))
    if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)):
        return Failure(503, type(exc).__name__, str(exc) or "connection failed")
    if isinstance(exc, httpx.HTTPError):
        return Failure(502, type(exc).__name__, str(exc))
    if isinstance(exc, (ValidationError, json.JSONDecodeError)):
        # The server answered 2xx with a body the client could not read: not retried.
        return Failure(502, "BadResponse", str(exc).splitlines()[0])
    return None


def _describe_postgrest(exc: object) -> Failure:
    code = str(getattr(exc, "code", None) or "")
    message = str(getattr(exc, "message", None) or "")
    details = getattr(exc, "details", None)
    text = f"{message} ({details})" if details and len(str(details)) < 300 else message
    if code.isdigit() and len(code) == 3:
        # postgrest-py puts the HTTP status there when the body was not PostgREST JSON
        # (a gateway error page, an injected 503).
        return Failure(int(code), code, text or f"HTTP {code}")
    if code.startswith("PGRST") or len(code) != 5:
        status = _POSTGREST_CODES.get(code, 500)
    else:
        status = _BY_MEANING[classify(code)]
    return Failure(status, code, text or code)


def is_transient(failure: Failure, *, upsert: bool = False) -> bool:
    """Whether retrying may succeed: 5xx, timeouts, throttling, dropped connections.

    A 409 while upserting is a concurrent writer holding the object: retried too, so the last
    writer wins as an upsert should.
    """
    if failure.status >= 500 or failure.status in _TRANSIENT_STATUSES:
        return True
    return upsert and failure.status == 409


def to_genstore(failure: Failure, *, what: str) -> GenstoreError:
    """The genstore error for ``failure``; ``what`` names the operation and key for the message."""
    cls = _BY_STATUS.get(failure.status, BackendUnavailable)
    detail = f"{failure.message} [{failure.code}]" if failure.code else failure.message
    if cls is AuthError:
        return AuthError(
            f"{what}: Supabase refused the credentials ({detail}); check that "
            "SUPABASE_SERVICE_ROLE_KEY is the service role key of this project"
        )
    if failure.status == BAD_URL:
        return ConfigurationError(f"{what}: check SUPABASE_URL / SUPABASE_STORAGE_URL ({detail})")
    if cls is ConfigurationError:
        return ConfigurationError(
            f"{what}: {detail}; apply the SQL printed by `genstore supabase-sql` "
            "(tables genstore_operations and genstore_images)"
        )
    if cls is PayloadTooLarge:
        return PayloadTooLarge(f"{what}: over the bucket's size limit ({detail})")
    if cls is BackendUnavailable:
        if failure.status == FAILED:
            return BackendUnavailable(f"{what}: the Supabase database refused ({detail})")
        return BackendUnavailable(f"{what}: Supabase failed (HTTP {failure.status}: {detail})")
    return cls(f"{what}: {detail}")


def call(policy: RetryPolicy, fn: Callable[[], T], *, what: str, upsert: bool = False) -> T:
    """Run ``fn`` under ``policy``; retry transient failures; raise only genstore errors.

    ``what`` names the operation for messages; ``upsert`` makes a 409 transient (see
    ``is_transient``). Exceptions that are not backend errors (bugs) propagate.
    """

    def transient(exc: Exception) -> bool:
        failure = _failure(exc)
        return failure is not None and is_transient(failure, upsert=upsert)

    def translate(exc: Exception, attempts: Attempts) -> BaseException:
        failure = _failure(exc)
        if failure is None:
            return exc
        error = to_genstore(failure, what=what)
        if not attempts.exhausted:
            return error
        return BackendUnavailable(
            f"{error} - gave up after {attempts.count} attempt(s) in {attempts.elapsed:.1f}s"
        )

    def log(exc: Exception, attempts: Attempts, delay: float) -> None:
        failure = _failure(exc)
        logger.debug(
            "%s: attempt %d failed (%s %s), retrying in %.2fs",
            what,
            attempts.count,
            failure.status if failure else None,
            failure.code if failure else None,
            delay,
        )

    return retry_call(fn, policy=policy, is_transient=transient, translate=translate, on_retry=log)


def _failure(exc: Exception) -> Failure | None:
    # genstore's own errors (raised inside ``fn``, or already translated) stand as they are.
    return None if isinstance(exc, GenstoreError) else describe(exc)
