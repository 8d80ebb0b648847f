"""One table turning botocore, aiobotocore, aiohttp and s3fs errors into genstore errors.

s3fs hands most S3 answers over already turned into OSError subclasses, with the botocore
``ClientError`` as their cause; connection trouble arrives as raw botocore or aiohttp errors. Both
are read here: the S3 error code (or, failing that, the HTTP status) decides, then the exception
type. Nothing in this module imports botocore, so it loads without the ``s3`` extra.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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

__all__ = ["is_connection_error", "is_transient", "translate", "translate_s3_errors"]

_BY_CODE: dict[str, type[GenstoreError]] = {
    "NoSuchKey": NotFound,
    "NotFound": NotFound,
    "404": NotFound,
    "NoSuchUpload": NotFound,
    "NoSuchVersion": NotFound,
    "NoSuchBucket": ConfigurationError,
    "InvalidBucketName": ConfigurationError,
    "AccessDenied": AuthError,
    "AllAccessDisabled": AuthError,
    "AccountProblem": AuthError,
    "ExpiredToken": AuthError,
    "Forbidden": AuthError,
    "InvalidAccessKeyId": AuthError,
    "InvalidToken": AuthError,
    "SignatureDoesNotMatch": AuthError,
    "Unauthorized": AuthError,
    "401": AuthError,
    "403": AuthError,
    "EntityTooLarge": PayloadTooLarge,
    "KeyTooLongError": InvalidInput,
}
"""S3 error code -> genstore error (PreconditionFailed depends on the request, see below)."""

_BY_STATUS: dict[int, type[GenstoreError]] = {
    401: AuthError,
    403: AuthError,
    404: NotFound,
    413: PayloadTooLarge,
}

_TRANSIENT_CODES = frozenset(
    {
        "BandwidthLimitExceeded",
        "ConditionalRequestConflict",  # a concurrent conditional write: AWS says retry
        "InternalError",
        "OperationAborted",
        "PriorRequestNotComplete",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestTimeout",
        "RequestTimeoutException",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)

_CONFIG_ERRORS = frozenset(
    {
        "NoCredentialsError",
        "PartialCredentialsError",
        "NoRegionError",
        "ProfileNotFound",
        "InvalidConfigError",
        "UnknownCredentialError",
    }
)
_LIBRARIES = frozenset({"botocore", "aiobotocore", "aiohttp", "s3fs", "fsspec"})


def _client_error(exc: BaseException) -> tuple[str, int, dict[str, Any]] | None:
    """(code, HTTP status, error dict) of the botocore ClientError in ``exc``'s chain, if any."""
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 6:
        response = getattr(cur, "response", None)
        if isinstance(response, dict) and isinstance(response.get("Error"), dict):
            error: dict[str, Any] = response["Error"]
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            code = str(error.get("Code") or status)
            return code, int(status), error
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


def is_connection_error(exc: BaseException) -> bool:
    """The server could not be reached or stopped answering (refused, reset, timed out)."""
    if isinstance(exc, GenstoreError):
        return False
    if isinstance(exc, (ConnectionError, TimeoutError, asyncio.TimeoutError)):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    # botocore: EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
    # ConnectionClosedError all derive from ConnectionError or HTTPClientError; aiohttp's from
    # ClientConnectionError or ClientPayloadError; fsspec's sync timeout is FSTimeoutError.
    return bool(
        names
        & {
            "HTTPClientError",
            "ConnectionError",
            "ClientConnectionError",
            "ClientPayloadError",
            "ServerDisconnectedError",
            "FSTimeoutError",
            "ResponseStreamingError",
            "IncompleteReadError",
        }
    )


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt: connection trouble, throttling, 5xx, request timeouts."""
    if isinstance(exc, GenstoreError):
        return False
    found = _client_error(exc)
    if found is not None:
        code, status, _ = found
        return code in _TRANSIENT_CODES or status == 429 or status >= 500
    if isinstance(exc, OSError) and exc.errno == errno.EBUSY:  # s3fs: SlowDown, 503
        return True
    return is_connection_error(exc)


def translate(exc: BaseException, key: str, *, writing: bool = False) -> GenstoreError:
    """The genstore error for an S3 failure on ``key`` (``writing``: a 412 means taken)."""
    if isinstance(exc, GenstoreError):
        return exc
    notes = "; ".join(getattr(exc, "__notes__", ()))
    detail = f"{type(exc).__name__}: {exc}" + (f" ({notes})" if notes else "")
    found = _client_error(exc)
    if found is not None:
        code, status, error = found
        message = error.get("Message") or str(exc)
        if code in ("PreconditionFailed", "412") or status == 412:
            if writing or error.get("Condition") == "If-None-Match":
                return AlreadyExists(f"a blob already exists at {key!r}")
            return BackendUnavailable(f"{key!r} changed while it was being read")
        if code == "NoSuchBucket":
            return ConfigurationError(f"the S3 bucket does not exist ({message})")
        cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
        if cls is NotFound:
            return NotFound(f"no blob at {key!r}")
        if cls is not None:
            return cls(f"S3 refused {key!r}: {code}: {message}")
        if is_transient(exc):
            return BackendUnavailable(f"S3 did not complete the request on {key!r}: {detail}")
        return BackendUnavailable(f"S3 refused the request on {key!r}: {code}: {message}")
    name = type(exc).__name__
    if name in _CONFIG_ERRORS:
        return ConfigurationError(
            f"S3 is not configured: {exc} (credentials and region come from the environment, "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION, as botocore reads them)"
        )
    if name == "ParamValidationError":
        return InvalidInput(f"S3 refused the parameters for {key!r}: {exc}")
    if name == "FileExpired":
        return BackendUnavailable(f"{key!r} changed while it was being read")
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        return NotFound(f"no blob at {key!r}")  # on S3 a "directory" is a prefix, not a blob
    if isinstance(exc, FileExistsError):
        return AlreadyExists(f"a blob already exists at {key!r}")
    if isinstance(exc, PermissionError):
        return AuthError(f"S3 refused access to {key!r}: {exc}")
    if is_connection_error(exc):
        return BackendUnavailable(f"S3 did not answer for {key!r}: {detail}")
    if isinstance(exc, ValueError):
        return InvalidInput(f"{key!r}: {exc}")
    return BackendUnavailable(f"S3 error on {key!r}: {detail}")


def _is_library_error(exc: BaseException) -> bool:
    if isinstance(exc, GenstoreError):
        return False
    if isinstance(exc, (OSError, ValueError, asyncio.TimeoutError)):
        return True
    return type(exc).__module__.split(".", 1)[0] in _LIBRARIES


@contextmanager
def translate_s3_errors(key: str, *, writing: bool = False) -> Iterator[None]:
    """Re-raise S3 library errors inside the block as genstore errors. Other exceptions (a
    caller's chunk iterator failing, genstore's own errors) pass through unchanged."""
    try:
        yield
    except Exception as exc:
        if not _is_library_error(exc):
            raise
        raise translate(exc, key, writing=writing) from exc
