"""Copying a whole store into another (``genstore migrate SRC DST``): streaming, resumable, safe
to stop at any moment.

The order is what keeps a half-finished migration invisible at the destination:

1. every artefact (inputs, results, user PNGs, anything else under the store's folders) is copied;
2. then the JSON records, each only once every artefact it names is there: a record is the commit
   point of its operation or image, so a reader of the destination only ever sees whole ones;
3. then the idempotency markers (a marker without its record would only make a retry finish the
   operation again under the same id);
4. each record is indexed into the destination's catalog as it lands (upsert: safe to repeat).

A second run copies only what is missing or differs at the destination: sizes are compared (an
operation record or idempotency marker is written once and never changes), image records by content
(their status changes in place), and with ``verify=True`` artefacts by sha256 (the checksums the
records hold).
Blobs are copied by a small pool of threads, each streamed in 1 MiB chunks, never whole in memory.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from . import _keys
from ._records import ImageRecord, OperationRecord
from .exceptions import BackendUnavailable, GenstoreError, InvalidInput

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["MigrateFailure", "MigrateReport", "migrate"]

logger = logging.getLogger(__name__)

_MARKERS = "idempotency/"
PREFIXES = (_keys.INPUTS_PREFIX, _keys.OPERATIONS_PREFIX, _keys.IMAGES_PREFIX, _MARKERS)
"""Every folder a store writes under."""

_CHUNK = 1024 * 1024
_JSON = "application/json"

T = TypeVar("T")


@dataclass(frozen=True)
class MigrateFailure:
    """A blob or record that could not be copied or indexed, and why."""

    key: str
    error: str

    def __str__(self) -> str:
        return f"{self.key}: {self.error}" if self.key else self.error


@dataclass
class MigrateReport:
    """What a migration did. Run twice over the same stores, the second copies 0 and skips all."""

    records: int = 0
    """Operation records copied."""
    images: int = 0
    """Image records copied."""
    artefacts: int = 0
    """Other blobs copied: inputs, results, user PNGs, idempotency markers."""
    bytes: int = 0
    """Bytes copied."""
    skipped: int = 0
    """Blobs already identical at the destination."""
    verified: int = 0
    """Artefacts whose sha256 at the destination was checked (``verify=True``)."""
    indexed: int = 0
    """Records upserted into the destination's catalog."""
    failures: list[MigrateFailure] = field(default_factory=list)
    """What went wrong, one entry per blob or record."""

    @property
    def failed(self) -> int:
        """How many blobs or records failed."""
        return len(self.failures)

    @property
    def ok(self) -> bool:
        """Nothing failed."""
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["failures"] = [str(f) for f in self.failures]
        out["failed"] = self.failed
        return out


@dataclass(frozen=True)
class _Outcome:
    copied: int | None
    """Bytes copied, or None when the destination already had the blob."""
    verified: bool = False


class _Stopped(Exception):
    """A store stopped answering earlier in the run: this blob is not attempted."""


