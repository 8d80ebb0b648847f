"""The embedded SQLite catalog: one file, WAL, safe for several processes writing at once."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from genstore import ImageRecord, ImageStatus, OperationRecord
from genstore.exceptions import BackendUnavailable, ConfigurationError
from genstore.plugin import BlobStore, Catalog, CatalogStats, HistoryQuery, StoreURL

from .errors import retrying
from .schema import claim_unnamed_rows, ensure_schema

__all__ = ["SQLiteCatalog", "open_sqlite"]

T = TypeVar("T")

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
        self._run(ensure_schema)
        self._run(lambda c: claim_unnamed_rows(c, store))

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
        return OperationRecord.model_validate_json(row[0]) if row else None

    def query_operations(self, query: HistoryQuery) -> list[OperationRecord]:
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
        sql = "SELECT record FROM operations"
        sql += " WHERE " + " AND ".join(where)  # fixed fragments; values are parameters
        sql += " ORDER BY created_us DESC, operation_id DESC LIMIT ?"
        args.append(query.limit)
        rows = self._run(lambda c: c.execute(sql, args).fetchall())
        return [OperationRecord.model_validate_json(r[0]) for r in rows]

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
        return ImageRecord.model_validate_json(row[0]) if row else None

    def list_images(
        self, user_id: str, *, status: ImageStatus | None, offset: int, limit: int
    ) -> tuple[list[ImageRecord], int]:
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
                    f"SELECT record FROM images WHERE {where} "  # noqa: S608
                    "ORDER BY created_us DESC, image_id DESC LIMIT ? OFFSET ?",
                    [*args, limit, offset],
                ).fetchall()
            finally:
                c.execute("COMMIT")
            return rows, int(total)

        rows, total = self._run(page)
        return [ImageRecord.model_validate_json(r[0]) for r in rows], total

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
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        self._run(delete)

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
