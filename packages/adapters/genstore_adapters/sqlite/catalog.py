"""The embedded SQLite catalog: one file, WAL, safe for several processes writing at once.

A file that is not a database is moved aside and recreated empty when the catalog opens (see
``recovery``); a row that does not parse is ``CorruptRecord`` naming the record. A file that cannot
be written when the catalog opens (permissions, a full or read-only disk) does not stop it opening:
the tables are made by the first call that can, and calls fail ``BackendUnavailable`` until then."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from genstore import ImageRecord, ImageStatus, OperationRecord
from genstore.exceptions import BackendUnavailable, ConfigurationError, CorruptRecord
from genstore.plugin import BlobStore, Catalog, CatalogStats, HistoryQuery, StoreURL

from .._rows import load_image, load_operation, parses
from . import claims
from .errors import retrying
from .recovery import is_broken_file, mark_rebuilt, move_aside, record_recreation, reindex_reason
from .schema import ensure_schema

__all__ = ["SQLiteCatalog", "open_sqlite"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SCAN_BATCH = 1000
_UPSERT_OPERATION = "INSERT OR REPLACE INTO operations VALUES (?, ?, ?, ?, ?, ?, ?, ?)"


def _us(value: datetime) -> int:
    delta = value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class SQLiteCatalog(Catalog):
    """Records indexed in a SQLite file; one connection per thread.

    ``store`` names the store whose rows this catalog reads and writes: several stores may
    share one file and never see each other's rows. ``""`` (the default) is the unnamed store,
    used for a catalog inside its store's own folder.
    """

    def __init__(self, path: Path, *, timeout: float = 30.0, store: str = "") -> None:
        self.path = path
        self.store = store
        self.timeout = timeout
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BackendUnavailable(
                f"cannot create the catalog folder {path.parent}: {exc}"
            ) from exc
        self.where = f"the SQLite catalog {path}"
        self._reindex_reason: str | None = None
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        try:
            self._open_schema()
        except BackendUnavailable as exc:  # the first call that can makes the tables
            logger.warning("%s cannot be opened now: %s", self.where, exc)

    def _open_schema(self) -> None:
        """Create or migrate the tables once; a file that is not a database is moved aside first."""
        with self._schema_lock:
            if not self._schema_ready:
                self._make_schema()
                self._schema_ready = True

    def _make_schema(self) -> None:
        try:
            self._attempt(lambda c: ensure_schema(c, self.store))
        except BackendUnavailable as exc:
            if not is_broken_file(exc.__cause__ or exc):
                raise
            self.close()
            try:
                moved_to = move_aside(self.path)
            except OSError as moving:
                raise BackendUnavailable(
                    f"{self.where} is not a database and cannot be moved aside: {moving}"
                ) from moving
            self._attempt(lambda c: ensure_schema(c, self.store))
            if moved_to is not None:
                self._attempt(lambda c: record_recreation(c, moved_to))
        self._reindex_reason = self._attempt(lambda c: reindex_reason(c, self.store))
        if self._reindex_reason is not None:
            logger.warning("%s: %s", self.where, self._reindex_reason)

    def needs_reindex(self) -> str | None:
        """Why this store's rows must be rebuilt (the file was recreated), or None."""
        if not self._schema_ready:
            self._open_schema()
        if self._reindex_reason is not None:  # asked again: another process may have refilled it
            self._reindex_reason = self._run(lambda c: reindex_reason(c, self.store))
        return self._reindex_reason

    def _check_whole(self) -> None:
        """Refuse to page through an index known to be partial."""
        reason = self.needs_reindex()
        if reason is not None:
            raise CorruptRecord(f"{self.where}: {reason}", key=str(self.path), kind="catalog")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout * 1000)}")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if not self._schema_ready:
            self._open_schema()
        return self._attempt(fn)

    def _attempt(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return retrying(lambda: fn(self._conn()), path=self.path, deadline=self.timeout)

    def upsert_operation(self, record: OperationRecord) -> None:
        row = self._operation_row(record)
        self._run(lambda c: c.execute(_UPSERT_OPERATION, row))

    def upsert_operations(self, records: Sequence[OperationRecord]) -> None:
        """All the rows in one transaction: one commit (one WAL sync point) for the batch."""
        rows = [self._operation_row(record) for record in records]

        def write(c: sqlite3.Connection) -> None:
            c.execute("BEGIN IMMEDIATE")
            try:
                c.executemany(_UPSERT_OPERATION, rows)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        if rows:
            self._run(write)

    def _operation_row(self, record: OperationRecord) -> tuple[Any, ...]:
        return (
            self.store,
            record.operation_id,
            _us(record.created_at),
            record.user_id,
            record.operation_type,
            record.status.value,
            record.idempotency_key,
            record.model_dump_json(),
        )

    def delete_operation(self, operation_id: str) -> None:
        self._run(
            lambda c: c.execute(
                "DELETE FROM operations WHERE store = ? AND operation_id = ?",
                (self.store, operation_id),
            )
        )

    def get_operation(self, operation_id: str) -> OperationRecord | None:
        row = self._run(
            lambda c: c.execute(
                "SELECT record FROM operations WHERE store = ? AND operation_id = ?",
                (self.store, operation_id),
            ).fetchone()
        )
        if row is None:
            return None
        return load_operation(row[0], operation_id=operation_id, where=self.where)

    def query_operations(self, query: HistoryQuery) -> list[OperationRecord]:
        self._check_whole()
        where: list[str] = ["store = ?"]
        args: list[Any] = [self.store]
        for column, value in (
            ("user_id", query.user_id),
            ("operation_type", query.operation_type),
            ("status", query.status),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if query.since is not None:
            where.append("created_us >= ?")
            args.append(_us(query.since))
        if query.until is not None:
            where.append("created_us < ?")
            args.append(_us(query.until))
        if query.before is not None:
            when, op_id = query.before
            where.append("(created_us < ? OR (created_us = ? AND operation_id < ?))")
            args += [_us(when), _us(when), op_id]
        sql = "SELECT operation_id, record FROM operations"
        sql += " WHERE " + " AND ".join(where)  # fixed fragments; values are parameters
        sql += " ORDER BY created_us DESC, operation_id DESC LIMIT ?"
        args.append(query.limit)
        rows = self._run(lambda c: c.execute(sql, args).fetchall())
        return [load_operation(r[1], operation_id=r[0], where=self.where) for r in rows]

    def operation_ids(self) -> Iterator[str]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT operation_id FROM operations WHERE store = ?", (self.store,)
            ).fetchall()
        )
        return (r[0] for r in rows)

    def upsert_image(self, record: ImageRecord) -> None:
        row = (
            self.store,
            record.user_id,
            record.image_id,
            record.status.value,
            _us(record.created_at),
            record.model_dump_json(),
        )
        self._run(
            lambda c: c.execute("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?)", row)
        )

    def delete_image(self, user_id: str, image_id: str) -> None:
        self._run(
            lambda c: c.execute(
                "DELETE FROM images WHERE store = ? AND user_id = ? AND image_id = ?",
                (self.store, user_id, image_id),
            )
        )

    def get_image(self, user_id: str, image_id: str) -> ImageRecord | None:
        row = self._run(
            lambda c: c.execute(
                "SELECT record FROM images WHERE store = ? AND user_id = ? AND image_id = ?",
                (self.store, user_id, image_id),
            ).fetchone()
        )
        if row is None:
            return None
        return load_image(row[0], user_id=user_id, image_id=image_id, where=self.where)

    def list_images(
        self, user_id: str, *, status: ImageStatus | None, offset: int, limit: int
    ) -> tuple[list[ImageRecord], int]:
        self._check_whole()
        where = "store = ? AND user_id = ?"
        args: list[Any] = [self.store, user_id]
        if status is not None:
            where += " AND status = ?"
            args.append(ImageStatus(status).value)

        def page(c: sqlite3.Connection) -> tuple[list[Any], int]:
            # One read transaction: the page and the total agree even while others write.
            c.execute("BEGIN")
            try:
                total = c.execute(f"SELECT count(*) FROM images WHERE {where}", args).fetchone()[0]  # noqa: S608
                rows = c.execute(
                    f"SELECT image_id, record FROM images WHERE {where} "  # noqa: S608
                    "ORDER BY created_us DESC, image_id DESC LIMIT ? OFFSET ?",
                    [*args, limit, offset],
                ).fetchall()
            finally:
                c.execute("COMMIT")
            return rows, int(total)

        rows, total = self._run(page)
        images = [load_image(r[1], user_id=user_id, image_id=r[0], where=self.where) for r in rows]
        return images, total

    def image_ids(self) -> Iterator[tuple[str, str]]:
        rows = self._run(
            lambda c: c.execute(
                "SELECT user_id, image_id FROM images WHERE store = ?", (self.store,)
            ).fetchall()
        )
        return ((r[0], r[1]) for r in rows)

    def clear(self) -> None:
        def delete(c: sqlite3.Connection) -> None:
            # Only this store's rows: another store sharing the file keeps its own.
            c.execute("BEGIN IMMEDIATE")
            try:
                c.execute("DELETE FROM operations WHERE store = ?", (self.store,))
                c.execute("DELETE FROM images WHERE store = ?", (self.store,))
                mark_rebuilt(c, self.store)
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        self._run(delete)
        self._reindex_reason = None

    def unreadable_rows(self) -> Iterator[str]:
        """This store's rows that do not parse, read in keyset batches (never all at once)."""
        ops = (
            "SELECT operation_id, '', record FROM operations WHERE store = ?"
            " AND (operation_id, '') > (?, ?) ORDER BY operation_id LIMIT ?"
        )
        for op_id, _, record in self._walk(ops):
            if not parses(OperationRecord, record):
                yield op_id
        imgs = (
            "SELECT user_id, image_id, record FROM images WHERE store = ?"
            " AND (user_id, image_id) > (?, ?) ORDER BY user_id, image_id LIMIT ?"
        )
        for user_id, image_id, record in self._walk(imgs):
            if not parses(ImageRecord, record):
                yield f"{user_id}/{image_id}"

    def _walk(self, sql: str) -> Iterator[tuple[str, str, str]]:
        """Every row of ``sql`` (keyed by its first two columns), ``_SCAN_BATCH`` at a time."""
        last = ("", "")
        while True:
            args = (self.store, *last, _SCAN_BATCH)
            rows = self._run(lambda c, args=args: c.execute(sql, args).fetchall())  # type: ignore[misc]
            yield from rows
            if len(rows) < _SCAN_BATCH:
                return
            last = (rows[-1][0], rows[-1][1])

    def stats(self) -> CatalogStats:
        def read(c: sqlite3.Connection) -> CatalogStats:
            out = CatalogStats()
            for op_type, status, n in c.execute(
                "SELECT operation_type, status, count(*) FROM operations WHERE store = ?"
                " GROUP BY 1, 2",
                (self.store,),
            ):
                out.operations += n
                out.by_type[op_type] = out.by_type.get(op_type, 0) + n
                out.by_status[status] = out.by_status.get(status, 0) + n
            out.images = c.execute(
                "SELECT count(*) FROM images WHERE store = ?", (self.store,)
            ).fetchone()[0]
            return out

        return self._run(read)

    # -- claims (genstore_adapters.sqlite.claims) -------------------------------------------------

    can_claim = True

    def claim(self, key: str, value: str) -> str | None:
        return self._run(lambda c: claims.claim(c, self.store, key, value))

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()


def open_sqlite(url: StoreURL, blobs: BlobStore) -> SQLiteCatalog:
    """``sqlite:///absolute/path.sqlite3``, or ``sqlite`` alone: ``catalog.sqlite3`` in the
    folder of a local store."""
    root = blobs.local_root()
    if url.location:
        path = Path(url.location).expanduser().resolve()
        # A file inside the store's own folder is that store's alone: keyed by the unnamed
        # store, it survives moving the folder. One elsewhere may be shared: rows name the store.
        own = root is not None and path.is_relative_to(root.resolve())
        return SQLiteCatalog(path, store="" if own else blobs.url)
    if root is None:
        raise ConfigurationError("a bare 'sqlite' catalog needs a local store; give sqlite:///path")
    return SQLiteCatalog(root / "catalog.sqlite3")
