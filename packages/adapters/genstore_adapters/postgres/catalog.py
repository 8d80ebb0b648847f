"""``PostgresCatalog``: the ``Catalog`` interface on PostgreSQL, through a psycopg pool."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Self, TypeVar

import psycopg
from genstore._records import ImageRecord, ImageStatus, OperationRecord
from genstore.exceptions import AlreadyExists, BackendUnavailable, InvalidInput
from genstore.plugin import BlobStore, Catalog, CatalogStats, HistoryQuery, StoreURL
from psycopg import sql
from psycopg.rows import TupleRow
from psycopg_pool import ConnectionPool, PoolTimeout

from .._rows import load_image, load_operation, parses
from . import claims
from .config import PostgresSettings, settings_from_url
from .errors import is_transient, retrying
from .schema import ensure_schema

__all__ = ["PostgresCatalog", "open_postgres"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ID_BATCH = 5000
_NEWEST_OPERATIONS = sql.SQL(" ORDER BY created_at DESC, operation_id DESC LIMIT %s")


class _ConnectErrors:
    """Why the last connection attempt failed: the pool itself only reports a timeout."""

    def __init__(self) -> None:
        self.last: psycopg.Error | None = None

    def lasting(self) -> bool:
        """Whether the last attempt was refused for a reason waiting cannot cure."""
        last = self.last
        return last is not None and not is_transient(last)


class _Connection(psycopg.Connection[TupleRow]):
    """A connection that tells its pool's ``_ConnectErrors`` why it could not connect."""

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
        errors: _ConnectErrors | None = kwargs.pop("genstore_errors", None)
        try:
            conn = super().connect(conninfo, **kwargs)
        except psycopg.Error as exc:
            if errors is not None:
                errors.last = exc
            raise
        if errors is not None:
            errors.last = None
        return conn


def _utc(value: datetime) -> datetime:
    # Records treat naive datetimes as UTC; PostgreSQL would use the session's time zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


