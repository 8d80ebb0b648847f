"""The save path of a Store: inputs, result, idempotency claim, hooks, then the commit.

``Store.save_complete_operation`` hands its arguments to ``Saver.save``. Order matters and is the
crash-safety argument: content-addressed inputs and the result are written first, the record JSON
last (the commit point), then the catalog row; a crash before the commit leaves only blobs that
``verify --fix`` sweeps, and a crash after it only an unindexed record that ``reindex`` or the
next idempotent retry indexes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from . import _keys
from ._claims import claim_marker
from ._ids import new_operation_id, ulid_time
from ._known_inputs import KnownInputs
from ._netguard import NetPolicy
from ._options import StoreOptions
from ._plugins import get_plugin_manager
from ._recording.outputs import decode_data_url
from ._records import ArtifactRef, OperationRecord, OperationStatus, SaveResult
from ._redaction import strip_signing
from ._save_request import (
    Completion,
    Fetched,
    FetchFailed,
    JobCompletion,
    ResultSource,
    ResultURL,
    SaveRequest,
)
from ._sniff import extension_for, sniff_content_type
from ._sources import Payload, Source, image_size, prepare
from .exceptions import BackendUnavailable, CorruptRecord, GenstoreError, InvalidInput, NotFound
from .plugin import BlobStore, Catalog

if TYPE_CHECKING:
    from ._download import DownloadRules

__all__ = ["Saver", "find_record", "marker_key", "read_record"]

logger = logging.getLogger(__name__)


class Saver:
    """Saves operations into one blob store and catalog. Thread-safe.

    ``known_inputs`` (shared with maintenance, which forgets what it deletes) spares an existence
    check per input already written or seen. The HTTP client that downloads ``result_url``s is
    made on first use; ``close`` releases it.
    """

    def __init__(
        self,
        blobs: BlobStore,
        catalog: Catalog,
        options: StoreOptions,
        known_inputs: KnownInputs,
    ) -> None:
        self.blobs = blobs
        self.catalog = catalog
        self.options = options
        self._known_inputs = known_inputs
        # Checked now, so a bad private_urls or allowlist fails when the store opens; the
        # download module (httpx, ~0.5 s to import) is imported on the first download.
        self._policy = NetPolicy.from_options(options.private_urls, options.url_allowlist)
        self._rules: DownloadRules | None = None
        self._lock = threading.Lock()

    def _download_rules(self) -> DownloadRules:
        with self._lock:
            if self._rules is None:
                from ._download import DownloadRules

                self._rules = dataclasses.replace(
                    DownloadRules.from_options(self.options), policy=self._policy
                )
            return self._rules

    def save(self, request: SaveRequest) -> SaveResult:
        """Write the inputs and outputs, commit the record, index it, run the hooks.

        With an idempotency key (or a started job's id, or a chosen ``operation_id``) already
        saved, the first record is returned (``created=False``).
        """
        result = self._write_request(request)
        if result.created:
            self._index(result.record)
            self._after_save(result.record)
        return result

    def save_batch(self, requests: Sequence[SaveRequest]) -> list[SaveResult | Exception | None]:
        """Save several requests, indexing those committed in one catalog transaction.

        Each request is written as ``save`` writes it, up to its commit point (its record JSON);
        then the catalog rows of all of them go in one ``upsert_operations``, then the after-save
        hooks run. One entry per request: its result; the ``Exception`` it raised; or None when
        it was not attempted, because an earlier one found the store unavailable
        (``BackendUnavailable``: the caller keeps those for later).
        """
        outcomes: list[SaveResult | Exception | None] = [None] * len(requests)
        for index, request in enumerate(requests):
            try:
                outcomes[index] = self._write_request(request)
            except BackendUnavailable as exc:  # the store is failing: stop here
                outcomes[index] = exc
                break
            except Exception as exc:  # this request's own fault (content, a hook): go on
                outcomes[index] = exc
        created = [o.record for o in outcomes if isinstance(o, SaveResult) and o.created]
        if created:
            self._index_all(created)
        for record in created:
            self._after_save(record)
        return outcomes

    def _write_request(self, request: SaveRequest) -> SaveResult:
        """Everything of ``save`` up to its commit point (the record JSON), not the catalog row
        nor the after-save hooks; an earlier save's record with ``created=False``."""
        operation_id, id_time, existing = self._operation_id(request)
        if existing is not None:
            return SaveResult(operation_id=existing.operation_id, record=existing, created=False)
        checked = self._checked_record(request, operation_id, id_time)
        inputs = [self._store_input(src) for src in request.input_images]
        stored = self._store_outputs(operation_id, request.outputs, request.result_note)
        stored["inputs"] = inputs
        # What is added is made here, of validated types (ArtifactRef lists, strings): the
        # record needs no second validation.
        record = self._before_save(checked.model_copy(update=stored))
        self._write_record(record)
        return SaveResult(operation_id=record.operation_id, record=record, created=True)

    def complete_job(self, job: JobCompletion) -> SaveResult:
        """Complete the operation started for ``job.job_id``; save the fallback if none was."""
        try:
            operation_id = self.operation_of_job(job.job_id)
        except NotFound:
            return self.save(job.fallback)
        return self.complete(operation_id, job.completion)

    def complete(self, operation_id: str, completion: Completion) -> SaveResult:
        """Finish a pending operation: store its outputs, then replace its record atomically.

        A record no longer pending is returned unchanged (``created=False``): a webhook resent
        or a poll seen twice changes nothing. ``NotFound`` if there is no such operation.
        """
        record = find_record(self.blobs, self.catalog, operation_id)
        if record.status is not OperationStatus.PENDING:
            return SaveResult(operation_id=operation_id, record=record, created=False)
        now = datetime.now(UTC)
        fields = record.model_dump()
        fields.update(self._store_outputs(operation_id, completion.outputs, completion.result_note))
        fields["status"] = OperationStatus.FAILED if completion.error else OperationStatus.SUCCEEDED
        fields["error"] = completion.error
        fields["completed_at"] = now
        fields["duration_ms"] = completion.duration_ms
        if completion.duration_ms is None:
            fields["duration_ms"] = (now - record.created_at).total_seconds() * 1000.0
        try:
            finished = OperationRecord.model_validate(fields)
        except ValidationError as exc:
            raise InvalidInput(_first_error(exc)) from exc
        return self._finish(finished, created=True)

    def operation_of_job(self, job_id: str) -> str:
        """The id of the operation started for ``job_id``; ``NotFound`` if none was."""
        try:
            data = self.blobs.read(marker_key(_job_key(job_id)))
        except NotFound:
            raise NotFound(f"no operation was started for the job {job_id[:200]!r}") from None
        return str(json.loads(data)["operation_id"])

    def _finish(self, record: OperationRecord, *, created: bool) -> SaveResult:
        record = self._before_save(record)
        self._commit(record)
        self._after_save(record)
        return SaveResult(operation_id=record.operation_id, record=record, created=created)

    def _operation_id(self, request: SaveRequest) -> tuple[str, datetime, OperationRecord | None]:
        """A fresh id, or the one chosen up front, or the one an idempotency key (or a started
        job) reserved; with its record if that one was committed."""
        key = request.idempotency_key
        job_key = _job_key(request.job_id) if request.pending and request.job_id else None
        chosen = request.operation_id
        if key is None and job_key is None:
            if chosen is None:
                id_time, operation_id = new_operation_id()
                return operation_id, id_time, None
            # The id was chosen before the first attempt: a record under it is that attempt's.
            return chosen, _time_of(chosen), self._already_saved(chosen)
        existing, operation_id = self._claim_idempotency(key or job_key or "", chosen)
        if key is not None and job_key is not None and existing is None:
            self._write_marker(marker_key(job_key), operation_id)
        return operation_id, _time_of(operation_id), existing

    @staticmethod
    def _checked_record(
        request: SaveRequest, operation_id: str, id_time: datetime
    ) -> OperationRecord:
        """The record without its artefacts, validated before any blob is written: bad JSON
        loses nothing."""
        status = OperationStatus.FAILED if request.error else OperationStatus.SUCCEEDED
        fields: dict[str, Any] = {
            "operation_id": operation_id,
            "operation_type": request.operation_type,
            "status": OperationStatus.PENDING if request.pending else status,
            "prompt": request.prompt,
            "parameters": request.parameters,
            "workflow_analysis": request.workflow_analysis,
            "error": request.error,
            "user_id": request.user_id,
            "created_at": request.created_at or id_time,
            "duration_ms": request.duration_ms,
            "request": request.request,
            "idempotency_key": request.idempotency_key,
            "job_id": request.job_id,
            "notes": list(request.notes),
        }
        try:
            return OperationRecord.model_validate(fields)
        except ValidationError as exc:
            raise InvalidInput(_first_error(exc)) from exc

    def _store_outputs(
        self, operation_id: str, outputs: Sequence[ResultSource], note: str | None = None
    ) -> dict[str, Any]:
        """Store every output under its index's key; one failing keeps the others.

        Returns the record fields ``results``, ``result_error`` and ``result_source_url``.
        """
        results: list[ArtifactRef] = []
        errors: list[str] = [] if note is None else [note]
        for index, output in enumerate(outputs):
            try:
                results.append(self._store_output(operation_id, index, output))
            except _OutputFailed as exc:
                where = f"output {index + 1} of {len(outputs)}: " if len(outputs) > 1 else ""
                errors.append(where + str(exc))
        # A data: URL is the output itself, not where it came from: never kept as a source.
        urls = [o.url for o in outputs if isinstance(o, ResultURL) and not _is_data(o.url)]
        urls += [o.source_url for o in outputs if isinstance(o, Fetched | FetchFailed)]
        return {
            "results": results,
            "result_error": "; ".join(errors) or None,
            "result_source_url": strip_signing(urls[0]) if urls else None,
        }

    def _store_output(self, operation_id: str, index: int, output: ResultSource) -> ArtifactRef:
        if isinstance(output, Fetched):
            ref = self._store_result(operation_id, index, output.path)
            return ref.model_copy(update={"source_url": output.source_url})
        if isinstance(output, FetchFailed):
            raise _OutputFailed(output.error)
        if isinstance(output, ResultURL):
            decoded = decode_data_url(output.url)
            if decoded is not None:
                return self._store_result(operation_id, index, decoded[0])
            if _is_data(output.url):
                raise _OutputFailed("a data: URL that cannot be decoded")
            return self._download_result(operation_id, index, output.url)
        return self._store_result(operation_id, index, output)

    def _claim_idempotency(
        self, key: str, chosen: str | None = None
    ) -> tuple[OperationRecord | None, str]:
        """Reserve an operation id (``chosen``, else a fresh one) for ``key`` across processes:
        an exclusive marker blob, won through the catalog's unique constraint where the blob
        store's exclusive write is not atomic (``genstore._claims``)."""
        operation_id = chosen or new_operation_id()[1]
        claimed = claim_marker(self.blobs, self.catalog, marker_key(key), operation_id)
        if claimed is None:
            return None, operation_id
        return self._already_saved(claimed), claimed

    def _already_saved(self, operation_id: str) -> OperationRecord | None:
        """The record committed under ``operation_id`` (indexed now if it was not), or None."""
        # The record JSON is the commit point: without it no attempt committed (and one
        # existence check is all a first attempt costs).
        if not self.blobs.exists(_keys.operation_record_key(operation_id)):
            return None
        indexed = self.catalog.get_operation(operation_id)
        if indexed is not None:
            return indexed
        try:
            committed = read_record(self.blobs, operation_id)
        except NotFound:  # deleted in between
            return None
        # An attempt died between its commit point and the catalog: index it now.
        self._index(committed)
        return committed

    def _write_marker(self, marker: str, operation_id: str) -> None:
        """Point ``marker`` at ``operation_id`` (a job's second name; claims go through
        ``genstore._claims``)."""
        document = json.dumps({"operation_id": operation_id}).encode()
        self.blobs.write(marker, [document], content_type="application/json")

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

    def _store_result(self, operation_id: str, index: int, source: Source) -> ArtifactRef:
        payload = prepare(
            source, limit=self.options.max_result_bytes, what="result", defer_hash=True
        )
        try:
            ext = extension_for(payload.content_type)
            key = _keys.operation_result_key(operation_id, ext, index)
            self.blobs.write(key, payload.chunks(), content_type=payload.content_type)
            return _artifact_ref(key, payload)
        finally:
            payload.close()

    def fetch(self, url: str, path: Path) -> str | None:
        """Download ``url`` into the new file ``path`` under the store's download rules (the
        recorder fetches results at once when the store is down); the error, or None."""
        from ._download import DownloadError, open_download

        try:
            with open_download(url, self._download_rules()) as dl, open(path, "xb") as out:
                for chunk in dl.chunks:
                    out.write(chunk)
        except DownloadError as exc:
            path.unlink(missing_ok=True)
            return str(exc)
        return None

    def _download_result(self, operation_id: str, index: int, url: str) -> ArtifactRef:
        from ._download import DownloadError, open_download

        try:
            with open_download(url, self._download_rules()) as dl:
                chunks = iter(dl.chunks)
                first = next(chunks, b"")
                content_type = sniff_content_type(first[:64], dl.content_type)
                ext = extension_for(content_type)
                key = _keys.operation_result_key(operation_id, ext, index)
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
            logger.warning("operation %s: result %d not stored: %s", operation_id, index, exc)
            raise _OutputFailed(str(exc)) from exc
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
            source_url=strip_signing(url),
        )
        return ref

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
        self._write_record(record)
        self._index(record)

    def _write_record(self, record: OperationRecord) -> None:
        key = _keys.operation_record_key(record.operation_id)
        self.blobs.write(key, [record.model_dump_json().encode()], content_type="application/json")

    def _index(self, record: OperationRecord) -> None:
        try:
            self.catalog.upsert_operation(record)
        except GenstoreError:
            # The record is committed; `verify --fix` or `reindex` will index it.
            logger.exception("operation %s saved but not indexed", record.operation_id)

    def _index_all(self, records: Sequence[OperationRecord]) -> None:
        try:
            self.catalog.upsert_operations(records)
        except GenstoreError:
            # The records are committed; `verify --fix` or `reindex` will index them.
            ids = ", ".join(r.operation_id for r in records)
            logger.exception("operations saved but not indexed: %s", ids)


