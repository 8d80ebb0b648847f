"""What a storage plugin implements: a ``BlobStore`` for a URL scheme and/or a ``Catalog``.

A plugin is a module (or object) with ``@hookimpl`` functions named as in ``genstore.hookspecs``,
registered through the ``genstore`` entry-point group. The built-in backends register this way too.

Backends and catalogs raise only ``genstore.exceptions`` errors: they translate their library's
errors (OSError, botocore, httpx, psycopg, sqlite3) at their boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

import pluggy

from ._records import ImageRecord, ImageStatus, OperationRecord
from ._url import StoreURL

__all__ = [
    "BlobInfo",
    "BlobStore",
    "Catalog",
    "CatalogStats",
    "HistoryQuery",
    "StoreURL",
    "hookimpl",
]

hookimpl = pluggy.HookimplMarker("genstore")
"""Marks a plugin's hook implementations: ``@hookimpl def genstore_open_backend(...)``."""


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A listed blob."""

    key: str
    size: int
    modified: datetime | None = None


class BlobStore(ABC):
    """Blob storage under one root. Keys are ``/``-separated relative paths from ``genstore._keys``.

    Every ``write`` is atomic: readers see the whole new blob or none of it, never a partial one.
    """

    url: str
    """The URL this store was opened with, secrets removed (for messages and ``genstore stats``)."""

    default_catalog: str = "sidecar"
    """The catalog URL used when the store URL names none (local stores answer sqlite)."""

    @abstractmethod
    def write(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        exclusive: bool = False,
    ) -> int:
        """Store ``chunks`` (streamed, never joined in memory) atomically at ``key``; return the size.

        ``exclusive``: raise ``AlreadyExists`` instead of replacing an existing blob.
        """

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """A binary file object streaming the blob; ``NotFound`` if missing."""

    def read(self, key: str) -> bytes:
        """The whole blob; ``NotFound`` if missing."""
        with self.open(key) as f:
            return f.read()

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a blob is at ``key``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the blob at ``key``; a missing blob is not an error."""

    @abstractmethod
    def list(self, prefix: str) -> Iterator[BlobInfo]:
        """Every blob whose key starts with ``prefix`` (a folder path ending in ``/``), any depth."""

    def url_for(self, key: str, *, expires: int = 3600) -> str | None:
        """A URL a client can GET the blob from (signed where the backend signs), or None."""
        return None

    def local_root(self) -> Path | None:
        """The local folder holding the blobs, for backends that keep them on this machine."""
        return None

    def sweep_temporaries(self) -> int:
        """Remove what interrupted writes left behind (``verify --fix``); return how many."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release connections and files."""


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """A history query: filters, then newest first by ``(created_at, operation_id)``."""

    user_id: str | None = None
    operation_type: str | None = None
    status: str | None = None
    since: datetime | None = None
    """Inclusive lower bound on created_at."""
    until: datetime | None = None
    """Exclusive upper bound on created_at."""
    limit: int = 50
    before: tuple[datetime, str] | None = None
    """Cursor position: only records strictly older than this ``(created_at, operation_id)``."""
    idempotency_key: str | None = None


@dataclass(slots=True)
class CatalogStats:
    """Counts a catalog can give cheaply."""

    operations: int = 0
    images: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)


class Catalog(ABC):
    """An index of the records for fast filtered, paginated queries.

    The JSON records in the blob store are the truth; a catalog can always be rebuilt from them
    (``Store.reindex``), so it holds copies of whole records and nothing else.
    """

    @abstractmethod
    def upsert_operation(self, record: OperationRecord) -> None:
        """Insert or replace the row of ``record.operation_id``."""

    @abstractmethod
    def delete_operation(self, operation_id: str) -> None:
        """Remove the row; missing is not an error."""

    @abstractmethod
    def get_operation(self, operation_id: str) -> OperationRecord | None:
        """The indexed record, or None."""

    @abstractmethod
    def query_operations(self, query: HistoryQuery) -> list[OperationRecord]:
        """Up to ``query.limit`` records matching, newest first by ``(created_at, operation_id)``."""

    @abstractmethod
    def operation_ids(self) -> Iterator[str]:
        """Every indexed operation id (for ``verify``)."""

    @abstractmethod
    def upsert_image(self, record: ImageRecord) -> None:
        """Insert or replace the row of ``(record.user_id, record.image_id)``."""

    @abstractmethod
    def delete_image(self, user_id: str, image_id: str) -> None:
        """Remove the row; missing is not an error."""

    @abstractmethod
    def get_image(self, user_id: str, image_id: str) -> ImageRecord | None:
        """The indexed image record of that user, or None."""

    @abstractmethod
    def list_images(
        self, user_id: str, *, status: ImageStatus | None, offset: int, limit: int
    ) -> tuple[list[ImageRecord], int]:
        """One page of a user's images, newest first by ``(created_at, image_id)``, and the total."""

    @abstractmethod
    def image_ids(self) -> Iterator[tuple[str, str]]:
        """Every indexed ``(user_id, image_id)`` (for ``verify``)."""

    @abstractmethod
    def clear(self) -> None:
        """Drop every row (``reindex`` refills)."""

    @abstractmethod
    def stats(self) -> CatalogStats:
        """Counts of operations by type and status, and of images."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
