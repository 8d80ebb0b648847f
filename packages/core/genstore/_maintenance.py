"""Store-wide work: stats, cleanup, reindex, verify and export."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

from . import _keys
from ._records import ImageRecord, OperationRecord
from .exceptions import GenstoreError, InvalidInput, NotFound

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["CleanupReport", "ReindexReport", "VerifyReport"]

logger = logging.getLogger(__name__)

Progress = Callable[[int], None] | None


@dataclass
class CleanupReport:
    """What ``cleanup`` removed (or would remove, on a dry run)."""

    operations: int = 0
    inputs: int = 0
    bytes: int = 0
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
    fixed: bool = False

    @property
    def ok(self) -> bool:
        return not (
            self.orphan_blobs
            or self.unindexed
            or self.stale_index
            or self.unreferenced_inputs
            or self.corrupt
        )

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def stats(store: Store) -> dict[str, Any]:
    """Counts from the catalog, plus the recorder's counters when it has run."""
    cat = store.catalog.stats()
    out: dict[str, Any] = {
        "store": store.blobs.url,
        "catalog": type(store.catalog).__name__,
        "operations": cat.operations,
        "images": cat.images,
        "by_type": dict(sorted(cat.by_type.items())),
        "by_status": dict(sorted(cat.by_status.items())),
    }
    recorder = store._recorder
    if recorder is not None:
        out["recorder"] = asdict(recorder.counters)
    return out


M = TypeVar("M", OperationRecord, ImageRecord)


