"""The save path of a Store: inputs, result, idempotency claim, hooks, then the commit.

``Store.save_complete_operation`` hands its arguments to ``Saver.save``. Order matters and is the
crash-safety argument: content-addressed inputs and the result are written first, the record JSON
last (the commit point), then the catalog row; a crash before the commit leaves only blobs that
``verify --fix`` sweeps, and a crash after it only an unindexed record that ``reindex`` or the
next idempotent retry indexes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import JsonValue, ValidationError

from . import _keys
from ._ids import check_id, new_operation_id, ulid_time
from ._plugins import get_plugin_manager
from ._records import ArtifactRef, OperationRecord, OperationStatus, RequestInfo, SaveResult
from ._sniff import extension_for, sniff_content_type
from ._sources import Payload, Source, image_size, prepare
from .exceptions import AlreadyExists, GenstoreError, InvalidInput, NotFound
from .plugin import BlobStore, Catalog

if TYPE_CHECKING:
    import httpx

    from ._options import StoreOptions
    from ._store import Store

__all__ = ["Saver", "marker_key", "read_record"]

logger = logging.getLogger(__name__)

_MAX_TYPE_LENGTH = 128


class Saver:
    """Saves operations for one Store, on whatever its ``blobs``, ``catalog`` and ``options`` are
    at the time of the call (callers may replace them). Thread-safe.

    Remembers the input keys it wrote or found to exist, for ``options.known_inputs_ttl`` seconds
    (``forget_input`` after deleting one), and owns the HTTP client that downloads
    ``result_url``s (made on first use; ``close`` releases it).
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()
        self._known_inputs = _KnownKeys(store.options.known_inputs_ttl)

    @property
    def blobs(self) -> BlobStore:
        return self._store.blobs

    @property
    def catalog(self) -> Catalog:
        return self._store.catalog

    @property
    def options(self) -> StoreOptions:
        return self._store.options

    def close(self) -> None:
        """Release the download client, if one was made."""
        if self._http is not None:
            self._http.close()

    def forget_input(self, key: str) -> None:
        """Called after deleting the input ``key``: the next save using it writes it again."""
        self._known_inputs.forget(key)

    def _http_client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                import httpx  # imported on first download: it costs ~0.5 s at start-up

                timeout = httpx.Timeout(self.options.download_timeout, connect=10.0)
                self._http = httpx.Client(timeout=timeout, follow_redirects=True)
            return self._http

    def save(
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
        """``Store.save_complete_operation``: check the arguments, write, commit, run the hooks."""
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
        marker: str | None = None
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not 0 < len(idempotency_key) <= 512:
                raise InvalidInput("idempotency_key must be a string of 1 to 512 characters")
            existing, marker, reserved_id = self._claim_idempotency(idempotency_key)
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
        if marker is not None:
            logger.debug("idempotency key %s committed as %s", marker, operation_id)
        self._after_save(record)
        return SaveResult(operation_id=operation_id, record=record)

    def _claim_idempotency(self, key: str) -> tuple[OperationRecord | None, str, str]:
        """Reserve an operation id for ``key`` across processes (an exclusive marker blob)."""
        marker = marker_key(key)
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
            committed = read_record(self.blobs, claimed)
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
            return _artifact_ref(key, payload)
        finally:
            payload.close()

    def _store_result(self, operation_id: str, source: Source) -> ArtifactRef:
        payload = prepare(
            source, limit=self.options.max_result_bytes, what="result", defer_hash=True
        )
        try:
            key = _keys.operation_result_key(operation_id, extension_for(payload.content_type))
            self.blobs.write(key, payload.chunks(), content_type=payload.content_type)
            return _artifact_ref(key, payload)
        finally:
            payload.close()

    def _download_result(
        self, operation_id: str, url: str
    ) -> tuple[ArtifactRef | None, str | None]:
        from ._download import DownloadError, open_download

        try:
            with open_download(self._http_client(), url, limit=self.options.max_result_bytes) as dl:
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


def marker_key(idempotency_key: str) -> str:
    """The key of the exclusive marker blob that reserves an operation id for a key."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"idempotency/{digest[:2]}/{digest}.json"


def read_record(blobs: BlobStore, operation_id: str) -> OperationRecord:
    """The committed record of ``operation_id`` (its JSON blob); ``NotFound`` if there is none."""
    try:
        data = blobs.read(_keys.operation_record_key(operation_id))
    except NotFound:
        raise NotFound(f"no operation {operation_id!r} in {blobs.url}") from None
    try:
        return OperationRecord.model_validate_json(data)
    except ValidationError as exc:
        raise GenstoreError(f"record {operation_id} is corrupt: {_first_error(exc)}") from exc


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


def _artifact_ref(key: str, payload: Payload) -> ArtifactRef:
    """The reference to ``payload`` stored at ``key`` (image size read from its header)."""
    width, height = payload.dimensions()
    return ArtifactRef(
        key=key,
        sha256=payload.digest(),
        size=payload.size,
        content_type=payload.content_type,
        width=width,
        height=height,
    )


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
    when = ulid_time(operation_id[9:])
    if when is None:  # ids come from new_operation_id: a marker naming anything else is damaged
        raise GenstoreError(f"idempotency marker names a malformed operation id {operation_id!r}")
    return when
