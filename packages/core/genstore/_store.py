"""The Store: one object that saves operations, answers history, and reaches user images."""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import io
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from pydantic import JsonValue, ValidationError

from . import _keys
from ._ids import check_id, new_operation_id
from ._plugins import get_plugin_manager
from ._records import (
    ArtifactRef,
    OperationRecord,
    OperationStatus,
    Page,
    RequestInfo,
    SaveResult,
)
from ._sniff import extension_for, sniff_content_type
from ._sources import Payload, Source, image_size, prepare
from .exceptions import AlreadyExists, GenstoreError, InvalidInput, NotFound
from .plugin import BlobStore, Catalog, HistoryQuery

if TYPE_CHECKING:
    import httpx

    from ._images import ImagesAPI
    from ._maintenance import CleanupReport, ReindexReport, VerifyReport
    from ._recorder import Recorder

__all__ = ["Store", "StoreOptions"]

logger = logging.getLogger(__name__)

_MAX_TYPE_LENGTH = 128
_MAX_IDEMPOTENCY_KEY = 512


@dataclass(frozen=True)
class StoreOptions:
    """Limits and timeouts of a store (keyword arguments of ``open_store``)."""

    max_input_bytes: int = 100 * 1024 * 1024
    """Largest input image accepted."""
    max_result_bytes: int = 4 * 1024 * 1024 * 1024
    """Largest result stored (bigger downloads are abandoned and noted in ``result_error``)."""
    max_image_bytes: int = 10 * 1024 * 1024
    """Largest user image accepted by ``images.create`` (the seed's 10 MB)."""
    download_timeout: float = 60.0
    """Seconds without progress before a result download is abandoned."""
    url_expires: int = 3600
    """Lifetime of signed URLs handed out, in seconds."""
    known_inputs_ttl: float = 60.0
    """Seconds an input this store wrote or found is trusted to exist without asking the
    backend again (0: ask on every save). A ``cleanup`` in another process that deletes it is
    noticed after at most this long; one in this store, at once."""