def _records(
    store: Store,
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
    for info in store.blobs.list(prefix):
        parsed = _keys.parse_key(info.key)
        if parsed is None:
            continue
        if parsed.kind == kind:
            try:
                yield info.key, model.model_validate_json(store.blobs.read(info.key))
            except NotFound:
                continue  # deleted while we listed: not corrupt, simply gone
            except ValidationError:
                yield info.key, None
        elif others is not None and parsed.kind == other_kind:
            others[info.key] = info.modified


def _referenced_inputs(store: Store, skip: Collection[str] = ()) -> set[str]:
    """Input keys used by any operation record, those of ``skip`` operation ids left out."""
    keys: set[str] = set()
    for _, record in _records(store, _keys.OPERATIONS_PREFIX, "operation", OperationRecord):
        if record is not None and record.operation_id not in skip:
            keys.update(ref.key for ref in record.inputs)
    return keys


def cleanup(
    store: Store,
    older_than: timedelta,
    *,
    dry_run: bool = False,
    grace: timedelta = timedelta(minutes=10),
) -> CleanupReport:
    """Delete operations created before now - ``older_than``, then inputs no record references
    (those written in the last ``grace`` are kept: a save in flight writes inputs first)."""
    if not isinstance(older_than, timedelta) or older_than < timedelta(0):
        raise InvalidInput("older_than must be a non-negative timedelta")
    report = CleanupReport(dry_run=dry_run)
    cutoff = datetime.now(UTC) - older_than
    old = list(store.iter_operations(until=cutoff))
    for record in old:
        report.operations += 1
        report.bytes += record.result.size if record.result else 0
        if not dry_run:
            try:
                store.delete_operation(record.operation_id)
            except NotFound:
                report.operations -= 1
    # A dry run deleted nothing, so the old records are still there: leave their inputs out.
    referenced = _referenced_inputs(store, {r.operation_id for r in old} if dry_run else ())
    for info in store.blobs.list(_keys.INPUTS_PREFIX):
        if info.key not in referenced and _old_enough(info.modified, grace):
            report.inputs += 1
            report.bytes += info.size
            if not dry_run:
                store.blobs.delete(info.key)
                store._forget_input(info.key)
    return report


def _old_enough(modified: datetime | None, grace: timedelta) -> bool:
    if modified is None or grace <= timedelta(0):
        return True
    return datetime.now(UTC) - modified >= grace


def reindex(store: Store, progress: Progress = None) -> ReindexReport:
    """Drop the catalog and index every JSON record again."""
    report = ReindexReport()
    store.catalog.clear()
    for key, record in _records(store, _keys.OPERATIONS_PREFIX, "operation", OperationRecord):
        if record is None:
            report.corrupt.append(key)
            continue
        store.catalog.upsert_operation(record)
        report.operations += 1
        if progress:
            progress(1)
    for key, image in _records(store, _keys.IMAGES_PREFIX, "image_record", ImageRecord):
        if image is None:
            report.corrupt.append(key)
            continue
        store.catalog.upsert_image(image)
        report.images += 1
        if progress:
            progress(1)
    return report


def verify(
    store: Store, *, fix: bool = False, grace: timedelta = timedelta(minutes=10)
) -> VerifyReport:
    """Compare blobs, records and catalog. Blobs younger than ``grace`` are left alone: a save
    running right now writes its blobs before its record."""
    report = VerifyReport()
    results: dict[str, datetime | None] = {}
    records: dict[str, OperationRecord] = {}
    corrupt_ids: set[str] = set()
    for key, record in _records(
        store,
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
    for key, image in _records(
        store, _keys.IMAGES_PREFIX, "image_record", ImageRecord, others=pngs, other_kind="image"
    ):
        if image is None:
            report.corrupt.append(key)
        else:
            images[(image.user_id, image.image_id)] = image

    used = {r.result.key for r in records.values() if r.result is not None}
    used |= {image.key for image in images.values()}
    report.orphan_blobs = sorted(
        key
        for key, modified in (results | pngs).items()
        if key not in used and _old_enough(modified, grace)
    )
    used_inputs = {ref.key for r in records.values() for ref in r.inputs}
    report.unreferenced_inputs = sorted(
        info.key
        for info in store.blobs.list(_keys.INPUTS_PREFIX)
        if info.key not in used_inputs and _old_enough(info.modified, grace)
    )
    indexed = set(store.catalog.operation_ids())
    indexed_images = set(store.catalog.image_ids())
    unindexed = sorted(records.keys() - indexed)
    unindexed_images = sorted(images.keys() - indexed_images)
    report.unindexed = [_keys.operation_record_key(op) for op in unindexed] + [
        _keys.image_record_key(u, i) for (u, i) in unindexed_images
    ]
    report.stale_index = sorted(indexed - records.keys() - corrupt_ids) + sorted(
        f"{u}/{i}" for (u, i) in indexed_images - images.keys()
    )
    if fix:
        for key in report.orphan_blobs:
            store.blobs.delete(key)
        for key in report.unreferenced_inputs:
            store.blobs.delete(key)
            store._forget_input(key)
        for op_id in unindexed:
            store.catalog.upsert_operation(records[op_id])
        for pair in unindexed_images:
            store.catalog.upsert_image(images[pair])
        for entry in report.stale_index:
            if "/" in entry:
                store.catalog.delete_image(*entry.split("/", 1))
            else:
                store.catalog.delete_operation(entry)
        _sweep_temporaries(store)
        report.fixed = True
    return report


def _sweep_temporaries(store: Store) -> None:
    sweep = getattr(store.blobs, "sweep_temporaries", None)
    if callable(sweep):
        try:
            sweep()
        except GenstoreError:
            logger.exception("could not sweep temporary files")


EXPORT_COLUMNS = (
    "operation_id",
    "created_at",
    "operation_type",
    "status",
    "user_id",
    "prompt",
    "result_key",
    "result_source_url",
    "result_error",
    "error",
    "duration_ms",
    "inputs",
    "parameters",
)


def export(store: Store, format: str, file: IO[str], **filters: Any) -> int:
    """Write matching operations, newest first, as CSV (flat columns) or JSON Lines (whole)."""
    if format not in ("csv", "jsonl"):
        raise InvalidInput("format must be 'csv' or 'jsonl'")
    count = 0
    writer = csv.writer(file) if format == "csv" else None
    if writer is not None:
        writer.writerow(EXPORT_COLUMNS)
    for record in store.iter_operations(**filters):
        if writer is None:
            file.write(record.model_dump_json() + "\n")
        else:
            writer.writerow(
                [
                    record.operation_id,
                    record.created_at.isoformat(),
                    record.operation_type,
                    record.status.value,
                    record.user_id or "",
                    record.prompt or "",
                    record.result.key if record.result else "",
                    record.result_source_url or "",
                    record.result_error or "",
                    record.error or "",
                    "" if record.duration_ms is None else record.duration_ms,
                    " ".join(ref.key for ref in record.inputs),
                    json.dumps(record.parameters, ensure_ascii=False, separators=(",", ":")),
                ]
            )
        count += 1
    return count