def marker_key(idempotency_key: str) -> str:
    """The key of the exclusive marker blob that reserves an operation id for a key."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    return f"idempotency/{digest[:2]}/{digest}.json"


def find_record(blobs: BlobStore, catalog: Catalog, operation_id: str) -> OperationRecord:
    """The indexed record, else the committed JSON record; ``NotFound`` if neither."""
    record = catalog.get_operation(operation_id)
    return record if record is not None else read_record(blobs, operation_id)


def read_record(blobs: BlobStore, operation_id: str) -> OperationRecord:
    """The committed record of ``operation_id`` (its JSON blob); ``NotFound`` if there is none."""
    try:
        data = blobs.read(_keys.operation_record_key(operation_id))
    except NotFound:
        raise NotFound(f"no operation {operation_id!r} in {blobs.url}") from None
    try:
        return OperationRecord.model_validate_json(data)
    except ValidationError as exc:
        raise CorruptRecord(
            f"record {operation_id} is corrupt: {_first_error(exc)}", key=operation_id
        ) from exc


class _OutputFailed(Exception):
    """One output could not be stored; the message goes into ``result_error``."""


def _is_data(url: str) -> bool:
    return url[:5].lower() == "data:"


def _job_key(job_id: str) -> str:
    # Job markers share the idempotency markers' folder; the separator keeps the two apart.
    return f"job\x1f{job_id}"


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


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "record"
    return f"{where}: {err.get('msg', 'invalid')}"


def _time_of(operation_id: str) -> datetime:
    when = ulid_time(operation_id[9:])
    if when is None:  # ids come from new_operation_id: a marker naming anything else is damaged
        raise GenstoreError(f"idempotency marker names a malformed operation id {operation_id!r}")
    return when