class _Migration:
    """One run: the source's listing and records, the destination's listing, the report."""

    def __init__(self, src: Store, dst: Store, *, verify: bool) -> None:
        self.src = src
        self.dst = dst
        self.verify = verify
        self.stop = threading.Event()
        self.report = MigrateReport()
        self.src_sizes = {i.key: i.size for p in PREFIXES for i in src.blobs.list(p)}
        self.dst_sizes = {i.key: i.size for p in PREFIXES for i in dst.blobs.list(p)}
        self.operations: dict[str, OperationRecord] = {}
        self.images: dict[str, ImageRecord] = {}
        self.checksums: dict[str, str] = {}
        self.content_types: dict[str, str] = {}

    # -- what the records say ------------------------------------------------------------------

    def load(self, key: str) -> OperationRecord | ImageRecord | None:
        """Parse a source record (None for a corrupt one: it is still copied as it is)."""
        self._check_stop()
        data = self.src.blobs.read(key)
        model: type[OperationRecord] | type[ImageRecord]
        model = OperationRecord if key.startswith(_keys.OPERATIONS_PREFIX) else ImageRecord
        try:
            return model.model_validate_json(data)
        except ValidationError:
            return None

    def learn(self, key: str, record: OperationRecord | ImageRecord | None) -> None:
        if isinstance(record, OperationRecord):
            self.operations[key] = record
            for ref in [*record.inputs, *record.results]:
                self.checksums[ref.key] = ref.sha256
                self.content_types[ref.key] = ref.content_type
        elif isinstance(record, ImageRecord):
            self.images[key] = record
            self.checksums[record.key] = record.sha256
            self.content_types[record.key] = "image/png"
        else:
            self.report.failures.append(
                MigrateFailure(key, "not a valid record at the source: copied as is, not indexed")
            )

    def needs(self, key: str) -> list[str]:
        """The artefacts a record names."""
        op = self.operations.get(key)
        if op is not None:
            return [r.key for r in op.inputs] + [r.key for r in op.results]
        image = self.images.get(key)
        return [image.key] if image is not None else []

    # -- copying one blob ----------------------------------------------------------------------

    def copy(self, key: str) -> _Outcome:
        """Copy ``key`` unless the destination already has it; check it when verifying."""
        self._check_stop()
        expected = self.checksums.get(key)
        if self._same_at_destination(key, expected):
            return _Outcome(None, verified=self.verify and not _is_json(key))
        digest = hashlib.sha256()

        def chunks(f: Any) -> Iterator[bytes]:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                yield chunk

        with self.src.blobs.open(key) as f:
            size = self.dst.blobs.write(key, chunks(f), content_type=self._content_type(key))
        copied = digest.hexdigest()
        if expected is not None and copied != expected:
            raise _Mismatch(f"the source does not match its record's sha256 ({copied[:12]}…)")
        if self.verify and not _is_json(key):
            at_dst = _sha256(self.dst, key)
            if at_dst != copied:
                raise _Mismatch(f"sha256 at the destination is {at_dst[:12]}…, not {copied[:12]}…")
            return _Outcome(size, verified=True)
        return _Outcome(size)

    def _same_at_destination(self, key: str, expected: str | None) -> bool:
        if self.dst_sizes.get(key) != self.src_sizes[key]:
            return False
        parsed = _keys.parse_key(key)
        if parsed is not None and parsed.kind == "image_record":
            # Image records change in place (status) without changing size: compare the bytes.
            return self.dst.blobs.read(key) == self.src.blobs.read(key)
        if _is_json(key):
            return True  # operation records and markers are written once, never changed
        if not self.verify:
            return True
        return _sha256(self.dst, key) == (expected or _sha256(self.src, key))

    def _content_type(self, key: str) -> str:
        if _is_json(key):
            return _JSON
        known = self.content_types.get(key)
        if known:
            return known
        return mimetypes.guess_type(key)[0] or "application/octet-stream"

    def _check_stop(self) -> None:
        if self.stop.is_set():
            raise _Stopped

    # -- bookkeeping (main thread only) --------------------------------------------------------

    def count(self, key: str, outcome: _Outcome) -> None:
        report = self.report
        if outcome.verified:
            report.verified += 1
        if outcome.copied is None:
            report.skipped += 1
            return
        report.bytes += outcome.copied
        kind = _keys.parse_key(key)
        if kind is not None and kind.kind == "operation":
            report.records += 1
        elif kind is not None and kind.kind == "image_record":
            report.images += 1
        else:
            report.artefacts += 1

    def index(self, key: str) -> None:
        try:
            op = self.operations.get(key)
            if op is not None:
                self.dst.catalog.upsert_operation(op)
                self.report.indexed += 1
            image = self.images.get(key)
            if image is not None:
                self.dst.catalog.upsert_image(image)
                self.report.indexed += 1
        except GenstoreError as exc:
            self.fail(key, exc)

    def fail(self, key: str, exc: BaseException) -> None:
        if isinstance(exc, BackendUnavailable):
            self.stop.set()
        message = str(exc) if isinstance(exc, GenstoreError) else f"{type(exc).__name__}: {exc}"
        self.report.failures.append(MigrateFailure(key, message))


