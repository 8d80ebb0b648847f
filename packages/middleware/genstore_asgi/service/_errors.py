"""One error shape for every answer of the service, and the table from exceptions to statuses.

Every error is ``{"success": false, "error": "<short reason>"}`` (the seed's shape). The reason
never carries a path, a URL or a backend's own message for server-side failures: those are logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from genstore.exceptions import (
    BackendUnavailable,
    CorruptRecord,
    GenstoreError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)
from starlette.responses import JSONResponse

from ._auth import AuthFailed
from ._deps import StoredDataUnreadable
from ._keys import KeysUnavailable
from ._uploads import Busy

__all__ = ["ERROR_TABLE", "ErrorRule", "error_response", "response_for"]

logger = logging.getLogger("genstore_asgi.service")


@dataclass(frozen=True)
class ErrorRule:
    """How one exception class is answered: the status, and the reason shown (None: ``str(exc)``)."""

    exc_type: type[Exception]
    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    log: bool = False


_RETRY = (("Retry-After", "5"),)

# First match wins, so subclasses come before their bases (PayloadTooLarge is an InvalidInput).
ERROR_TABLE: tuple[ErrorRule, ...] = (
    ErrorRule(AuthFailed, 401, headers=(("WWW-Authenticate", "Bearer"),)),
    ErrorRule(PayloadTooLarge, 413),
    ErrorRule(InvalidInput, 400),
    ErrorRule(NotFound, 404, "not found"),
    ErrorRule(Busy, 503, "too many uploads in flight, retry shortly", (("Retry-After", "1"),)),
    ErrorRule(
        StoredDataUnreadable, 503, "stored data is unreadable: an operator must run genstore verify"
    ),
    ErrorRule(
        CorruptRecord,
        503,
        "stored data is unreadable: an operator must run genstore verify",
        log=True,
    ),
    ErrorRule(KeysUnavailable, 503, "token verification keys unavailable, try again later", _RETRY),
    ErrorRule(BackendUnavailable, 503, "storage unavailable, try again later", _RETRY, log=True),
)


def error_response(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The service's one error body with ``status``."""
    return JSONResponse({"success": False, "error": reason}, status_code=status, headers=headers)


def response_for(exc: Exception) -> JSONResponse:
    """The answer to ``exc`` by ``ERROR_TABLE``; any other error is a logged 500."""
    for rule in ERROR_TABLE:
        if isinstance(exc, rule.exc_type):
            if rule.log:
                logger.error("%s: %s", type(exc).__name__, exc)
            reason = rule.reason if rule.reason is not None else str(exc)
            return error_response(rule.status, reason, dict(rule.headers))
    logger.error("request failed", exc_info=exc)
    name = type(exc).__name__ if isinstance(exc, GenstoreError) else "error"
    return error_response(500, f"internal error: {name}")
