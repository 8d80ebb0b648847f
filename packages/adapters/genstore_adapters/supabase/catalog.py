"""The ``supabase`` catalog: records indexed in two PostgREST tables through the supabase client.

Each row keeps the whole record as JSON in a ``record`` (jsonb) column, next to the indexed
columns the queries filter and order on, so records round-trip exactly. Rows carry the store they
index (``store``, the store's URL, leading every key): stores sharing the tables never read or
touch each other's rows. The tables, indexes and row-level-security policies come from
``migration_sql()`` (printed by ``genstore supabase-sql``), which also upgrades tables made before
rows carried their store; those rows (store ``''``) go to the first store opening the catalog.

Catalog URL ``supabase[?option=value...]``: ``timeout`` (seconds per request, default 30),
``deadline`` (seconds one call may spend retrying, default the backend's or 15), ``max_rows``
(the project's PostgREST ``db-max-rows`` if set below Supabase's default 1000). Opened next to a
``supabase://`` backend, the catalog shares its HTTP connection pool.
"""

from __future__ import annotations

import builtins
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

from genstore import ImageRecord, ImageStatus, OperationRecord
from genstore.exceptions import AlreadyExists
from genstore.plugin import BlobStore, Catalog, CatalogStats, HistoryQuery, StoreURL
from postgrest.exceptions import APIError
from postgrest.types import CountMethod, ReturnMethod

from .._retry import RetryPolicy
from .._rows import Row, load_image, load_operation, parses
from .blobs import SupabaseBlobStore
from .config import MAX_ROWS, CatalogOptions, Settings, retry_policy
from .connection import SupabaseConnection
from .errors import call

__all__ = ["IMAGES_TABLE", "OPERATIONS_TABLE", "SupabaseCatalog", "open_supabase_catalog"]

logger = logging.getLogger(__name__)

OPERATIONS_TABLE = "genstore_operations"
IMAGES_TABLE = "genstore_images"


def _ts(value: datetime) -> str:
    """A timestamp PostgreSQL parses exactly (microseconds, UTC, no ``+`` to escape)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _quoted(value: str) -> str:
    """A value inside a PostgREST ``or=(...)`` tree, where ``,.:()`` are reserved."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _record(row: dict[str, Any]) -> Row:
    """The ``record`` column as ``_rows`` reads it: an object as parsed, any other JSON value
    (a damaged row) as its text, which no record parses from."""
    value = row["record"]
    return value if isinstance(value, dict) else json.dumps(value)


