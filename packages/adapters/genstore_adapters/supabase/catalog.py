"""The ``supabase`` catalog: records indexed in two PostgREST tables through the supabase client.

Each row keeps the whole record as JSON in a ``record`` (jsonb) column, next to the indexed
columns the queries filter and order on, so records round-trip exactly. The tables, indexes and
row-level-security policies come from ``migration_sql()`` (printed by ``genstore supabase-sql``).

Catalog URL ``supabase[?option=value...]``: ``timeout`` (seconds per request, default 30),
``deadline`` (seconds one call may spend retrying, default the backend's or 15), ``max_rows``
(the project's PostgREST ``db-max-rows`` if set below Supabase's default 1000). Opened next to a
``supabase://`` backend, the catalog shares its HTTP connection pool.
"""

from __future__ import annotations

import builtins
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

from genstore import ImageRecord, ImageStatus, OperationRecord
from genstore.plugin import BlobStore, Catalog, CatalogStats, HistoryQuery, StoreURL
from postgrest.exceptions import APIError
from postgrest.types import CountMethod, ReturnMethod

from .._retry import RetryPolicy
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


def _record_json(row: dict[str, Any]) -> Any:
    return row["record"]


class SupabaseCatalog(Catalog):
    """Catalog over the ``genstore_operations`` and ``genstore_images`` tables."""

    def __init__(
        self,
        connection: SupabaseConnection,
        *,
        retry: RetryPolicy | None = None,
        max_rows: int = MAX_ROWS,
    ) -> None:
        self.connection = connection
        self.retry = retry or retry_policy()
        self.max_rows = max_rows
        self._closed = False

    def _run(self, build: Callable[[], Any], what: str) -> Any:
        """Build a fresh request for each attempt and execute it under the retry policy."""
        return call(self.retry, lambda: build().execute(), what=f"catalog: {what}")

    def _ops(self) -> Any:
        return self.connection.table(OPERATIONS_TABLE)

    def _images(self) -> Any:
        return self.connection.table(IMAGES_TABLE)

    def check_schema(self) -> None:
        """Fail now, with the fix in the message, if the migration was not applied."""
        for table, column in ((OPERATIONS_TABLE, "operation_id"), (IMAGES_TABLE, "image_id")):
            self._run(partial(self._probe, table, column), f"check table {table}")

    def _probe(self, table: str, column: str) -> Any:
        return self.connection.table(table).select(column).limit(1)

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
            lambda: self._ops().upsert(
                row, on_conflict="operation_id", returning=ReturnMethod.minimal
            ),
            f"upsert operation {record.operation_id}",
        )

    def delete_operation(self, operation_id: str) -> None:
        self._run(
            lambda: (
                self._ops().delete(returning=ReturnMethod.minimal).eq("operation_id", operation_id)
            ),
            f"delete operation {operation_id}",
        )

    def get_operation(self, operation_id: str) -> OperationRecord | None:
        response = self._run(
            lambda: self._ops().select("record").eq("operation_id", operation_id).limit(1),
            f"get operation {operation_id}",
        )
        rows = response.data
        return OperationRecord.model_validate(_record_json(rows[0])) if rows else None

    def query_operations(self, query: HistoryQuery) -> list[OperationRecord]:
        out: list[OperationRecord] = []
        before = query.before
        while len(out) < query.limit:
            size = min(self.max_rows, query.limit - len(out))
            page = self._run(
                partial(self._history_request, query, before, size), "query operations"
            ).data
            out.extend(OperationRecord.model_validate(_record_json(row)) for row in page)
            if len(page) < size:
                break
            last = out[-1]
            before = (last.created_at, last.operation_id)
        return out

    def _history_request(
        self, query: HistoryQuery, before: tuple[datetime, str] | None, limit: int
    ) -> Any:
        request = self._ops().select("record")
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
            lambda: self._images().upsert(
                row, on_conflict="user_id,image_id", returning=ReturnMethod.minimal
            ),
            f"upsert image {record.user_id}/{record.image_id}",
        )

    def delete_image(self, user_id: str, image_id: str) -> None:
        self._run(
            lambda: (
                self._images()
                .delete(returning=ReturnMethod.minimal)
                .eq("user_id", user_id)
                .eq("image_id", image_id)
            ),
            f"delete image {user_id}/{image_id}",
        )

    def get_image(self, user_id: str, image_id: str) -> ImageRecord | None:
        rows = self._run(
            lambda: (
                self._images()
                .select("record")
                .eq("user_id", user_id)
                .eq("image_id", image_id)
                .limit(1)
            ),
            f"get image {user_id}/{image_id}",
        ).data
        return ImageRecord.model_validate(_record_json(rows[0])) if rows else None

    def list_images(
        self, user_id: str, *, status: ImageStatus | None, offset: int, limit: int
    ) -> tuple[list[ImageRecord], int]:
        def page_request(start: int, size: int) -> Any:
            request = self._images().select("record", count=CountMethod.exact)
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
            items.extend(ImageRecord.model_validate(_record_json(row)) for row in response.data)
            start += len(response.data)
            if not response.data or (total is not None and start >= total):
                break
        if total is None:
            total = self._count_images(user_id, status)
        return items, total

    def _count_images(self, user_id: str | None, status: ImageStatus | None) -> int:
        def request() -> Any:
            query = self._images().select("image_id", count=CountMethod.exact, head=True)
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
        """Every row of ``table`` (``columns`` only), ascending by ``key``, a page at a time."""
        last: dict[str, Any] | None = None
        while True:

            def request(after: dict[str, Any] | None = last) -> Any:
                query = self.connection.table(table).select(columns)
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

    def clear(self) -> None:
        # Supabase rejects a DELETE without a WHERE clause (pg-safeupdate): filter on the key.
        for table, column in ((OPERATIONS_TABLE, "operation_id"), (IMAGES_TABLE, "image_id")):
            self._run(partial(self._delete_all, table, column), f"clear {table}")

    def _delete_all(self, table: str, column: str) -> Any:
        return (
            self.connection.table(table)
            .delete(returning=ReturnMethod.minimal)
            .not_.is_(column, "null")
        )

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
    """Open the ``supabase`` catalog (the spec's factory), sharing the backend's connection when
    the store is on Supabase too."""
    options = CatalogOptions.from_url(url)
    if isinstance(blobs, SupabaseBlobStore) and blobs.connection.settings.api_url is not None:
        connection = blobs.connection.acquire()
        retry = retry_policy(options.deadline or blobs.retry.deadline)
    else:
        connection = SupabaseConnection(Settings.from_env(need_api=True), timeout=options.timeout)
        retry = retry_policy(options.deadline or retry_policy().deadline)
    catalog = SupabaseCatalog(connection, retry=retry, max_rows=options.max_rows)
    try:
        catalog.check_schema()
    except BaseException:
        catalog.close()
        raise
    return catalog
