"""What a storage plugin implements: a ``BlobStore`` and/or a ``Catalog``, declared by a spec.

A plugin is a module (or object) with ``@hookimpl`` functions named as in ``genstore.hookspecs``,
registered through the ``genstore`` entry-point group. It declares what it serves with
``BackendSpec`` / ``CatalogSpec`` (schemes, a one-line description, a lazily imported factory, the
extra to install); routing in ``open_store``, ``genstore plugins`` and install hints all read
those specs. The built-in backends register this way too. docs/backends.md is the guide.

Backends and catalogs raise only ``genstore.exceptions`` errors: they translate their library's
errors (OSError, botocore, httpx, psycopg, sqlite3) at their boundary.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, final

import pluggy

from ._keys import check_blob_key, check_blob_prefix
from ._records import ImageRecord, ImageStatus, OperationRecord
from ._url import StoreURL
from .exceptions import CorruptRecord

__all__ = [
    "BackendFactory",
    "BackendSpec",
    "BlobInfo",
    "BlobStore",
    "Catalog",
    "CatalogFactory",
    "CatalogSpec",
    "CatalogStats",
    "HistoryQuery",
    "StoreURL",
    "hookimpl",
]

hookimpl = pluggy.HookimplMarker("genstore")
"""Marks a plugin's hook implementations: ``@hookimpl def genstore_backends(...)``."""

