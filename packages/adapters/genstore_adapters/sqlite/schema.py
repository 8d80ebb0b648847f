"""The SQLite catalog's tables, created or migrated when the catalog opens.

``PRAGMA user_version`` says which version a file is at. Version 2 gives every row the store it
indexes (``store``, leading every key and index), so stores sharing one catalog file never see or
touch each other's rows. A version-1 file is rebuilt in place in one transaction, its rows kept
to the store that migrates it (version-1 files held one store's rows). Rows of the unnamed store
(``''``: a catalog inside its own store's folder) are never claimed by another store later.
"""

from __future__ import annotations

import sqlite3

from genstore.exceptions import ConfigurationError

__all__ = ["LATEST_VERSION", "ensure_schema"]

LATEST_VERSION = 2

_TABLES = (
    """CREATE TABLE operations (
        store TEXT NOT NULL DEFAULT '',
        operation_id TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        user_id TEXT,
        operation_type TEXT NOT NULL,
        status TEXT NOT NULL,
        idempotency_key TEXT,
        record TEXT NOT NULL,
        PRIMARY KEY (store, operation_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX operations_time ON operations (store, created_us, operation_id)",
    "CREATE INDEX operations_user ON operations (store, user_id, created_us, operation_id)",
    """CREATE INDEX operations_user_type
        ON operations (store, user_id, operation_type, created_us, operation_id)""",
    """CREATE INDEX operations_type
        ON operations (store, operation_type, created_us, operation_id)""",
    """CREATE UNIQUE INDEX operations_idempotency ON operations (store, idempotency_key)
        WHERE idempotency_key IS NOT NULL""",
    """CREATE TABLE images (
        store TEXT NOT NULL DEFAULT '',
        user_id TEXT NOT NULL,
        image_id TEXT NOT NULL,
        status TEXT NOT NULL,
        created_us INTEGER NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (store, user_id, image_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX images_user ON images (store, user_id, created_us, image_id)",
    "CREATE INDEX images_user_status ON images (store, user_id, status, created_us, image_id)",
)
_VERSION_1_INDEXES = (
    "operations_time",
    "operations_user",
    "operations_user_type",
    "operations_type",
    "operations_idempotency",
    "images_user",
    "images_user_status",
)


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def ensure_schema(conn: sqlite3.Connection, store: str = "") -> None:
    """Create the tables, or migrate an older file (its rows given to ``store``); safe with
    several processes opening it."""
    if _version(conn) == LATEST_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")  # one migrator; the others wait, then find it done
    try:
        version = _version(conn)
        if version > LATEST_VERSION:
            raise ConfigurationError(
                f"the SQLite catalog is at version {version}, newer than this genstore "
                f"understands ({LATEST_VERSION}): upgrade genstore"
            )
        if version < LATEST_VERSION:
            _migrate(conn, had_tables=_has_table(conn, "operations"), store=store)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


def _migrate(conn: sqlite3.Connection, *, had_tables: bool, store: str) -> None:
    if had_tables:  # version 1: the same columns without the store
        conn.execute("ALTER TABLE operations RENAME TO operations_v1")
        conn.execute("ALTER TABLE images RENAME TO images_v1")
        for index in _VERSION_1_INDEXES:
            conn.execute(f"DROP INDEX IF EXISTS {index}")
    for statement in _TABLES:
        conn.execute(statement)
    if had_tables:
        # A version-1 file indexed one store: the one migrating it now.
        conn.execute(
            "INSERT INTO operations SELECT ?, operation_id, created_us, user_id, operation_type,"
            " status, idempotency_key, record FROM operations_v1",
            (store,),
        )
        conn.execute(
            "INSERT INTO images SELECT ?, user_id, image_id, status, created_us, record"
            " FROM images_v1",
            (store,),
        )
        conn.execute("DROP TABLE operations_v1")
        conn.execute("DROP TABLE images_v1")
    conn.execute(f"PRAGMA user_version = {LATEST_VERSION}")
