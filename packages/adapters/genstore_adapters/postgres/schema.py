"""The catalog's tables, created and migrated on first use.

``genstore_schema_version`` holds one row per applied migration. Migrating takes a transaction-level
advisory lock keyed by the schema name, so instances starting together queue up: the first applies
the migrations, the others find them done. An up-to-date schema costs one query and no lock.

Key columns use the "C" collation: ``(created_at, operation_id)`` then orders by code point, exactly
as Python (and the other catalogs) compare ids, whatever the database's locale.
"""

from __future__ import annotations

import hashlib
from typing import Any, LiteralString

import psycopg
from genstore.exceptions import ConfigurationError
from psycopg import sql

__all__ = ["LATEST_VERSION", "ensure_schema"]

_MIGRATIONS: tuple[tuple[LiteralString, ...], ...] = (
    # 1: the two tables, and one index per query shape. Status has two values and "succeeded"
    # is the bulk, so a succeeded filter walks the unfiltered index and drops few rows; the rare
    # "failed" rows get partial indexes, small and updated only when a failed record is written.
    (
        """CREATE TABLE {s}.genstore_operations (
            operation_id    text COLLATE "C" PRIMARY KEY,
            created_at      timestamptz NOT NULL,
            user_id         text COLLATE "C",
            operation_type  text COLLATE "C" NOT NULL,
            status          text COLLATE "C" NOT NULL,
            idempotency_key text COLLATE "C",
            record          text NOT NULL
        )""",
        """CREATE UNIQUE INDEX genstore_operations_idempotency_key
            ON {s}.genstore_operations (idempotency_key) WHERE idempotency_key IS NOT NULL""",
        """CREATE INDEX genstore_operations_newest
            ON {s}.genstore_operations (created_at DESC, operation_id DESC)""",
        """CREATE INDEX genstore_operations_user
            ON {s}.genstore_operations (user_id, created_at DESC, operation_id DESC)""",
        """CREATE INDEX genstore_operations_type
            ON {s}.genstore_operations (operation_type, created_at DESC, operation_id DESC)""",
        """CREATE INDEX genstore_operations_user_type
            ON {s}.genstore_operations
            (user_id, operation_type, created_at DESC, operation_id DESC)""",
        """CREATE INDEX genstore_operations_failed
            ON {s}.genstore_operations (created_at DESC, operation_id DESC)
            WHERE status = 'failed'""",
        """CREATE INDEX genstore_operations_failed_user
            ON {s}.genstore_operations (user_id, created_at DESC, operation_id DESC)
            WHERE status = 'failed'""",
        """CREATE INDEX genstore_operations_failed_type
            ON {s}.genstore_operations (operation_type, created_at DESC, operation_id DESC)
            WHERE status = 'failed'""",
        """CREATE INDEX genstore_operations_failed_user_type
            ON {s}.genstore_operations
            (user_id, operation_type, created_at DESC, operation_id DESC)
            WHERE status = 'failed'""",
        """CREATE TABLE {s}.genstore_images (
            user_id    text COLLATE "C" NOT NULL,
            image_id   text COLLATE "C" NOT NULL,
            status     text COLLATE "C" NOT NULL,
            created_at timestamptz NOT NULL,
            record     text NOT NULL,
            PRIMARY KEY (user_id, image_id)
        )""",
        """CREATE INDEX genstore_images_user
            ON {s}.genstore_images (user_id, created_at DESC, image_id DESC)""",
        """CREATE INDEX genstore_images_user_status
            ON {s}.genstore_images (user_id, status, created_at DESC, image_id DESC)""",
    ),
    # 2: rows carry the store they index, so stores sharing one catalog never see or touch each
    # other's rows; every key and index leads with it. Rows written before go to the store
    # that migrates the catalog (``ensure_schema``'s ``store``).
    (
        """ALTER TABLE {s}.genstore_operations
            ADD COLUMN store text COLLATE "C" NOT NULL DEFAULT ''""",
        """ALTER TABLE {s}.genstore_images
            ADD COLUMN store text COLLATE "C" NOT NULL DEFAULT ''""",
        "ALTER TABLE {s}.genstore_operations DROP CONSTRAINT genstore_operations_pkey",
        "ALTER TABLE {s}.genstore_operations ADD PRIMARY KEY (store, operation_id)",
        "ALTER TABLE {s}.genstore_images DROP CONSTRAINT genstore_images_pkey",
        "ALTER TABLE {s}.genstore_images ADD PRIMARY KEY (store, user_id, image_id)",
        "DROP INDEX {s}.genstore_operations_idempotency_key",
        """CREATE UNIQUE INDEX genstore_operations_idempotency_key
            ON {s}.genstore_operations (store, idempotency_key)
            WHERE idempotency_key IS NOT NULL""",
        "DROP INDEX {s}.genstore_operations_newest",
        """CREATE INDEX genstore_operations_newest
            ON {s}.genstore_operations (store, created_at DESC, operation_id DESC)""",
        "DROP INDEX {s}.genstore_operations_user",
        """CREATE INDEX genstore_operations_user
            ON {s}.genstore_operations (store, user_id, created_at DESC, operation_id DESC)""",
        "DROP INDEX {s}.genstore_operations_type",
        """CREATE INDEX genstore_operations_type
            ON {s}.genstore_operations
            (store, operation_type, created_at DESC, operation_id DESC)""",
        "DROP INDEX {s}.genstore_operations_user_type",
        """CREATE INDEX genstore_operations_user_type
            ON {s}.genstore_operations
            (store, user_id, operation_type, created_at DESC, operation_id DESC)""",
        "DROP INDEX {s}.genstore_operations_failed",
        """CREATE INDEX genstore_operations_failed
            ON {s}.genstore_operations (store, created_at DESC, operation_id DESC)
            WHERE status = 'failed'""",
        "DROP INDEX {s}.genstore_operations_failed_user",
        """CREATE INDEX genstore_operations_failed_user
            ON {s}.genstore_operations (store, user_id, created_at DESC, operation_id DESC)
            WHERE status = 'failed'""",
        "DROP INDEX {s}.genstore_operations_failed_type",
        """CREATE INDEX genstore_operations_failed_type
            ON {s}.genstore_operations
            (store, operation_type, created_at DESC, operation_id DESC)
            WHERE status = 'failed'""",
        "DROP INDEX {s}.genstore_operations_failed_user_type",
        """CREATE INDEX genstore_operations_failed_user_type
            ON {s}.genstore_operations
            (store, user_id, operation_type, created_at DESC, operation_id DESC)
            WHERE status = 'failed'""",
        "DROP INDEX {s}.genstore_images_user",
        """CREATE INDEX genstore_images_user
            ON {s}.genstore_images (store, user_id, created_at DESC, image_id DESC)""",
        "DROP INDEX {s}.genstore_images_user_status",
        """CREATE INDEX genstore_images_user_status
            ON {s}.genstore_images (store, user_id, status, created_at DESC, image_id DESC)""",
    ),
)

