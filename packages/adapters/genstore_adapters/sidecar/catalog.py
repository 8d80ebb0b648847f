"""The ``sidecar`` catalog: no index at all, queries list and read the JSON records themselves.

Fine for small stores and for object stores nobody else indexes; past 10,000 records it warns once
that a real catalog (SQLite, PostgreSQL) is advised. Parsed records are cached by key: operation
records never change once committed, and image records are re-read when their size or time moves.

Here a catalog row is the JSON record itself, so a record that does not parse is ``CorruptRecord``
naming it wherever a query meets it (history, get, image pages), as a corrupt row is in the other
catalogs; ``genstore verify`` lists it under ``corrupt`` and nothing can rebuild it but a human.
Counts (``stats``) and id listings (``verify``) read keys and skip it instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence

from genstore import ImageRecord, ImageStatus, OperationRecord, _keys
from genstore.exceptions import CorruptRecord, NotFound
from genstore.plugin import BlobStore, Catalog, CatalogStats, HistoryQuery, StoreURL

from .._rows import load_image, load_operation

__all__ = ["SidecarCatalog", "open_sidecar"]

logger = logging.getLogger(__name__)

WARN_ABOVE = 10_000

_HINT = (
    "the JSON record itself is damaged: restore it, or move it away (`genstore verify` lists it)"
)


class SidecarCatalog(Catalog):
    """Answers catalog queries by listing and reading the records in the blob store."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._ops: dict[str, OperationRecord] = {}
        self._lock = threading.Lock()
        self._warned = False

    # Writes are no-ops: the record JSON is already in the blob store, which is what we read.
    def upsert_operation(self, record: OperationRecord) -> None:
        with self._lock:
            self._ops[_keys.operation_record_key(record.operation_id)] = record

    def upsert_operations(self, records: Sequence[OperationRecord]) -> None:
        with self._lock:
            for record in records:
                self._ops[_keys.operation_record_key(record.operation_id)] = record

    def delete_operation(self, operation_id: str) -> None:
        with self._lock:
            self._ops.pop(_keys.operation_record_key(operation_id), None)

    def _where(self) -> str:
        return f"the JSON records of {self.blobs.url}"

    def _read_operation(self, key: str, operation_id: str) -> OperationRecord:
        data = self.blobs.read(key)
        return load_operation(data, operation_id=operation_id, where=self._where(), hint=_HINT)

    def _operation_keys(self) -> list[tuple[str, str]]:
        """``(key, operation_id)`` of every committed record, from the listing alone."""
        found = []
        for info in self.blobs.list(_keys.OPERATIONS_PREFIX):
            parsed = _keys.parse_key(info.key)
            if parsed is not None and parsed.kind == "operation" and parsed.operation_id:
                found.append((info.key, parsed.operation_id))
        return found

    def _operations(self, *, strict: bool = True) -> list[OperationRecord]:
        """Every record; one that does not parse raises ``CorruptRecord``, or is left out when
        ``strict`` is False."""
        keys = self._operation_keys()
        if len(keys) > WARN_ABOVE and not self._warned:
            self._warned = True
            logger.warning(
                "the sidecar catalog is reading %d records per query; use a catalog "
                "(?catalog=sqlite:///path or postgresql://...) for a store this size",
                len(keys),
            )
        out: list[OperationRecord] = []
        with self._lock:
            live = {key for key, _ in keys}
            for stale in self._ops.keys() - live:
                del self._ops[stale]
        for key, operation_id in keys:
            with self._lock:
                record = self._ops.get(key)
            if record is None:
                try:
                    record = self._read_operation(key, operation_id)
                except NotFound:
                    continue  # deleted while we listed
                except CorruptRecord:
                    if strict:
                        raise
                    continue
                with self._lock:
                    self._ops[key] = record
            out.append(record)
        return out

    def get_operation(self, operation_id: str) -> OperationRecord | None:
        try:
            return self._read_operation(_keys.operation_record_key(operation_id), operation_id)
        except NotFound:
            return None

    def query_operations(self, query: HistoryQuery) -> list[OperationRecord]:
        def keep(r: OperationRecord) -> bool:
            return (
                (query.user_id is None or r.user_id == query.user_id)
                and (query.operation_type is None or r.operation_type == query.operation_type)
                and (query.status is None or r.status.value == query.status)
                and (query.since is None or r.created_at >= query.since)
                and (query.until is None or r.created_at < query.until)
                and (query.before is None or (r.created_at, r.operation_id) < query.before)
            )

        found = [r for r in self._operations() if keep(r)]
        found.sort(key=lambda r: (r.created_at, r.operation_id), reverse=True)
        return found[: query.limit]

    def operation_ids(self) -> Iterator[str]:
        return iter([operation_id for _, operation_id in self._operation_keys()])

    def upsert_image(self, record: ImageRecord) -> None:
        pass

    def delete_image(self, user_id: str, image_id: str) -> None:
        pass

    def _images(self, user_id: str | None = None, *, strict: bool = True) -> list[ImageRecord]:
        prefix = f"{_keys.IMAGES_PREFIX}{user_id}/" if user_id else _keys.IMAGES_PREFIX
        out = []
        for info in self.blobs.list(prefix):
            parsed = _keys.parse_key(info.key)
            if parsed is None or parsed.kind != "image_record":
                continue
            try:
                out.append(self._read_image(info.key, parsed.user_id or "", parsed.image_id or ""))
            except NotFound:
                continue
            except CorruptRecord:
                if strict:
                    raise
        return out

    def _read_image(self, key: str, user_id: str, image_id: str) -> ImageRecord:
        data = self.blobs.read(key)
        return load_image(data, user_id=user_id, image_id=image_id, where=self._where(), hint=_HINT)

    def get_image(self, user_id: str, image_id: str) -> ImageRecord | None:
        try:
            record = self._read_image(_keys.image_record_key(user_id, image_id), user_id, image_id)
        except NotFound:
            return None
        return record if record.user_id == user_id else None

    def list_images(
        self, user_id: str, *, status: ImageStatus | None, offset: int, limit: int
    ) -> tuple[list[ImageRecord], int]:
        found = [
            r
            for r in self._images(user_id)
            if r.user_id == user_id and (status is None or r.status == status)
        ]
        found.sort(key=lambda r: (r.created_at, r.image_id), reverse=True)
        return found[offset : offset + limit], len(found)

    def image_ids(self) -> Iterator[tuple[str, str]]:
        return iter([(r.user_id, r.image_id) for r in self._images(strict=False)])

    def unreadable_rows(self) -> Iterator[str]:
        """None: the rows are the JSON records, which ``verify`` already reads (``corrupt``)."""
        return iter(())

    def clear(self) -> None:
        with self._lock:
            self._ops.clear()

    def stats(self) -> CatalogStats:
        out = CatalogStats()
        for r in self._operations(strict=False):
            out.operations += 1
            out.by_type[r.operation_type] = out.by_type.get(r.operation_type, 0) + 1
            out.by_status[r.status.value] = out.by_status.get(r.status.value, 0) + 1
        out.images = len(self._images(strict=False))
        return out


def open_sidecar(url: StoreURL, blobs: BlobStore) -> SidecarCatalog:
    """``sidecar``: no index, the JSON records of ``blobs`` are listed and read."""
    return SidecarCatalog(blobs)