class Store:
    """Operations, history and user images on one backend (``BlobStore``) with one ``Catalog``.

    Open one with ``genstore.open_store()``. Thread-safe; close it (or use ``with``) to drain the
    background recorder and release connections.
    """

    def __init__(self, blobs: BlobStore, catalog: Catalog, options: StoreOptions | None = None):
        self.blobs = blobs
        self.catalog = catalog
        self.options = options or StoreOptions()
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()
        self._recorder: Recorder | None = None
        self._images: ImagesAPI | None = None
        self._closed = False
        self._known_inputs = _KnownKeys(self.options.known_inputs_ttl)

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
        if self._http is not None:
            self._http.close()
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

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                import httpx  # imported on first download: it costs ~0.5 s at start-up

                timeout = httpx.Timeout(self.options.download_timeout, connect=10.0)
                self._http = httpx.Client(timeout=timeout, follow_redirects=True)
            return self._http

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
        _check_type(operation_type)
        if user_id is not None:
            check_id(user_id, "user_id")
        if prompt is not None and not isinstance(prompt, str):
            raise InvalidInput("prompt must be a string")
        if result is not None and result_url is not None:
            raise InvalidInput("give result or result_url, not both")
        if isinstance(input_images, (bytes, str)) or not isinstance(input_images, Sequence):
            raise InvalidInput("input_images must be a list of images")
        if result_url is not None and not isinstance(result_url, str):
            raise InvalidInput("result_url must be a string")
        error_text = _error_text(error)
        marker_key: str | None = None
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 512:
                raise InvalidInput("idempotency_key must be a string of 1 to 512 characters")
            existing, marker_key, reserved_id = self._claim_idempotency(idempotency_key)
            if existing is not None:
                return SaveResult(
                    operation_id=existing.operation_id, record=existing, created=False
                )
            operation_id = reserved_id
            id_time = _time_of(operation_id)
        else:
            id_time, operation_id = new_operation_id()
        try:
            fields: dict[str, Any] = {
                "operation_id": operation_id,
                "operation_type": str(operation_type),
                "status": OperationStatus.FAILED if error_text else OperationStatus.SUCCEEDED,
                "prompt": prompt,
                "parameters": parameters,
                "workflow_analysis": workflow_analysis,
                "error": error_text,
                "user_id": user_id,
                "created_at": created_at or id_time,
                "duration_ms": duration_ms,
                "request": request,
                "idempotency_key": idempotency_key,
                "result_source_url": result_url,
            }
            # Validate the caller's fields before any blob is written: bad JSON loses nothing.
            OperationRecord.model_validate(fields)
        except ValidationError as exc:
            raise InvalidInput(_first_error(exc)) from exc
        fields["inputs"] = [self._store_input(src) for src in input_images]
        if result is not None:
            fields["result"] = self._store_result(operation_id, result)
        elif result_url is not None:
            fields["result"], fields["result_error"] = self._download_result(
                operation_id, result_url
            )
        record = OperationRecord.model_validate(fields)
        record = self._before_save(record)
        self._commit(record)
        if marker_key is not None:
            logger.debug("idempotency key %s committed as %s", marker_key, operation_id)
        self._after_save(record)
        return SaveResult(operation_id=operation_id, record=record)

    async def asave_complete_operation(self, **kwargs: Any) -> SaveResult:
        """``save_complete_operation`` for async code: runs in a worker thread."""
        call = functools.partial(self.save_complete_operation, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    def _claim_idempotency(self, key: str) -> tuple[OperationRecord | None, str, str]:
        """Reserve an operation id for ``key`` across processes (an exclusive marker blob)."""
        digest = hashlib.sha256(key.encode()).hexdigest()
        marker = f"idempotency/{digest[:2]}/{digest}.json"
        _, operation_id = new_operation_id()
        try:
            self.blobs.write(
                marker,
                [json.dumps({"operation_id": operation_id}).encode()],
                content_type="application/json",
                exclusive=True,
            )
            return None, marker, operation_id
        except AlreadyExists:
            pass
        claimed = json.loads(self.blobs.read(marker))["operation_id"]
        indexed = self.catalog.get_operation(claimed)
        if indexed is not None:
            return indexed, marker, claimed
        try:
            committed = self._read_sidecar(claimed)
        except NotFound:
            # The first attempt died before its commit point: finish it under the same id.
            return None, marker, claimed
        # The first attempt died between its commit point and the catalog: index it now.
        self._index(committed)
        return committed, marker, claimed

    def _store_input(self, source: Source) -> ArtifactRef:
        payload = prepare(source, limit=self.options.max_input_bytes, what="input image")
        try:
            key = _keys.input_key(payload.sha256, extension_for(payload.content_type))
            # Inputs are content-addressed: a key known to exist holds these very bytes, so the
            # backend need not be asked again (a HEAD per input on S3).
            if not self._known_inputs.known(key):
                if not self.blobs.exists(key):
                    self.blobs.write(key, payload.chunks(), content_type=payload.content_type)
                self._known_inputs.remember(key)
            width, height = payload.dimensions()
            return ArtifactRef(
                key=key,
                sha256=payload.sha256,
                size=payload.size,
                content_type=payload.content_type,
                width=width,
                height=height,
            )
        finally:
            payload.close()

    def _store_result(self, operation_id: str, source: Source) -> ArtifactRef:
        payload = prepare(source, limit=self.options.max_result_bytes, what="result")
        try:
            return self._write_payload(operation_id, payload)
        finally:
            payload.close()

    def _write_payload(self, operation_id: str, payload: Payload) -> ArtifactRef:
        key = _keys.operation_result_key(operation_id, extension_for(payload.content_type))
        self.blobs.write(key, payload.chunks(), content_type=payload.content_type)
        width, height = payload.dimensions()
        return ArtifactRef(
            key=key,
            sha256=payload.sha256,
            size=payload.size,
            content_type=payload.content_type,
            width=width,
            height=height,
        )

    def _download_result(
        self, operation_id: str, url: str
    ) -> tuple[ArtifactRef | None, str | None]:
        from ._download import DownloadError, open_download

        try:
            with open_download(self._client(), url, limit=self.options.max_result_bytes) as dl:
                chunks = iter(dl.chunks)
                first = next(chunks, b"")
                content_type = sniff_content_type(first[:64], dl.content_type)
                key = _keys.operation_result_key(operation_id, extension_for(content_type))
                digest = hashlib.sha256()
                head = bytearray()

                def body() -> Iterator[bytes]:
                    for chunk in _chain(first, chunks):
                        digest.update(chunk)
                        if len(head) < 256 * 1024:
                            head.extend(chunk[: 256 * 1024 - len(head)])
                        yield chunk

                size = self.blobs.write(key, body(), content_type=content_type)
        except DownloadError as exc:
            logger.warning("operation %s: result not stored: %s", operation_id, exc)
            return None, str(exc)
        width = height = None
        if content_type.startswith("image/"):
            width, height = image_size(io.BytesIO(bytes(head)))
        ref = ArtifactRef(
            key=key,
            sha256=digest.hexdigest(),
            size=size,
            content_type=content_type,
            width=width,
            height=height,
        )
        return ref, None

    def _before_save(self, record: OperationRecord) -> OperationRecord:
        hook = get_plugin_manager().hook.genstore_before_save
        for impl in reversed(hook.get_hookimpls()):
            changed = impl.function(record=record)
            if changed is not None:
                if not isinstance(changed, OperationRecord):
                    raise GenstoreError(
                        f"plugin {impl.plugin_name!r} genstore_before_save returned "
                        f"{type(changed).__name__}, not an OperationRecord"
                    )
                record = changed
        return record

    def _after_save(self, record: OperationRecord) -> None:
        try:
            get_plugin_manager().hook.genstore_after_save(record=record)
        except Exception:
            logger.exception("a genstore_after_save hook failed for %s", record.operation_id)

    def _commit(self, record: OperationRecord) -> None:
        """Write the record JSON (the commit point), then index it."""
        key = _keys.operation_record_key(record.operation_id)
        self.blobs.write(key, [record.model_dump_json().encode()], content_type="application/json")
        self._index(record)

    def _index(self, record: OperationRecord) -> None:
        try:
            self.catalog.upsert_operation(record)
        except GenstoreError:
            # The record is committed; `verify --fix` or `reindex` will index it.
            logger.exception("operation %s saved but not indexed", record.operation_id)

    def _forget_input(self, key: str) -> None:
        """Called after deleting the input ``key``: the next save using it writes it again."""
        self._known_inputs.forget(key)

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
        return self._read_sidecar(operation_id)

    def _read_sidecar(self, operation_id: str) -> OperationRecord:
        try:
            data = self.blobs.read(_keys.operation_record_key(operation_id))
        except NotFound:
            raise NotFound(f"no operation {operation_id!r} in {self.blobs.url}") from None
        try:
            return OperationRecord.model_validate_json(data)
        except ValidationError as exc:
            raise GenstoreError(f"record {operation_id} is corrupt: {_first_error(exc)}") from exc

    def delete_operation(self, operation_id: str) -> None:
        """Remove an operation's record and result; shared inputs stay until ``cleanup``."""
        record = self.get_operation(operation_id)
        self.catalog.delete_operation(operation_id)
        self.blobs.delete(_keys.operation_record_key(operation_id))
        if record.result is not None:
            self.blobs.delete(record.result.key)
        if record.idempotency_key is not None:
            digest = hashlib.sha256(record.idempotency_key.encode()).hexdigest()
            self.blobs.delete(f"idempotency/{digest[:2]}/{digest}.json")

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


class _KnownKeys:
    """Keys known to exist: each is trusted for ``ttl`` seconds after it was last seen to.

    Only "it exists" is remembered, never "it does not". Bounded: past ``capacity`` keys the
    least recently used are dropped (and asked about again when next needed). Thread-safe.
    """

    def __init__(self, ttl: float, capacity: int = 10_000) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._seen_at: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, key: str) -> bool:
        """Whether ``key`` was seen to exist less than ``ttl`` seconds ago."""
        with self._lock:
            seen_at = self._seen_at.get(key)
            if seen_at is None:
                return False
            if time.monotonic() - seen_at >= self.ttl:
                del self._seen_at[key]
                return False
            self._seen_at.move_to_end(key)
            return True

    def remember(self, key: str) -> None:
        """``key`` exists now (this store wrote it or the backend said so)."""
        if self.ttl <= 0:
            return
        with self._lock:
            self._seen_at[key] = time.monotonic()
            self._seen_at.move_to_end(key)
            while len(self._seen_at) > self.capacity:
                self._seen_at.popitem(last=False)

    def forget(self, key: str) -> None:
        """``key`` was deleted: ask the backend next time."""
        with self._lock:
            self._seen_at.pop(key, None)


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _check_type(operation_type: object) -> None:
    if not isinstance(operation_type, str) or not operation_type.strip():
        raise InvalidInput("operation_type must be a non-empty string")
    if len(operation_type) > _MAX_TYPE_LENGTH or any(ord(c) < 32 for c in operation_type):
        raise InvalidInput(
            f"operation_type must be at most {_MAX_TYPE_LENGTH} printable characters"
        )


def _error_text(error: str | BaseException | None) -> str | None:
    if error is None:
        return None
    if isinstance(error, BaseException):
        return str(error) or type(error).__name__
    if not isinstance(error, str):
        raise InvalidInput("error must be a string or an exception")
    return error or "error"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "record"
    return f"{where}: {err.get('msg', 'invalid')}"


def _time_of(operation_id: str) -> datetime:
    from ._ids import _CROCKFORD

    ms = 0
    for ch in operation_id[9:19]:
        ms = ms * 32 + _CROCKFORD.index(ch)
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


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
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor is not one this store handed out") from exc
    if created.tzinfo is None:
        raise InvalidInput("cursor is not one this store handed out")
    return created.astimezone(UTC), operation_id


def _artifact_key(ref: ArtifactRef | str) -> str:
    key = ref.key if isinstance(ref, ArtifactRef) else ref
    if not isinstance(key, str) or _keys.parse_key(key) is None:
        raise InvalidInput(f"{str(key)[:80]!r} is not an artefact key of this store")
    return key