LATEST_VERSION = len(_MIGRATIONS)
"""The schema version this code reads and writes."""


def _lock_key(schema: str) -> int:
    digest = hashlib.blake2b(f"genstore-catalog:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _current_version(conn: psycopg.Connection[Any], schema: str) -> int:
    table = sql.Identifier(schema, "genstore_schema_version")
    row = conn.execute("SELECT to_regclass(%s)", (table.as_string(conn),)).fetchone()
    if row is None or row[0] is None:
        return 0
    query = sql.SQL("SELECT coalesce(max(version), 0) FROM {}").format(table)
    found = conn.execute(query).fetchone()
    return int(found[0]) if found else 0


def _check_not_newer(version: int, schema: str) -> None:
    if version > LATEST_VERSION:
        raise ConfigurationError(
            f"the PostgreSQL catalog in schema {schema!r} is at version {version}, newer than "
            f"this genstore understands ({LATEST_VERSION}): upgrade genstore"
        )


def ensure_schema(conn: psycopg.Connection[Any], schema: str, store: str = "") -> int:
    """Create or migrate the catalog tables in ``schema``; return the version now in place.

    A version-1 catalog indexed one store in practice: its rows go to ``store``, the store
    migrating it, in the migration's transaction. Rows of the unnamed store (``''``) written
    since are never claimed by a store opening later. Safe to call from many processes at once.
    Raises ``ConfigurationError`` if the schema is newer than this code.
    """
    with conn.transaction():
        version = _current_version(conn, schema)
        if version >= LATEST_VERSION:
            _check_not_newer(version, schema)
            return version
        # Migrations may build indexes on big tables: no statement timeout for them.
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(schema, "genstore_schema_version"))
        )
        version = _current_version(conn, schema)
        _check_not_newer(version, schema)
        for number in range(version + 1, LATEST_VERSION + 1):
            for statement in _MIGRATIONS[number - 1]:
                conn.execute(sql.SQL(statement).format(s=sql.Identifier(schema)))
            conn.execute(
                sql.SQL("INSERT INTO {} (version) VALUES (%s)").format(
                    sql.Identifier(schema, "genstore_schema_version")
                ),
                (number,),
            )
        if 1 <= version < 2 and store:
            for table in ("genstore_operations", "genstore_images"):
                conn.execute(
                    sql.SQL("UPDATE {} SET store = %s WHERE store = ''").format(
                        sql.Identifier(schema, table)
                    ),
                    (store,),
                )
        return LATEST_VERSION