class PostgresCatalog(Catalog):
    """Records indexed in PostgreSQL; many processes and hosts may share one catalog.

    ``url``: ``postgresql://user:password@host:5432/db`` plus libpq options, and genstore's own:
    ``schema`` (default ``public``; created if missing, so tests and stores can share a database),
    ``deadline`` (seconds a call retries transient failures, default 5), ``pool_min``/``pool_max``
    (connections). Keyword arguments override the URL's options.

    Opening never blocks. The first call connects once directly, so a refusal no retry can cure
    (no such database or role, a wrong password, no CONNECT privilege) fails at once as
    ``ConfigurationError`` or ``AuthError``; then the pool opens and connects in the background,
    and the tables are created or migrated. The same check runs again whenever the pool's last
    connection attempt was refused that way. Every call retries connection loss, server restarts, terminated
    backends, serialization failures and timeouts until its deadline, then raises
    ``BackendUnavailable``; no psycopg error reaches the caller.
    """

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        deadline: float | None = None,
        pool_min: int | None = None,
        pool_max: int | None = None,
        store: str = "",
    ) -> None:
        self.store = store
        """The store whose rows this catalog reads and writes (its URL); others' stay apart."""
        self.settings: PostgresSettings = settings_from_url(
            url, schema=schema, deadline=deadline, pool_min=pool_min, pool_max=pool_max
        )
        self.url = self.settings.display_url
        if self.settings.schema != "public":
            self.url += f"?schema={self.settings.schema}"
        self._where = f"the PostgreSQL catalog {self.url}"
        self._ready = False
        self._claims_ready = False
        self._ready_lock = threading.Lock()
        self._closed = False
        self._connect_errors = _ConnectErrors()
        s = sql.Identifier(self.settings.schema)
        self._operations = sql.SQL("{}.genstore_operations").format(s)
        self._images = sql.SQL("{}.genstore_images").format(s)
        self._pool: ConnectionPool[_Connection] = ConnectionPool(
            self.settings.conninfo,
            connection_class=_Connection,
            kwargs={"autocommit": True, "genstore_errors": self._connect_errors},
            min_size=self.settings.pool_min,
            max_size=self.settings.pool_max,
            open=False,
            configure=self._configure,
            name=f"genstore:{self.settings.schema}",
            timeout=self.settings.deadline,
            # After giving up, the pool reconnects on the next request instead of sleeping
            # through a long backoff while the server is already back.
            reconnect_timeout=max(self.settings.deadline, 1.0),
        )
        self._pool_open = False
        self._open_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresCatalog({self.url!r})"

    # -- plumbing -------------------------------------------------------------------------------

    def _configure(self, conn: _Connection) -> None:
        # A statement stuck behind a lock must not outlive the call's deadline.
        timeout_ms = max(int(self.settings.deadline * 1000), 1)
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{timeout_ms}ms",))

    def _explain(self, exc: psycopg.Error) -> str:
        last = self._connect_errors.last
        if last is not None and (isinstance(exc, PoolTimeout) or exc is last):
            return f"cannot connect to {self.settings.display_url}: {' '.join(str(last).split())}"
        return str(exc)

    def _call(self, what: str, work: Callable[[_Connection], T]) -> T:
        """Run ``work`` on a pooled connection (schema created first if needed), with retries."""
        if self._closed:
            raise BackendUnavailable(f"{what}: the PostgreSQL catalog {self.url} is closed")

        def attempt(seconds_left: float) -> T:
            self._open_pool(seconds_left)
            with self._pool.connection(timeout=seconds_left) as conn:
                try:
                    if not self._ready:
                        with self._ready_lock:
                            if not self._ready:
                                ensure_schema(conn, self.settings.schema, self.store)
                                self._ready = True
                    return work(conn)
                except psycopg.OperationalError:
                    if conn.broken:
                        # The server dropped this connection (restart, pg_terminate_backend): the
                        # idle ones are likely dead too, so test them now rather than spend one
                        # failed attempt on each.
                        self._pool.check()
                    raise

        return retrying(attempt, what=what, deadline=self.settings.deadline, explain=self._explain)

    def _open_pool(self, seconds_left: float) -> None:
        """Connect once directly (raising why not), then open the pool, on first use and after
        the pool was refused for good: waiting on the pool would only say "timeout"."""
        if self._pool_open and not self._connect_errors.lasting():
            return
        with self._open_lock:
            if self._pool_open and not self._connect_errors.lasting():
                return
            probe = _Connection.connect(
                self.settings.conninfo,
                autocommit=True,
                # libpq's floor is 2 s: a silent host costs at most that past a shorter deadline.
                connect_timeout=max(2, math.ceil(seconds_left)),
                genstore_errors=self._connect_errors,
            )
            probe.close()
            self._connect_errors.last = None
            if not self._pool_open:
                self._pool.open(wait=False)
                self._pool_open = True

    def _fetch(self, what: str, query: sql.Composed, params: Sequence[Any] = ()) -> list[TupleRow]:
        return self._call(what, lambda c: c.execute(query, params).fetchall())

    # -- operations -----------------------------------------------------------------------------

    def upsert_operation(self, record: OperationRecord) -> None:
        params = self._operation_row(record)

        def work(conn: _Connection) -> None:
            try:
                conn.execute(self._upsert_operation, params)
            except psycopg.errors.UniqueViolation as exc:
                # The only unique constraint ON CONFLICT leaves to fire is the idempotency key.
                raise AlreadyExists(
                    f"another operation already has idempotency key {record.idempotency_key!r}"
                ) from exc

        self._call(f"upsert operation {record.operation_id}", work)

    def upsert_operations(self, records: Sequence[OperationRecord]) -> None:
        """All the rows in one transaction (one round trip per row, one commit)."""
        rows = [self._operation_row(record) for record in records]

        def work(conn: _Connection) -> None:
            try:
                with conn.transaction(), conn.cursor() as cursor:
                    cursor.executemany(self._upsert_operation, rows)
            except psycopg.errors.UniqueViolation as exc:
                raise AlreadyExists(
                    "another operation already has the idempotency key of one of "
                    f"{len(rows)} records"
                ) from exc

        if rows:
            self._call(f"upsert {len(rows)} operations", work)

    @property
    def _upsert_operation(self) -> sql.Composed:
        return sql.SQL(
            "INSERT INTO {} (store, operation_id, created_at, user_id, operation_type, status,"
            " idempotency_key, record) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (store, operation_id) DO UPDATE SET created_at = excluded.created_at,"
            " user_id = excluded.user_id, operation_type = excluded.operation_type,"
            " status = excluded.status, idempotency_key = excluded.idempotency_key,"
            " record = excluded.record"
        ).format(self._operations)

    def _operation_row(self, record: OperationRecord) -> tuple[Any, ...]:
        return (
            self.store,
            record.operation_id,
            record.created_at,
            record.user_id,
            str(record.operation_type),
            str(record.status),
            record.idempotency_key,
            record.model_dump_json(),
        )

    def delete_operation(self, operation_id: str) -> None:
        query = sql.SQL("DELETE FROM {} WHERE store = %s AND operation_id = %s").format(
            self._operations
        )
        key = (self.store, operation_id)
        self._call(f"delete operation {operation_id}", lambda c: c.execute(query, key))

    def get_operation(self, operation_id: str) -> OperationRecord | None:
        query = sql.SQL("SELECT record FROM {} WHERE store = %s AND operation_id = %s").format(
            self._operations
        )
        rows = self._fetch(f"get operation {operation_id}", query, (self.store, operation_id))
        if not rows:
            return None
        return load_operation(rows[0][0], operation_id=operation_id, where=self._where)

    def query_operations(self, query: HistoryQuery) -> list[OperationRecord]:
        if query.limit < 0:
            raise InvalidInput(f"limit must not be negative, not {query.limit}")
        if query.limit == 0:
            return []
        where: list[sql.Composable] = [sql.SQL("store = %s")]
        params: list[Any] = [self.store]
        for column, value in (
            ("user_id", query.user_id),
            ("operation_type", query.operation_type),
        ):
            if value is not None:
                where.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(str(value))
        if query.status is not None:
            # A literal, not a parameter: the planner picks the partial "failed" indexes only
            # when it sees the value, and generic plans of prepared statements would not.
            where.append(sql.SQL("status = {}").format(sql.Literal(str(query.status))))
        if query.since is not None:
            where.append(sql.SQL("created_at >= %s"))
            params.append(_utc(query.since))
        if query.until is not None:
            where.append(sql.SQL("created_at < %s"))
            params.append(_utc(query.until))
        if query.before is not None:
            where.append(sql.SQL("(created_at, operation_id) < (%s, %s)"))
            params.extend((_utc(query.before[0]), query.before[1]))
        params.append(query.limit)
        statement = sql.SQL("SELECT operation_id, record FROM {} WHERE ").format(self._operations)
        statement += sql.SQL(" AND ").join(where) + _NEWEST_OPERATIONS
        rows = self._fetch("query history", statement, params)
        return [load_operation(r[1], operation_id=r[0], where=self._where) for r in rows]

    def operation_ids(self) -> Iterator[str]:
        # Keyset batches, each its own retried call: no connection is held while the caller
        # iterates, and a lost connection costs one batch, not the walk.
        query = sql.SQL(
            "SELECT operation_id FROM {} WHERE store = %s AND operation_id > %s"
            " ORDER BY operation_id LIMIT %s"
        ).format(self._operations)
        after = ""  # sorts before every id in the "C" collation
        while True:
            rows = self._fetch("list operation ids", query, (self.store, after, _ID_BATCH))
            yield from (row[0] for row in rows)
            if len(rows) < _ID_BATCH:
                return
            after = rows[-1][0]

    # -- images ---------------------------------------------------------------------------------

    def upsert_image(self, record: ImageRecord) -> None:
        query = sql.SQL(
            "INSERT INTO {} (store, user_id, image_id, status, created_at, record)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (store, user_id, image_id) DO UPDATE SET"
            " status = excluded.status, created_at = excluded.created_at, record = excluded.record"
        ).format(self._images)
        params = (
            self.store,
            record.user_id,
            record.image_id,
            str(record.status),
            record.created_at,
            record.model_dump_json(),
        )
        self._call(f"upsert image {record.image_id}", lambda c: c.execute(query, params))

    def delete_image(self, user_id: str, image_id: str) -> None:
        query = sql.SQL(
            "DELETE FROM {} WHERE store = %s AND user_id = %s AND image_id = %s"
        ).format(self._images)
        key = (self.store, user_id, image_id)
        self._call(f"delete image {image_id}", lambda c: c.execute(query, key))

    def get_image(self, user_id: str, image_id: str) -> ImageRecord | None:
        query = sql.SQL(
            "SELECT record FROM {} WHERE store = %s AND user_id = %s AND image_id = %s"
        ).format(self._images)
        rows = self._fetch(f"get image {image_id}", query, (self.store, user_id, image_id))
        if not rows:
            return None
        return load_image(rows[0][0], user_id=user_id, image_id=image_id, where=self._where)

    def list_images(
        self, user_id: str, *, status: ImageStatus | None, offset: int, limit: int
    ) -> tuple[list[ImageRecord], int]:
        if offset < 0 or limit < 0:
            raise InvalidInput(f"offset and limit must not be negative, not {offset}, {limit}")
        match: sql.Composable = sql.SQL("store = %s AND user_id = %s")
        params: list[Any] = [self.store, user_id]
        if status is not None:
            match = sql.SQL("store = %s AND user_id = %s AND status = %s")
            params.append(str(status))
        # Total and page in one round trip; the ARRAY keeps the page's order.
        query = sql.SQL(
            "SELECT (SELECT count(*) FROM {t} WHERE {m}), ARRAY(SELECT ARRAY[image_id, record] FROM {t} WHERE {m}"
            " ORDER BY created_at DESC, image_id DESC LIMIT %s OFFSET %s)"
        ).format(t=self._images, m=match)
        ((total, page),) = self._fetch(
            f"list images of {user_id}", query, [*params, *params, limit, offset]
        )
        images = [
            load_image(record, user_id=user_id, image_id=image_id, where=self._where)
            for image_id, record in page
        ]
        return images, int(total)

    def image_ids(self) -> Iterator[tuple[str, str]]:
        query = sql.SQL(
            "SELECT user_id, image_id FROM {} WHERE store = %s AND (user_id, image_id) > (%s, %s)"
            " ORDER BY user_id, image_id LIMIT %s"
        ).format(self._images)
        after = ("", "")
        while True:
            rows = self._fetch("list image ids", query, (self.store, *after, _ID_BATCH))
            yield from ((row[0], row[1]) for row in rows)
            if len(rows) < _ID_BATCH:
                return
            after = (rows[-1][0], rows[-1][1])

    # -- maintenance ----------------------------------------------------------------------------

    def unreadable_rows(self) -> Iterator[str]:
        """This store's rows that do not parse, read in keyset batches of ``_ID_BATCH``."""
        ops = sql.SQL(
            "SELECT operation_id, record FROM {} WHERE store = %s AND operation_id > %s"
            " ORDER BY operation_id LIMIT %s"
        ).format(self._operations)
        after = ""
        while True:
            rows = self._fetch("scan operation rows", ops, (self.store, after, _ID_BATCH))
            yield from (op_id for op_id, record in rows if not parses(OperationRecord, record))
            if len(rows) < _ID_BATCH:
                break
            after = rows[-1][0]
        imgs = sql.SQL(
            "SELECT user_id, image_id, record FROM {} WHERE store = %s"
            " AND (user_id, image_id) > (%s, %s) ORDER BY user_id, image_id LIMIT %s"
        ).format(self._images)
        last = ("", "")
        while True:
            rows = self._fetch("scan image rows", imgs, (self.store, *last, _ID_BATCH))
            yield from (f"{u}/{i}" for u, i, record in rows if not parses(ImageRecord, record))
            if len(rows) < _ID_BATCH:
                return
            last = (rows[-1][0], rows[-1][1])

    def clear(self) -> None:
        # Only this store's rows: another store sharing the catalog keeps its own.
        operations = sql.SQL("DELETE FROM {} WHERE store = %s").format(self._operations)
        images = sql.SQL("DELETE FROM {} WHERE store = %s").format(self._images)

        def work(conn: _Connection) -> None:
            with conn.transaction():
                conn.execute(operations, (self.store,))
                conn.execute(images, (self.store,))

        self._call("clear the catalog", work)

    def stats(self) -> CatalogStats:
        by_pair = sql.SQL(
            "SELECT operation_type, status, count(*) FROM {} WHERE store = %s"
            " GROUP BY operation_type, status"
        ).format(self._operations)
        images = sql.SQL("SELECT count(*) FROM {} WHERE store = %s").format(self._images)

        def work(conn: _Connection) -> tuple[list[TupleRow], int]:
            pairs = conn.execute(by_pair, (self.store,)).fetchall()
            count = conn.execute(images, (self.store,)).fetchone()
            return pairs, int(count[0]) if count else 0

        pairs, image_count = self._call("catalog stats", work)
        stats = CatalogStats(images=image_count)
        for operation_type, status, count in pairs:
            stats.operations += count
            stats.by_type[operation_type] = stats.by_type.get(operation_type, 0) + count
            stats.by_status[status] = stats.by_status.get(status, 0) + count
        return stats

    # -- claims (genstore_adapters.postgres.claims) -----------------------------------------------

    can_claim = True

    def claim(self, key: str, value: str) -> str | None:
        schema = self.settings.schema

        def work(conn: _Connection) -> str | None:
            if not self._claims_ready:
                claims.ensure_claims_table(conn, schema)
                self._claims_ready = True
            return claims.claim(conn, schema, self.store, key, value)

        return self._call(f"claim {key[:80]!r}", work)

    def close(self) -> None:
        """Close the pool's connections; later calls raise ``BackendUnavailable``."""
        if not self._closed:
            self._closed = True
            self._pool.close()


def open_postgres(url: StoreURL, blobs: BlobStore) -> PostgresCatalog:
    """``postgresql://`` and ``postgres://`` catalog URLs (the spec's factory)."""
    return PostgresCatalog(url.raw, store=blobs.url)
