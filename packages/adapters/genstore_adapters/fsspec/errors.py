"""One table turning library errors into genstore errors, shared by the built-in backends."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from genstore.exceptions import (
    AlreadyExists,
    AuthError,
    BackendUnavailable,
    GenstoreError,
    InvalidInput,
    NotFound,
)

__all__ = ["translate_os_errors"]


def translate(exc: BaseException, key: str) -> GenstoreError:
    """The genstore error for an OSError-like failure on ``key``."""
    if isinstance(exc, GenstoreError):
        return exc
    if isinstance(exc, FileNotFoundError):
        return NotFound(f"no blob at {key!r}")
    if isinstance(exc, FileExistsError):
        return AlreadyExists(f"a blob already exists at {key!r}")
    if isinstance(exc, PermissionError):
        return AuthError(f"permission denied on {key!r}: {exc}")
    if isinstance(exc, (IsADirectoryError, NotADirectoryError)):
        return InvalidInput(f"{key!r} is not a blob key here: {exc}")
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return BackendUnavailable(f"storage cannot be written ({exc.strerror}) at {key!r}")
    return BackendUnavailable(f"storage error on {key!r}: {type(exc).__name__}: {exc}")


@contextmanager
def translate_os_errors(key: str) -> Iterator[None]:
    """Re-raise OSError (and its kin) inside the block as genstore errors."""
    try:
        yield
    except (OSError, ValueError) as exc:
        raise translate(exc, key) from exc