class SupabaseCatalog(Catalog):
    """Catalog over the ``genstore_operations`` and ``genstore_images`` tables, for one store.

    Every row written carries ``store`` and every read, count and delete filters on it.
    """

    def __init__(
        self,
        connection: SupabaseConnection,
        *,
        store: str,
        retry: RetryPolicy | None = None,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self.connection = connection
        self.store = store
        """The store whose rows this catalog reads and writes (its URL); others' stay apart."""
        self.retry = retry or retry_policy()
        self.max_rows = max_rows
        self._where = f"the Supabase catalog of {store}"
        self._closed = False

    def _run(self, build: Callable[[], Any], what: str) -> Any:
        """Build a fresh request for each attempt and execute it under the retry policy."""
        return call(self.retry, lambda: build().execute(), what=f"catalog: {what}")

    def _select(self, table: str, columns: str, **options: Any) -> Any:
        """``select`` on this store's rows of ``table``."""
        return self.connection.table(table).select(columns, **options).eq("store", self.store)

    def _delete(self, table: str) -> Any:
        """``delete`` of this store's rows of ``table`` (more filters follow)."""
        request = self.connection.table(table).delete(returning=ReturnMethod.minimal)
        return request.eq("store", self.store)

    def _upsert(self, table: str, row: dict[str, Any], key: str) -> Any:
        """Insert or replace the row of ``key`` (its columns after ``store``) in this store."""
        return self.connection.table(table).upsert(
            {"store": self.store, **row},
            on_conflict=f"store,{key}",
            returning=ReturnMethod.minimal,
        )

    def check_schema(self) -> None:
        """Fail now, with the fix in the message, if the migration (this version) was not
        applied: tables without ``store`` are the first version's."""
        for table, column in ((OPERATIONS_TABLE, "operation_id"), (IMAGES_TABLE, "image_id")):
            self._run(partial(self._probe, table, column), f"check table {table}")

    def _probe(self, table: str, column: str) -> Any:
        return self._select(table, f"store,{column}").limit(1)

    def adopt_unowned_rows(self) -> None:
        """Give this store the rows written before rows carried their store (store ``''``).

        The first store opening a catalog upgraded by the migration takes them, in one
        ``UPDATE`` per table; later opens find none. Should this store hold a row with the same
        key already, that table's old rows stay unowned (a warning says so): no store reads
        them, and ``reindex`` indexes the records again from the store.
        """
        for table in (OPERATIONS_TABLE, IMAGES_TABLE):
            try:
                self._run(partial(self._adopt, table), f"adopt the unowned rows of {table}")
            except AlreadyExists as exc:
                logger.warning(
                    "the rows of %s written before rows carried their store stay unowned: %s",
                    table,
                    exc,
                )

    def _adopt(self, table: str) -> Any:
        request = self.connection.table(table).update(
            {"store": self.store}, returning=ReturnMethod.minimal
        )
        return request.eq("store", "")

    # -- operations ------------------------------------------------------------------------

    def upsert_operation(self, record: OperationRecord) -> None:
        row = {
            "operation_id": record.operation_id,
            "operation_type": record.operation_type,
            "status": str(record.status),
            "user_id": record.user_id,
            "idempotency_key": record.idempotency_key,
            "created_at": _ts(record.created_at),
            "record": record.model_dump(mode="json"),
        }
        self._run(
            partial(self._upsert, OPERATIONS_TABLE, row, "operation_id"),
            f"upsert operation {record.operation_id}",
        )

    def delete_operation(self, operation_id: str) -> None:
        self._run(
            lambda: self._delete(OPERATIONS_TABLE).eq("operation_id", operation_id),
            f"delete operation {operation_id}",
        )

    def get_operation(self, operation_id: str) -> OperationRecord | None:
        response = self._run(
            lambda: self._select(OPERATIONS_TABLE, "record").eq("operation_id", operation_id),
            f"get operation {operation_id}",
        )
        rows = response.data
        return self._operation(operation_id, rows[0]) if rows else None

    def _operation(self, operation_id: str, row: dict[str, Any]) -> OperationRecord:
        return load_operation(_record(row), operation_id=operation_id, where=self._where)

    def query_operations(self, query: HistoryQuery) -> list[OperationRecord]:
        out: list[OperationRecord] = []
        before = query.before
        while len(out) < query.limit:
            size = min(self.max_rows, query.limit - len(out))
            page = self._run(
                partial(self._history_request, query, before, size), "query operations"
            ).data
            out.extend(self._operation(row["operation_id"], row) for row in page)
            if len(page) < size:
                break
            last = out[-1]
            before = (last.created_at, last.operation_id)
        return out

    def _history_request(
        self, query: HistoryQuery, before: tuple[datetime, str] | None, limit: int
    ) -> Any:
        request = self._select(OPERATIONS_TABLE, "operation_id,record")
        for column, value in (
            ("user_id", query.user_id),
            ("operation_type", query.operation_type),
            ("status", query.status),
        ):
            if value is not None:
                request = request.eq(column, value)
        if query.since is not None:
            request = request.gte("created_at", _ts(query.since))
        if query.until is not None:
            request = request.lt("created_at", _ts(query.until))
        if before is not None:
            when, op_id = _quoted(_ts(before[0])), _quoted(before[1])
            request = request.or_(
                f"created_at.lt.{when},and(created_at.eq.{when},operation_id.lt.{op_id})"
            )
        return request.order("created_at", desc=True).order("operation_id", desc=True).limit(limit)

    def operation_ids(self) -> Iterator[str]:
        for row in self._keyset(OPERATIONS_TABLE, ("operation_id",), "operation_id"):
            yield row["operation_id"]

    # -- images ----------------------------------------------------------------------------

    def upsert_image(self, record: ImageRecord) -> None:
        row = {
            "user_id": record.user_id,
            "image_id": record.image_id,
            "status": str(record.status),
            "created_at": _ts(record.created_at),
            "updated_at": _ts(record.updated_at),
            "record": record.model_dump(mode="json"),
        }
        self._run(
            partial(self._upsert, IMAGES_TABLE, row, "user_id,image_id"),
            f"upsert image {record.user_id}/{record.image_id}",
        )

    def delete_image(self, user_id: str, image_id: str) -> None:
        self._run(
            lambda: self._delete(IMAGES_TABLE).eq("user_id", user_id).eq("image_id", image_id),
            f"delete image {user_id}/{image_id}",
        )

    def get_image(self, user_id: str, image_id: str) -> ImageRecord | None:
        rows = self._run(
            lambda: (
                self._select(IMAGES_TABLE, "record").eq("user_id", user_id).eq("image_id", image_id)
            ),
            f"get image {user_id}/{image_id}",
        ).data
        return self._image(user_id, image_id, rows[0]) if rows else None

    def _image(self, user_id: str, image_id: str, row: dict[str, Any]) -> ImageRecord:
        return load_image(_record(row), user_id=user_id, image_id=image_id, where=self._where)

    def list_images(
        self, user_id: str, *, status: ImageStatus | None, offset: int, limit: int
    ) -> tuple[list[ImageRecord], int]:
        def page_request(start: int, size: int) -> Any:
            request = self._select(IMAGES_TABLE, "image_id,record", count=CountMethod.exact)
            request = request.eq("user_id", user_id)
            if status is not None:
                request = request.eq("status", ImageStatus(status).value)
            return (
                request.order("created_at", desc=True)
                .order("image_id", desc=True)
                .range(start, start + size - 1)
            )

        def fetch(start: int, size: int) -> Any:
            try:
                return page_request(start, size).execute()
            except APIError as exc:
                if exc.code == "PGRST103":  # offset past the end: PostgREST answers 416
                    return None
                raise

        items: list[ImageRecord] = []
        total: int | None = None
        start = max(0, offset)
        while len(items) < limit:
            size = min(self.max_rows, limit - len(items))
            response = call(
                self.retry, partial(fetch, start, size), what=f"catalog: list images of {user_id}"
            )
            if response is None:
                break
            total = response.count
            items.extend(self._image(user_id, row["image_id"], row) for row in response.data)
            start += len(response.data)
            if not response.data or (total is not None and start >= total):
                break
        if total is None:
            total = self._count_images(user_id, status)
        return items, total

    def _count_images(self, user_id: str | None, status: ImageStatus | None) -> int:
        def request() -> Any:
            query = self._select(IMAGES_TABLE, "image_id", count=CountMethod.exact, head=True)
            if user_id is not None:
                query = query.eq("user_id", user_id)
            if status is not None:
                query = query.eq("status", ImageStatus(status).value)
            return query

        count = self._run(request, "count images").count
        return int(count or 0)

    def image_ids(self) -> Iterator[tuple[str, str]]:
        for row in self._keyset(IMAGES_TABLE, ("user_id", "image_id"), "user_id,image_id"):
            yield row["user_id"], row["image_id"]

    # -- whole catalog ---------------------------------------------------------------------

    def _keyset(self, table: str, key: tuple[str, ...], columns: str) -> Iterator[dict[str, Any]]:
        """This store's rows of ``table`` (``columns`` only), ascending by ``key``, a page at a
        time."""
        last: dict[str, Any] | None = None
        while True:

            def request(after: dict[str, Any] | None = last) -> Any:
                query = self._select(table, columns)
                if after is not None:
                    if len(key) == 1:
                        query = query.gt(key[0], after[key[0]])
                    else:
                        first, second = key
                        a, b = _quoted(after[first]), _quoted(after[second])
                        query = query.or_(f"{first}.gt.{a},and({first}.eq.{a},{second}.gt.{b})")
                for column in key:
                    query = query.order(column)
                return query.limit(self.max_rows)

            rows: builtins.list[dict[str, Any]] = self._run(request, f"scan {table}").data
            yield from rows
            if len(rows) < self.max_rows:
                return
            last = rows[-1]

    def unreadable_rows(self) -> Iterator[str]:
        """This store's rows that do not parse, read a page of ``max_rows`` at a time."""
        for row in self._keyset(OPERATIONS_TABLE, ("operation_id",), "operation_id,record"):
            if not parses(OperationRecord, _record(row)):
                yield row["operation_id"]
        for row in self._keyset(IMAGES_TABLE, ("user_id", "image_id"), "user_id,image_id,record"):
            if not parses(ImageRecord, _record(row)):
                yield f"{row['user_id']}/{row['image_id']}"

    def clear(self) -> None:
        # Only this store's rows (the filter on store also satisfies Supabase's pg-safeupdate,
        # which rejects a DELETE without a WHERE clause).
        for table in (OPERATIONS_TABLE, IMAGES_TABLE):
            self._run(partial(self._delete, table), f"clear {table}")

    def stats(self) -> CatalogStats:
        by_type: Counter[str] = Counter()
        by_status: Counter[str] = Counter()
        # PostgREST aggregates are off by default on Supabase: count from the indexed columns.
        for row in self._keyset(
            OPERATIONS_TABLE, ("operation_id",), "operation_id,operation_type,status"
        ):
            by_type[row["operation_type"]] += 1
            by_status[row["status"]] += 1
        return CatalogStats(
            operations=sum(by_type.values()),
            images=self._count_images(None, None),
            by_type=dict(by_type),
            by_status=dict(by_status),
        )

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.connection.release()


def open_supabase_catalog(url: StoreURL, blobs: BlobStore) -> SupabaseCatalog:
    """Open the ``supabase`` catalog of the store ``blobs`` (the spec's factory), sharing the
    backend's connection when the store is on Supabase too; rows from before rows carried their
    store go to it (``SupabaseCatalog.adopt_unowned_rows``)."""
    options = CatalogOptions.from_url(url)
    if isinstance(blobs, SupabaseBlobStore) and blobs.connection.settings.api_url is not None:
        connection = blobs.connection.acquire()
        retry = retry_policy(options.deadline or blobs.retry.deadline)
    else:
        connection = SupabaseConnection(Settings.from_env(need_api=True), timeout=options.timeout)
        retry = retry_policy(options.deadline or retry_policy().deadline)
    catalog = SupabaseCatalog(connection, store=blobs.url, retry=retry, max_rows=options.max_rows)
    try:
        catalog.check_schema()
        catalog.adopt_unowned_rows()
    except BaseException:
        catalog.close()
        raise
    return catalog
