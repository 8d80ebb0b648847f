"""The Store: one object that saves operations, answers history, and reaches user images."""

from __future__ import annotations

import asyncio
import base64
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from pydantic import JsonValue

from . import _keys
from ._ids import check_id
from ._options import StoreOptions
from ._records import (
    ArtifactRef,
    OperationRecord,
    OperationStatus,
    Page,
    RequestInfo,
    SaveResult,
)
from ._saving import Saver, marker_key, read_record
from ._sources import Source
from .exceptions import InvalidInput
from .plugin import BlobStore, Catalog, HistoryQuery

if TYPE_CHECKING:
    from ._images import ImagesAPI
    from ._maintenance import CleanupReport, ReindexReport, VerifyReport
    from ._recorder import Recorder

__all__ = ["Store", "StoreOptions"]


class Store:
    """Operations, history and user images on one backend (``BlobStore``) with one ``Catalog``.

    Open one with ``genstore.open_store()``. Thread-safe; close it (or use ``with``) to drain the
    background recorder and release connections.
    """

    def __init__(self, blobs: BlobStore, catalog: Catalog, options: StoreOptions | None = None):
        self.blobs = blobs
        self.catalog = catalog
        self.options = options or StoreOptions()
        self._saver = Saver(self)
        self._lock = threading.Lock()
        self._recorder: Recorder | None = None
        self._images: ImagesAPI | None = None
        self._closed = False

    # -- life cycle ---------------------------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<genstore.Store {self.blobs.url!r} catalog={type(self.catalog).__name__}>"

    def close(self) -> None:
        """Drain the recorder (what cannot be saved in time stays spooled), then release all."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()
        self._saver.close()
        self.catalog.close()
        self.blobs.close()

    @property
    def recorder(self) -> Recorder:
        """The background writer used by the middleware and ``@genstore.record`` (made on first use)."""
        with self._lock:
            if self._recorder is None:
                from ._recorder import Recorder

                self._recorder = Recorder(self)
            return self._recorder

    @property
    def images(self) -> ImagesAPI:
        """The user images API of the seed service: create, list, get, delete, update_status."""
        with self._lock:
            if self._images is None:
                from ._images import ImagesAPI

                self._images = ImagesAPI(
                    self.blobs,
                    self.catalog,
                    max_image_bytes=self.options.max_image_bytes,
                    url_expires=self.options.url_expires,
                )
            return self._images

    # -- saving ---------------------------------------------------------------------------------

    def save_complete_operation(
        self,
        *,
        operation_type: str,
        prompt: str | None = None,
        parameters: JsonValue = None,
        input_images: Sequence[Source] = (),
        result_url: str | None = None,
        result: Source | None = None,
        workflow_analysis: JsonValue = None,
        error: str | BaseException | None = None,
        user_id: str | None = None,
        idempotency_key: str | None = None,
        duration_ms: float | None = None,
        request: RequestInfo | dict[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> SaveResult:
        """Save one operation with its inputs and result; the record is committed last.

        ``error`` marks the operation failed (it is saved all the same). A ``result_url`` is
        downloaded into the store; if it cannot be (404, timeout, too large) the record is still
        saved with ``result_error`` saying why. The same ``idempotency_key`` twice returns the first
        record with ``created=False``.
        """
        return self._saver.save(
            operation_type=operation_type,
            prompt=prompt,
            parameters=parameters,
            input_images=input_images,
            result_url=result_url,
            result=result,
            workflow_analysis=workflow_analysis,
            error=error,
            user_id=user_id,
            idempotency_key=idempotency_key,
            duration_ms=duration_ms,
            request=request,
            created_at=created_at,
        )

    async def asave_complete_operation(self, **kwargs: Any) -> SaveResult:
        """``save_complete_operation`` for async code: runs in a worker thread."""
        call = functools.partial(self.save_complete_operation, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    def _forget_input(self, key: str) -> None:
        """Called after deleting the input ``key``: the next save using it writes it again."""
        self._saver.forget_input(key)

    # -- reading --------------------------------------------------------------------------------

    def history(
        self,
        *,
        user_id: str | None = None,
        operation_type: str | None = None,
        status: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[OperationRecord]:
        """Operations newest first; pass ``next_cursor`` back as ``cursor`` for the next page."""
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 1000:
            raise InvalidInput("limit must be an integer from 1 to 1000")
        if status is not None and status not in {s.value for s in OperationStatus}:
            raise InvalidInput(f"status must be one of {[s.value for s in OperationStatus]}")
        if user_id is not None:
            check_id(user_id, "user_id")
        query = HistoryQuery(
            user_id=user_id,
            operation_type=operation_type,
            status=status,
            since=_utc(since),
            until=_utc(until),
            limit=limit + 1,
            before=_decode_cursor(cursor) if cursor else None,
        )
        rows = self.catalog.query_operations(query)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            last = rows[-1]
            next_cursor = _encode_cursor(last.created_at, last.operation_id)
        return Page[OperationRecord](items=rows, next_cursor=next_cursor)

    def iter_operations(self, **filters: Any) -> Iterator[OperationRecord]:
        """Every operation matching ``history`` filters, newest first, page by page."""
        cursor: str | None = None
        while True:
            page = self.history(limit=500, cursor=cursor, **filters)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def get_operation(self, operation_id: str) -> OperationRecord:
        """One operation; ``NotFound`` if there is none."""
        check_id(operation_id, "operation_id")
        record = self.catalog.get_operation(operation_id)
        if record is not None:
            return record
        return read_record(self.blobs, operation_id)

    def delete_operation(self, operation_id: str) -> None:
        """Remove an operation's record and result; shared inputs stay until ``cleanup``."""
        record = self.get_operation(operation_id)
        self.catalog.delete_operation(operation_id)
        self.blobs.delete(_keys.operation_record_key(operation_id))
        if record.result is not None:
            self.blobs.delete(record.result.key)
        if record.idempotency_key is not None:
            self.blobs.delete(marker_key(record.idempotency_key))

    def read_artifact(self, ref: ArtifactRef | str) -> bytes:
        """The bytes of a stored artefact (an ``ArtifactRef`` or its key)."""
        return self.blobs.read(_artifact_key(ref))

    def open_artifact(self, ref: ArtifactRef | str) -> IO[bytes]:
        """A binary file object streaming a stored artefact."""
        return self.blobs.open(_artifact_key(ref))

    def artifact_url(self, ref: ArtifactRef | str, *, expires: int | None = None) -> str | None:
        """A URL to fetch an artefact (signed where the backend signs), or None."""
        return self.blobs.url_for(_artifact_key(ref), expires=expires or self.options.url_expires)

    # -- maintenance (see _maintenance.py) ------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counts by type and status, images, and the recorder's counters."""
        from ._maintenance import stats

        return stats(self)

    def cleanup(
        self,
        older_than: timedelta = timedelta(days=30),
        *,
        dry_run: bool = False,
        grace: timedelta = timedelta(minutes=10),
    ) -> CleanupReport:
        """Delete operations older than ``older_than`` and inputs no record references."""
        from ._maintenance import cleanup

        return cleanup(self, older_than, dry_run=dry_run, grace=grace)

    def reindex(self, progress: Callable[[int], None] | None = None) -> ReindexReport:
        """Rebuild the catalog from the JSON records (the truth)."""
        from ._maintenance import reindex

        return reindex(self, progress=progress)

    def verify(
        self, *, fix: bool = False, grace: timedelta = timedelta(minutes=10)
    ) -> VerifyReport:
        """Find orphans, unindexed and stale records (``fix`` repairs them)."""
        from ._maintenance import verify

        return verify(self, fix=fix, grace=grace)

    def export(self, format: str, file: IO[str], **filters: Any) -> int:
        """Write operations as ``csv`` or ``jsonl`` to a text file; return how many."""
        from ._maintenance import export

        return export(self, format, file, **filters)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInput("since and until must be datetimes")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _encode_cursor(created_at: datetime, operation_id: str) -> str:
    raw = f"{created_at.isoformat()}|{operation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, operation_id = raw.split("|", 1)
        created = datetime.fromisoformat(when)
        check_id(operation_id, "cursor")
        if created.tzinfo is None:
            raise ValueError("naive time")
        # A time near datetime's bounds in a far-off zone overflows when moved to UTC.
        return created.astimezone(UTC), operation_id
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        raise InvalidInput("cursor is not one this store handed out") from exc


def _artifact_key(ref: ArtifactRef | str) -> str:
    key = ref.key if isinstance(ref, ArtifactRef) else ref
    if not isinstance(key, str) or _keys.parse_key(key) is None:
        raise InvalidInput(f"{str(key)[:80]!r} is not an artefact key of this store")
    return key
