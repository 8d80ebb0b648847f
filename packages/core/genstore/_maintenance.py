"""Store-wide work on one blob store and its catalog: delete, cleanup, reindex, verify, repair,
export and stats. ``Store`` delegates to ``Maintenance``; nothing here knows the ``Store``."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any, TypeVar

from pydantic import ValidationError

from . import _keys
from ._history import history_query, iter_history
from ._known_inputs import KnownInputs
from ._records import ImageRecord, OperationRecord, OperationStatus
from ._save_request import Completion
from ._saving import find_record, marker_key
from .exceptions import GenstoreError, InvalidInput, NotFound
from .plugin import BlobStore, Catalog

__all__ = ["CleanupReport", "Maintenance", "ReindexReport", "VerifyReport"]

logger = logging.getLogger(__name__)

Progress = Callable[[int], None] | None

NEVER_COMPLETED = Completion(error="never completed")
"""How ``cleanup`` ends an operation left pending past ``pending_timeout``."""


@dataclass
class CleanupReport:
    """What ``cleanup`` removed (or would remove, on a dry run)."""

    operations: int = 0
    """Operations deleted."""
    inputs: int = 0
    """Inputs no record references, deleted."""
    bytes: int = 0
    """Bytes freed."""
    expired: int = 0
    """Operations pending longer than ``pending_timeout``, marked failed ("never completed")."""
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ReindexReport:
    """What ``reindex`` indexed, and the records it could not read."""

    operations: int = 0
    images: int = 0
    corrupt: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class VerifyReport:
    """Inconsistencies between blobs, records and the catalog; ``ok`` when there are none."""

    orphan_blobs: list[str] = field(default_factory=list)
    """Results and user PNGs no record points to (a save or create that died before its commit)."""
    unindexed: list[str] = field(default_factory=list)
    """Record keys the catalog lacks."""
    stale_index: list[str] = field(default_factory=list)
    """Catalog rows whose record is gone."""
    unreferenced_inputs: list[str] = field(default_factory=list)
    """Content-addressed inputs no record uses."""
    corrupt: list[str] = field(default_factory=list)
    """Record keys that are not valid JSON records (never deleted automatically)."""
    stale_pending: list[str] = field(default_factory=list)
    """Operations pending longer than ``pending_timeout`` (``cleanup`` marks them failed)."""
    corrupt_index: list[str] = field(default_factory=list)
    """Catalog rows that do not parse (operation ids, ``user_id/image_id`` for images): ``--fix``
    indexes them again from their JSON record, or drops them when that is gone or corrupt."""
    needs_reindex: list[str] = field(default_factory=list)
    """Why the whole catalog must be rebuilt (its file was not a database and was recreated):
    ``--fix`` rebuilds it from the JSON records."""
    fixed: bool = False

    @property
    def ok(self) -> bool:
        return not (
            self.orphan_blobs
            or self.unindexed
            or self.stale_index
            or self.unreferenced_inputs
            or self.corrupt
            or self.stale_pending
            or self.corrupt_index
            or self.needs_reindex
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


M = TypeVar("M", OperationRecord, ImageRecord)


@dataclass
class _Scan:
    """What one pass over the records found: the report, and what a repair needs from it."""

    report: VerifyReport
    records: dict[str, OperationRecord]
    images: dict[tuple[str, str], ImageRecord]
    unindexed: list[str]
    unindexed_images: list[tuple[str, str]]


class Maintenance:
    """Store-wide work on ``blobs`` and ``catalog``; forgets deleted inputs in ``known_inputs``."""

    def __init__(
        self,
        blobs: BlobStore,
        catalog: Catalog,
        known_inputs: KnownInputs,
        *,
        complete: Callable[[str, Completion], object],
        pending_timeout: timedelta,
    ) -> None:
        self.blobs = blobs
        self.catalog = catalog
        self.known_inputs = known_inputs
        self._complete = complete
        self.pending_timeout = pending_timeout

    def _stale_pending(self) -> list[OperationRecord]:
        """Operations still pending ``pending_timeout`` after they were started."""
        cutoff = datetime.now(UTC) - self.pending_timeout
        query = history_query(status=OperationStatus.PENDING.value, until=cutoff, limit=500)
        return list(iter_history(self.catalog, query))

    # -- single records -------------------------------------------------------------------------

    def get_operation(self, operation_id: str) -> OperationRecord:
        """The indexed record, else the committed JSON record; ``NotFound`` if neither."""
        return find_record(self.blobs, self.catalog, operation_id)

    def delete_operation(self, operation_id: str) -> None:
        """Remove a record, its result and its idempotency marker; shared inputs stay."""
        record = self.get_operation(operation_id)
        self.catalog.delete_operation(operation_id)
        self.blobs.delete(_keys.operation_record_key(operation_id))
        for ref in record.results:
            self.blobs.delete(ref.key)
        if record.idempotency_key is not None:
            self.blobs.delete(marker_key(record.idempotency_key))

    def stats(self) -> dict[str, Any]:
        """Counts from the catalog."""
        cat = self.catalog.stats()
        return {
            "store": self.blobs.url,
            "catalog": type(self.catalog).__name__,
            "operations": cat.operations,
            "images": cat.images,
            "by_type": dict(sorted(cat.by_type.items())),
            "by_status": dict(sorted(cat.by_status.items())),
        }

    # -- scans ----------------------------------------------------------------------------------

    def _records(
        self,
        prefix: str,
        kind: str,
        model: type[M],
        *,
        others: dict[str, datetime | None] | None = None,
        other_kind: str = "",
    ) -> Iterator[tuple[str, M | None]]:
        """Every record under ``prefix`` as ``(key, record)``, ``None`` for one that does not parse.

        One listing serves two purposes: blobs of ``other_kind`` found on the way (results beside
        operation records, PNGs beside image records) are collected into ``others``.
        """
        for info in self.blobs.list(prefix):
            parsed = _keys.parse_key(info.key)
            if parsed is None:
                continue
            if parsed.kind == kind:
                try:
                    yield info.key, model.model_validate_json(self.blobs.read(info.key))
                except NotFound:
                    continue  # deleted while we listed: not corrupt, simply gone
                except ValidationError:
                    yield info.key, None
            elif others is not None and parsed.kind == other_kind:
                others[info.key] = info.modified

    def _operation_records(self) -> Iterator[tuple[str, OperationRecord | None]]:
        return self._records(_keys.OPERATIONS_PREFIX, "operation", OperationRecord)

    def _referenced_inputs(self, skip: Collection[str] = ()) -> set[str]:
        """Input keys used by any operation record, those of ``skip`` operation ids left out."""
        keys: set[str] = set()
        for _, record in self._operation_records():
            if record is not None and record.operation_id not in skip:
                keys.update(ref.key for ref in record.inputs)
        return keys

    def _delete_input(self, key: str) -> None:
        self.blobs.delete(key)
        self.known_inputs.forget(key)

    # -- cleanup and reindex --------------------------------------------------------------------

    def cleanup(
        self, older_than: timedelta, *, dry_run: bool = False, grace: timedelta
    ) -> CleanupReport:
        """Delete operations created before now - ``older_than``, then inputs no record references
        (those written in the last ``grace`` are kept: a save in flight writes inputs first)."""
        if not isinstance(older_than, timedelta) or older_than < timedelta(0):
            raise InvalidInput("older_than must be a non-negative timedelta")
        report = CleanupReport(dry_run=dry_run)
        for stale in self._stale_pending():
            report.expired += 1
            if not dry_run:
                self._complete(stale.operation_id, NEVER_COMPLETED)
        cutoff = datetime.now(UTC) - older_than
        old = list(iter_history(self.catalog, history_query(until=cutoff, limit=500)))
        for record in old:
            report.operations += 1
            report.bytes += sum(ref.size for ref in record.results)
            if not dry_run:
                try:
                    self.delete_operation(record.operation_id)
                except NotFound:
                    report.operations -= 1
        # A dry run deleted nothing, so the old records are still there: leave their inputs out.
        referenced = self._referenced_inputs({r.operation_id for r in old} if dry_run else ())
        for info in self.blobs.list(_keys.INPUTS_PREFIX):
            if info.key not in referenced and _old_enough(info.modified, grace):
                report.inputs += 1
                report.bytes += info.size
                if not dry_run:
                    self._delete_input(info.key)
        return report

    def reindex(self, progress: Progress = None) -> ReindexReport:
        """Drop the catalog and index every JSON record again."""
        report = ReindexReport()
        self.catalog.clear()
        for key, record in self._operation_records():
            if record is None:
                report.corrupt.append(key)
                continue
            self.catalog.upsert_operation(record)
            report.operations += 1
            if progress:
                progress(1)
        for key, image in self._records(_keys.IMAGES_PREFIX, "image_record", ImageRecord):
            if image is None:
                report.corrupt.append(key)
                continue
            self.catalog.upsert_image(image)
            report.images += 1
            if progress:
                progress(1)
        return report

    # -- verify and repair ----------------------------------------------------------------------

    def verify(self, *, grace: timedelta) -> VerifyReport:
        """Compare blobs, records and catalog (blobs younger than ``grace`` are left alone: a
        save running right now writes its blobs before its record)."""
        return self._scan(grace).report

    def repair(self, *, grace: timedelta) -> VerifyReport:
        """``verify``, then fix what it found: delete orphans and unreferenced inputs, index what
        the catalog lacks, drop rows whose record is gone, mark stale pending operations failed,
        sweep the backend's temporaries."""
        scan = self._scan(grace)
        report = scan.report
        for key in report.orphan_blobs:
            self.blobs.delete(key)
        for key in report.unreferenced_inputs:
            self._delete_input(key)
        if report.needs_reindex:
            self._refill(scan)  # what the index lacks, holds stale or corrupt: all rewritten
        else:
            self._repair_index(scan)
        for operation_id in report.stale_pending:
            self._complete(operation_id, NEVER_COMPLETED)
        try:
            self.blobs.sweep_temporaries()
        except GenstoreError:
            logger.exception("could not sweep temporary files")
        report.fixed = True
        return report

    def _refill(self, scan: _Scan) -> None:
        """Rebuild this store's rows from the records the scan read (the catalog was recreated)."""
        self.catalog.clear()
        for record in scan.records.values():
            self.catalog.upsert_operation(record)
        for image in scan.images.values():
            self.catalog.upsert_image(image)

    def _repair_index(self, scan: _Scan) -> None:
        """Index what the catalog lacks, rewrite rows that do not parse from their record, and
        drop rows whose record is gone (or is itself corrupt)."""
        for op_id in scan.unindexed:
            self.catalog.upsert_operation(scan.records[op_id])
        for pair in scan.unindexed_images:
            self.catalog.upsert_image(scan.images[pair])
        for entry in scan.report.corrupt_index:
            user_id, slash, image_id = entry.partition("/")
            if slash and (user_id, image_id) in scan.images:
                self.catalog.upsert_image(scan.images[(user_id, image_id)])
            elif slash:
                self.catalog.delete_image(user_id, image_id)
            elif entry in scan.records:
                self.catalog.upsert_operation(scan.records[entry])
            else:
                self.catalog.delete_operation(entry)
        for entry in scan.report.stale_index:
            if "/" in entry:
                self.catalog.delete_image(*entry.split("/", 1))
            else:
                self.catalog.delete_operation(entry)

    def _scan(self, grace: timedelta) -> _Scan:
        report = VerifyReport()
        results: dict[str, datetime | None] = {}
        records: dict[str, OperationRecord] = {}
        corrupt_ids: set[str] = set()
        for key, record in self._records(
            _keys.OPERATIONS_PREFIX,
            "operation",
            OperationRecord,
            others=results,
            other_kind="result",
        ):
            if record is None:
                report.corrupt.append(key)
                corrupt_ids.add(key.rsplit("/", 1)[-1].removesuffix(".json"))
            else:
                records[record.operation_id] = record
        pngs: dict[str, datetime | None] = {}
        images: dict[tuple[str, str], ImageRecord] = {}
        for key, image in self._records(
            _keys.IMAGES_PREFIX, "image_record", ImageRecord, others=pngs, other_kind="image"
        ):
            if image is None:
                report.corrupt.append(key)
            else:
                images[(image.user_id, image.image_id)] = image
        used = {ref.key for r in records.values() for ref in r.results}
        used |= {image.key for image in images.values()}
        report.orphan_blobs = sorted(
            key
            for key, modified in (results | pngs).items()
            if key not in used and _old_enough(modified, grace)
        )
        used_inputs = {ref.key for r in records.values() for ref in r.inputs}
        report.unreferenced_inputs = sorted(
            info.key
            for info in self.blobs.list(_keys.INPUTS_PREFIX)
            if info.key not in used_inputs and _old_enough(info.modified, grace)
        )
        # From the records, not the catalog: a catalog being verified may be the broken part.
        cutoff = datetime.now(UTC) - self.pending_timeout
        report.stale_pending = sorted(
            r.operation_id
            for r in records.values()
            if r.status is OperationStatus.PENDING and r.created_at < cutoff
        )
        return self._compare_index(report, records, images, corrupt_ids)

    def _compare_index(
        self,
        report: VerifyReport,
        records: dict[str, OperationRecord],
        images: dict[tuple[str, str], ImageRecord],
        corrupt_ids: set[str],
    ) -> _Scan:
        reason = self.catalog.needs_reindex()
        if reason is not None:
            # --fix rebuilds the whole catalog: listing every record as unindexed would bury
            # the one finding that matters.
            report.needs_reindex = [reason]
            return _Scan(report, records, images, [], [])
        report.corrupt_index = sorted(self.catalog.unreadable_rows())
        unreadable = set(report.corrupt_index)
        indexed = set(self.catalog.operation_ids())
        indexed_images = set(self.catalog.image_ids())
        unindexed = sorted(records.keys() - indexed)
        unindexed_images = sorted(images.keys() - indexed_images)
        report.unindexed = [_keys.operation_record_key(op) for op in unindexed] + [
            _keys.image_record_key(u, i) for (u, i) in unindexed_images
        ]
        # A row that does not parse is reported (and repaired) once, as corrupt_index.
        report.stale_index = sorted(indexed - records.keys() - corrupt_ids - unreadable) + sorted(
            f"{u}/{i}" for (u, i) in indexed_images - images.keys() if f"{u}/{i}" not in unreadable
        )
        return _Scan(report, records, images, unindexed, unindexed_images)

    # -- export ---------------------------------------------------------------------------------

    def export(self, format: str, file: IO[str], **filters: Any) -> int:
        """Write matching operations, newest first, as CSV (flat columns) or JSON Lines (whole)."""
        if format not in ("csv", "jsonl"):
            raise InvalidInput("format must be 'csv' or 'jsonl'")
        writer = csv.writer(file) if format == "csv" else None
        if writer is not None:
            writer.writerow(EXPORT_COLUMNS)
        count = 0
        for record in iter_history(self.catalog, history_query(limit=500, **filters)):
            if writer is None:
                file.write(record.model_dump_json() + "\n")
            else:
                writer.writerow(_csv_row(record))
            count += 1
        return count


def _old_enough(modified: datetime | None, grace: timedelta) -> bool:
    if modified is None or grace <= timedelta(0):
        return True
    return datetime.now(UTC) - modified >= grace


EXPORT_COLUMNS = (
    "operation_id",
    "created_at",
    "operation_type",
    "status",
    "user_id",
    "prompt",
    "result_keys",
    "result_source_url",
    "result_error",
    "error",
    "duration_ms",
    "inputs",
    "parameters",
)


def _csv_row(record: OperationRecord) -> list[Any]:
    return [
        record.operation_id,
        record.created_at.isoformat(),
        record.operation_type,
        record.status.value,
        record.user_id or "",
        record.prompt or "",
        " ".join(ref.key for ref in record.results),
        record.result_source_url or "",
        record.result_error or "",
        record.error or "",
        "" if record.duration_ms is None else record.duration_ms,
        " ".join(ref.key for ref in record.inputs),
        json.dumps(record.parameters, ensure_ascii=False, separators=(",", ":")),
    ]
