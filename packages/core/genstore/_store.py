"""The Store: one object that saves operations, answers history, and reaches user images."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import JsonValue

from . import _keys
from ._history import history_page, history_query, iter_history
from ._ids import check_id
from ._known_inputs import KnownInputs
from ._maintenance import CleanupReport, Maintenance, ReindexReport, VerifyReport
from ._options import StoreOptions
from ._recording.metrics import register_opentelemetry
from ._recording.recorder import Recorder
from ._records import ArtifactRef, OperationRecord, Page, RequestInfo, SaveResult
from ._save_request import Completion, JobCompletion, SaveRequest
from ._saving import Saver
from ._sources import Source
from .exceptions import InvalidInput
from .plugin import BlobStore, Catalog

if TYPE_CHECKING:
    from ._images import ImagesAPI

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
        self._known_inputs = KnownInputs(self.options.known_inputs_ttl)
        self._saver = Saver(blobs, catalog, self.options, self._known_inputs)
        self._maintenance = Maintenance(
            blobs,
            catalog,
            self._known_inputs,
            complete=self._saver.complete,
            pending_timeout=self.options.pending_timeout,
        )
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
        self.catalog.close()
        self.blobs.close()

    @property
    def recorder(self) -> Recorder:
        """The background writer used by the middleware and ``@genstore.record`` (made on first use)."""
        with self._lock:
            if self._recorder is None:
                self._recorder = Recorder(self)
                register_opentelemetry()  # once per process; nothing without opentelemetry-api
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
                    accepted_image_types=self.options.accepted_image_types,
                    operations=self._maintenance,
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
        result_urls: Sequence[str] | None = None,
        results: Sequence[Source] | None = None,
        workflow_analysis: JsonValue = None,
        error: str | BaseException | None = None,
        user_id: str | None = None,
        idempotency_key: str | None = None,
        duration_ms: float | None = None,
        request: RequestInfo | dict[str, Any] | None = None,
        created_at: datetime | None = None,
        job_id: str | None = None,
    ) -> SaveResult:
        """Save one operation with its inputs and outputs; the record is committed last.

        The outputs are one of ``result``/``results`` (bytes, paths, files, PIL images) or
        ``result_url``/``result_urls``, kept in that order (``record.results``; ``record.result``
        is the first). ``error`` marks the operation failed (it is saved all the same). URLs are
        downloaded into the store; one that cannot be (404, timeout, too large) leaves the others
        stored and the record saved, with ``result_error`` saying which and why. The same
        ``idempotency_key`` twice returns the first record with ``created=False``.
        """
        return self.save(
            SaveRequest.build(
                operation_type=operation_type,
                prompt=prompt,
                parameters=parameters,
                input_images=input_images,
                result_url=result_url,
                result=result,
                result_urls=result_urls,
                results=results,
                workflow_analysis=workflow_analysis,
                error=error,
                user_id=user_id,
                idempotency_key=idempotency_key,
                duration_ms=duration_ms,
                request=request,
                created_at=created_at,
                job_id=job_id,
            )
        )

    def start_operation(
        self,
        *,
        operation_type: str,
        prompt: str | None = None,
        parameters: JsonValue = None,
        input_images: Sequence[Source] = (),
        workflow_analysis: JsonValue = None,
        user_id: str | None = None,
        job_id: str | None = None,
        idempotency_key: str | None = None,
        request: RequestInfo | dict[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> SaveResult:
        """Save an operation that finishes later (a provider job), with status ``pending``.

        Finish it with ``complete_operation``, by its id or by ``job_id``. Starting the same
        ``job_id`` (or ``idempotency_key``) again returns the first record (``created=False``).
        """
        return self.save(
            SaveRequest.build(
                operation_type=operation_type,
                prompt=prompt,
                parameters=parameters,
                input_images=input_images,
                workflow_analysis=workflow_analysis,
                user_id=user_id,
                job_id=job_id,
                idempotency_key=idempotency_key,
                request=request,
                created_at=created_at,
                pending=True,
            )
        )

    def complete_operation(
        self,
        operation_id: str | None = None,
        *,
        job_id: str | None = None,
        result_url: str | None = None,
        result: Source | None = None,
        result_urls: Sequence[str] | None = None,
        results: Sequence[Source] | None = None,
        error: str | BaseException | None = None,
        duration_ms: float | None = None,
    ) -> SaveResult:
        """Finish a started operation (by its id, or by the ``job_id`` it was started with):
        store its outputs, or its ``error``, and replace its record atomically.

        Idempotent: completing an operation that is no longer pending changes nothing and
        returns the stored record (``created=False``). ``NotFound`` for an unknown id or job.
        ``duration_ms`` defaults to the time since the operation was started.
        """
        completion = Completion.build(
            result_url=result_url,
            result=result,
            result_urls=result_urls,
            results=results,
            error=error,
            duration_ms=duration_ms,
        )
        return self._saver.complete(self._operation_to_complete(operation_id, job_id), completion)

    def _operation_to_complete(self, operation_id: str | None, job_id: str | None) -> str:
        if (operation_id is None) == (job_id is None):
            raise InvalidInput("give the operation_id or the job_id of the operation to complete")
        if operation_id is not None:
            check_id(operation_id, "operation_id")
            return operation_id
        if not isinstance(job_id, str) or not job_id:
            raise InvalidInput("job_id must be a non-empty string")
        return self._saver.operation_of_job(job_id)

    async def astart_operation(self, **kwargs: Any) -> SaveResult:
        """``start_operation`` for async code: runs in a worker thread."""
        call = functools.partial(self.start_operation, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    async def acomplete_operation(
        self, operation_id: str | None = None, **kwargs: Any
    ) -> SaveResult:
        """``complete_operation`` for async code: runs in a worker thread."""
        call = functools.partial(self.complete_operation, operation_id, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    def save(self, request: SaveRequest) -> SaveResult:
        """Save a checked ``SaveRequest`` (what ``save_complete_operation`` builds)."""
        return self._saver.save(request)

    def fetch(self, url: str, path: Path) -> str | None:
        """Download ``url`` into the new file ``path`` under this store's download rules (what the
        recorder does with result URLs when the store is down); the error, or None."""
        return self._saver.fetch(url, path)

    def save_batch(self, requests: Sequence[SaveRequest]) -> list[SaveResult | Exception | None]:
        """Save several checked requests, their catalog rows in one transaction (the recorder's
        batches). Per request: its result, the exception it raised, or None if not attempted
        after a failure of the store."""
        return self._saver.save_batch(requests)

    def complete_job(self, job: JobCompletion) -> SaveResult:
        """Complete the operation started for ``job.job_id`` (as ``complete_operation``), or save
        ``job.fallback`` when no operation was started for it (what the recorder does with a
        job's poll or webhook)."""
        return self._saver.complete_job(job)

    async def asave_complete_operation(self, **kwargs: Any) -> SaveResult:
        """``save_complete_operation`` for async code: runs in a worker thread."""
        call = functools.partial(self.save_complete_operation, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, call)

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
        query = history_query(
            user_id=user_id,
            operation_type=operation_type,
            status=status,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
        )
        return history_page(self.catalog, query)

    def iter_operations(self, **filters: Any) -> Iterator[OperationRecord]:
        """Every operation matching ``history`` filters, newest first, page by page."""
        return iter_history(self.catalog, history_query(limit=500, **filters))

    def get_operation(self, operation_id: str) -> OperationRecord:
        """One operation; ``NotFound`` if there is none."""
        check_id(operation_id, "operation_id")
        return self._maintenance.get_operation(operation_id)

    def delete_operation(self, operation_id: str) -> None:
        """Remove an operation's record and results; shared inputs stay until ``cleanup``."""
        check_id(operation_id, "operation_id")
        self._maintenance.delete_operation(operation_id)

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
        """Counts by type and status, images, and the recorder's counters once it has run."""
        out = self._maintenance.stats()
        recorder = self._recorder
        if recorder is not None:
            out["recorder"] = asdict(recorder.counters)
        return out

    def cleanup(
        self,
        older_than: timedelta = timedelta(days=30),
        *,
        dry_run: bool = False,
        grace: timedelta = timedelta(minutes=10),
    ) -> CleanupReport:
        """Delete operations older than ``older_than`` and inputs no record references."""
        return self._maintenance.cleanup(older_than, dry_run=dry_run, grace=grace)

    def reindex(self, progress: Callable[[int], None] | None = None) -> ReindexReport:
        """Rebuild the catalog from the JSON records (the truth)."""
        return self._maintenance.reindex(progress)

    def verify(
        self, *, fix: bool = False, grace: timedelta = timedelta(minutes=10)
    ) -> VerifyReport:
        """Find orphans, unindexed and stale records (``fix`` repairs them)."""
        if fix:
            return self._maintenance.repair(grace=grace)
        return self._maintenance.verify(grace=grace)

    def export(self, format: str, file: IO[str], **filters: Any) -> int:
        """Write operations as ``csv`` or ``jsonl`` to a text file; return how many."""
        return self._maintenance.export(format, file, **filters)


def _artifact_key(ref: ArtifactRef | str) -> str:
    key = ref.key if isinstance(ref, ArtifactRef) else ref
    if not isinstance(key, str) or _keys.parse_key(key) is None:
        raise InvalidInput(f"{str(key)[:80]!r} is not an artefact key of this store")
    return key