BackendFactory = Callable[[StoreURL], "BlobStore | None"]
"""``factory(url) -> BlobStore``; a catch-all spec's factory returns None for a scheme it lacks."""
CatalogFactory = Callable[[StoreURL, "BlobStore"], "Catalog"]
"""``factory(url, blobs) -> Catalog``: ``blobs`` is the store the catalog will index."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendSpec:
    """What a blob-store plugin serves, declared without importing its implementation.

    ``factory`` is ``"package.module:callable"``, imported only when one of ``schemes`` is
    opened (or the callable itself, for a plugin defined in one file). If that import fails with
    ``ImportError``, ``open_store`` raises ``MissingDependency`` naming ``extra``.
    """

    name: str
    """Short name shown by ``genstore plugins`` (usually the entry-point name)."""
    schemes: tuple[str, ...]
    """URL schemes served, lower case (``("s3", "s3a")``); ``file`` is a plain path."""
    description: str
    """One line for ``genstore plugins``."""
    factory: str | BackendFactory
    """``"module:callable"`` (imported lazily) or the callable."""
    extra: str | None = None
    """The ``genstore[extra]`` that installs what ``factory`` imports; None if nothing."""
    catch_all: bool = False
    """Also offered every scheme no spec declares (the generic fsspec backend); its factory
    returns None for a scheme it cannot serve either."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogSpec:
    """What a catalog plugin serves; the fields mean what they mean in ``BackendSpec``.

    A catalog URL is ``scheme://...`` or a bare name (``sidecar``, ``sqlite``): the name is the
    scheme. ``factory(url, blobs)`` receives the blob store being opened with it.
    """

    name: str
    schemes: tuple[str, ...]
    description: str
    factory: str | CatalogFactory
    extra: str | None = None


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A listed blob."""

    key: str
    size: int
    modified: datetime | None = None


class BlobStore(ABC):
    """Blob storage under one root. Keys are ``/``-separated relative paths (``genstore._keys``).

    The public methods (``write``, ``open``, ``read``, ``exists``, ``delete``, ``list``,
    ``url_for``) check every key and prefix with ``genstore._keys.check_blob_key`` first, then
    call the implementation methods a backend overrides (``_write``, ``_open``, ``_exists``,
    ``_delete``, ``_list``; ``_read`` and ``_url_for`` have defaults). A backend never sees a key
    the rule refuses, so every backend accepts exactly the same keys.

    Every ``write`` is atomic: readers see the whole new blob or none of it, never a partial one.
    """

    url: str
    """The URL this store was opened with, secrets removed (for messages and ``genstore stats``)."""

    default_catalog: str = "sidecar"
    """The catalog URL used when the store URL names none (local stores answer sqlite)."""

    exclusive_writes_are_atomic: bool = True
    """Whether ``write(..., exclusive=True)`` is atomic: of several writers racing for one key,
    exactly one succeeds and the others get ``AlreadyExists``. A backend that can only check and
    then write (the generic fsspec backend; a plain Supabase ``x-upsert: false`` upload would be
    one too) declares False; genstore then claims idempotency keys and image names through the
    catalog (``Catalog.claim``) instead of relying on the blob store alone."""

    # -- the public API: validation, then the implementation ------------------------------------

    @final
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
        check_blob_key(key)
        return self._write(key, chunks, content_type=content_type, exclusive=exclusive)

    @final
    def open(self, key: str) -> IO[bytes]:
        """A binary file object streaming the blob; ``NotFound`` if missing."""
        return self._open(check_blob_key(key))

    @final
    def read(self, key: str) -> bytes:
        """The whole blob; ``NotFound`` if missing."""
        return self._read(check_blob_key(key))

    @final
    def exists(self, key: str) -> bool:
        """Whether a blob is at ``key``."""
        return self._exists(check_blob_key(key))

    @final
    def delete(self, key: str) -> None:
        """Remove the blob at ``key``; a missing blob is not an error."""
        self._delete(check_blob_key(key))

    @final
    def list(self, prefix: str) -> Iterator[BlobInfo]:
        """Every blob whose key starts with ``prefix`` (a folder path ending in ``/``, or ``""``),
        at any depth, in key order."""
        return self._list(check_blob_prefix(prefix))

    @final
    def url_for(self, key: str, *, expires: int = 3600) -> str | None:
        """A URL a client can GET the blob from (signed where the backend signs), or None."""
        return self._url_for(check_blob_key(key), expires=expires)

    # -- what a backend implements (keys already checked) ----------------------------------------

    @abstractmethod
    def _write(
        self, key: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        """Write atomically (``AlreadyExists`` if ``exclusive`` and taken); return the size."""

    @abstractmethod
    def _open(self, key: str) -> IO[bytes]:
        """A binary file object streaming the blob; ``NotFound`` if missing."""

    def _read(self, key: str) -> bytes:
        """The whole blob (default: read ``_open``); ``NotFound`` if missing."""
        with self._open(key) as f:
            return f.read()

    @abstractmethod
    def _exists(self, key: str) -> bool:
        """Whether a blob is at ``key``."""

    @abstractmethod
    def _delete(self, key: str) -> None:
        """Remove the blob; missing is not an error."""

    @abstractmethod
    def _list(self, prefix: str) -> Iterator[BlobInfo]:
        """Blobs under ``prefix`` in key order; hidden keys (a segment starting with ``.``) left
        out."""

    def _url_for(self, key: str, *, expires: int) -> str | None:
        """A URL to GET the blob from, or None (the default: the backend has none)."""
        return None

    # -- optional capabilities, with defaults -----------------------------------------------------

    def local_root(self) -> Path | None:
        """The local folder holding the blobs, when they are plain files (else None).

        Used to keep housekeeping files (the recorder's spool, SQLite) next to local data.
        """
        return None

    def sweep_temporaries(self, older_than: float = 3600.0) -> int:
        """Remove temporaries older than ``older_than`` seconds that writes killed midway left
        behind (``verify --fix`` calls it); return how many. Default: nothing to sweep, 0."""
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

    def upsert_operations(self, records: Sequence[OperationRecord]) -> None:
        """Insert or replace the rows of several records (the recorder's batches).

        Default: ``upsert_operation`` for each, in order. A catalog with transactions overrides
        it to write them all in one (one commit instead of one per record); if it fails, some or
        none of the rows may be written, never a partial row.
        """
        for record in records:
            self.upsert_operation(record)

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
        """Drop every row, and any ``needs_reindex`` mark (``reindex`` refills)."""

    @abstractmethod
    def stats(self) -> CatalogStats:
        """Counts of operations by type and status, and of images."""

    def unreadable_rows(self) -> Iterator[str]:
        """Rows that do not parse (``CorruptRecord``), for ``verify``: operation ids, and
        ``user_id/image_id`` for images. Default: every row read back one by one."""
        for operation_id in self.operation_ids():
            try:
                self.get_operation(operation_id)
            except CorruptRecord:
                yield operation_id
        for user_id, image_id in self.image_ids():
            try:
                self.get_image(user_id, image_id)
            except CorruptRecord:
                yield f"{user_id}/{image_id}"

    def needs_reindex(self) -> str | None:
        """Why the catalog must be rebuilt before its queries can be trusted (it was found
        corrupt and recreated empty), or None. ``reindex`` and ``verify --fix`` rebuild it."""
        return None

    # -- optional capability: atomic claims -------------------------------------------------------

    can_claim: bool = False
    """Whether ``claim`` is implemented (an atomic insert-if-absent on a unique key)."""

    def claim(self, key: str, value: str) -> str | None:
        """Atomically record ``value`` under ``key`` unless a value is there already.

        Returns None when this call recorded ``value`` (it won the claim), else the value an
        earlier claim recorded; of any number of racing callers, across processes and hosts
        sharing the catalog, exactly one wins. Claims belong to the store the catalog indexes,
        outlive ``clear`` (they are not records: ``reindex`` cannot rebuild them) and are never
        released. Only called when ``can_claim`` is True; the default raises
        ``NotImplementedError``.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot claim keys")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