class _Mismatch(GenstoreError):
    """A checksum did not match."""


def migrate(
    src: Store,
    dst: Store,
    *,
    verify: bool = False,
    progress: Callable[[int], None] | None = None,
    workers: int = 8,
) -> MigrateReport:
    """Copy every record and artefact of ``src`` into ``dst``, indexing the records there.

    Resumable: after a failure, run it again and only what is missing or differs is copied.
    ``verify``: check the sha256 of every artefact at ``dst`` against the records (artefacts that
    differ are copied again). ``progress(n)`` is called as blobs are done (copied, skipped or
    failed). Failures are collected in the report, never raised; when a store stops answering
    (``BackendUnavailable``) the run stops early and its failures say so.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidInput("workers must be a positive integer")
    run = _Migration(src, dst, verify=verify)
    tick = progress or (lambda n: None)
    record_keys = [k for k in run.src_sizes if _is_record(k)]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="genstore-migrate") as pool:
        for key, record in _each(pool, record_keys, run.load, run):
            run.learn(key, record)
        done: set[str] = set()
        for key, outcome in _each(pool, _artefacts(run.src_sizes), run.copy, run, tick):
            run.count(key, outcome)
            done.add(key)
        ready = [k for k in record_keys if _artefacts_there(run, k, done)]
        for key, outcome in _each(pool, ready, run.copy, run, tick):
            run.count(key, outcome)
            run.index(key)
        markers = [k for k in run.src_sizes if k.startswith(_MARKERS)]
        for key, outcome in _each(pool, markers, run.copy, run, tick):
            run.count(key, outcome)
    if run.stop.is_set():
        touched = (
            run.report.skipped + _copied(run.report) + len({f.key for f in run.report.failures})
        )
        left = max(len(run.src_sizes) - touched, 0)
        run.report.failures.append(
            MigrateFailure("", f"stopped early, a store stopped answering: {left} blob(s) left")
        )
    return run.report


def _each(
    pool: ThreadPoolExecutor,
    keys: Iterable[str],
    work: Callable[[str], T],
    run: _Migration,
    tick: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, T]]:
    """Run ``work`` over ``keys`` in the pool; yield successes, record failures."""
    futures = {pool.submit(work, key): key for key in keys}
    for future in as_completed(futures):
        key = futures[future]
        try:
            result = future.result()
        except _Stopped:
            continue
        except GenstoreError as exc:
            run.fail(key, exc)
        except Exception as exc:  # one odd blob must not end the whole migration
            logger.exception("migrating %s failed", key)
            run.fail(key, exc)
        else:
            yield key, result
        if tick is not None:
            tick(1)


def _artefacts(sizes: dict[str, int]) -> list[str]:
    """Everything but the records and markers, which go after the artefacts they name."""
    return [k for k in sizes if not _is_json(k)]


def _artefacts_there(run: _Migration, key: str, done: set[str]) -> bool:
    """Whether every artefact the record names reached the destination (else: not copied)."""
    if run.stop.is_set():
        return False  # nothing more is attempted; the closing failure says how much is left
    missing = [k for k in run.needs(key) if k not in done]
    absent_at_source = [k for k in missing if k not in run.src_sizes]
    for k in absent_at_source:
        run.report.failures.append(
            MigrateFailure(k, f"named by {key} but missing at the source (record copied as is)")
        )
    failed = [k for k in missing if k in run.src_sizes]
    if failed:
        run.report.failures.append(
            MigrateFailure(key, f"not copied: its artefact {failed[0]} is not at the destination")
        )
        return False
    return True


def _is_record(key: str) -> bool:
    parsed = _keys.parse_key(key)
    return parsed is not None and parsed.kind in ("operation", "image_record")


def _is_json(key: str) -> bool:
    """Records and idempotency markers: small JSON, compared by content, never by checksum."""
    return _is_record(key) or key.startswith(_MARKERS)


def _copied(report: MigrateReport) -> int:
    return report.records + report.images + report.artefacts


def _sha256(store: Store, key: str) -> str:
    digest = hashlib.sha256()
    with store.blobs.open(key) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
