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
    if isinstance(exc, IsADirectoryError):  # a folder (a prefix of other keys), not a blob
        return NotFound(f"no blob at {key!r}")
    if isinstance(exc, NotADirectoryError):
        # Keys are checked before a backend sees them: a file where a folder must be means the
        # store's own layout is broken (its root replaced, its disk remounted), not a bad key.
        return BackendUnavailable(f"storage layout broken at {key!r}: {exc.strerror}")
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
