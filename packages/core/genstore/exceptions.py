"""Every error genstore raises on purpose.

    GenstoreError
     ├── InvalidInput            (also ValueError)    bad base64, not a PNG, unknown status, unsafe id
     │    └── PayloadTooLarge                         over a configured size limit
     ├── NotFound                (also LookupError)   no such operation, image or artefact
     ├── AlreadyExists           (also FileExistsError) an exclusive create found the key taken
     ├── CorruptRecord                                 a stored record or catalog row that does not parse
     ├── ConfigurationError                            unknown URL scheme, missing environment variable
     │    └── MissingDependency  (also ImportError)    a backend's optional extra is not installed
     └── BackendUnavailable      (also ConnectionError) the storage or catalog did not answer in time
          └── AuthError                                the backend refused the credentials

Backends translate their own errors (OSError, botocore, httpx, psycopg, sqlite3) into these, so a
caller never has to import a backend library to handle a failure.
"""

from __future__ import annotations

__all__ = [
    "AlreadyExists",
    "AuthError",
    "BackendUnavailable",
    "ConfigurationError",
    "CorruptRecord",
    "GenstoreError",
    "InvalidInput",
    "MissingDependency",
    "NotFound",
    "PayloadTooLarge",
]


class GenstoreError(Exception):
    """Base class of every error genstore raises on purpose."""


class InvalidInput(GenstoreError, ValueError):
    """The caller handed over something genstore cannot accept (nothing was stored)."""


class PayloadTooLarge(InvalidInput):
    """A payload is over the configured size limit."""

    def __init__(self, message: str, *, limit: int | None = None) -> None:
        super().__init__(message)
        self.limit = limit


class NotFound(GenstoreError, LookupError):
    """No such operation, image or artefact (or it belongs to another user)."""


class AlreadyExists(GenstoreError, FileExistsError):
    """An exclusive create found its key already taken."""


class CorruptRecord(GenstoreError):
    """A stored record (a catalog row, or the JSON record itself) is not valid JSON or fails
    validation. ``key`` names it; ``genstore verify`` lists it and ``verify --fix`` (or
    ``reindex``) indexes it again from the JSON record, which is the truth."""

    def __init__(self, message: str, *, key: str, kind: str = "operation") -> None:
        super().__init__(message)
        self.key = key
        """The record's id: an operation id, ``user_id/image_id`` for an image, or a blob key."""
        self.kind = kind
        """``operation`` or ``image``."""


class ConfigurationError(GenstoreError):
    """The store cannot be opened as configured (unknown scheme, missing variable, bad URL)."""


class MissingDependency(ConfigurationError, ImportError):
    """A backend needs an optional extra that is not installed; the message names it."""

    def __init__(self, what: str, *, extra: str, package: str) -> None:
        super().__init__(
            f"{what} needs the optional dependency {package!r}: "
            f"install it with  pip install 'genstore[{extra}]'"
        )
        self.extra = extra
        self.package = package


class BackendUnavailable(GenstoreError, ConnectionError):
    """The storage backend or catalog failed or did not answer within the retry deadline."""


class AuthError(BackendUnavailable):
    """The backend refused the credentials (HTTP 401/403, access denied)."""
