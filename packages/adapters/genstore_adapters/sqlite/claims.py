"""Atomic claims in the SQLite catalog (``Catalog.claim``): insert-if-absent on a primary key.

The ``claims`` table is created on first use (``IF NOT EXISTS``: no schema version needed, and
older files gain it in place). ``clear`` and ``reindex`` leave it alone: a claim is not a record.
"""

from __future__ import annotations

import sqlite3

__all__ = ["claim"]

_CREATE = """CREATE TABLE IF NOT EXISTS claims (
    store TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (store, key)
) WITHOUT ROWID"""


def claim(conn: sqlite3.Connection, store: str, key: str, value: str) -> str | None:
    """Record ``value`` under ``(store, key)`` unless taken; None if recorded, else the holder's."""
    conn.execute(_CREATE)
    inserted = conn.execute(
        "INSERT INTO claims (store, key, value) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        (store, key, value),
    )
    if inserted.rowcount == 1:
        return None
    row = conn.execute(
        "SELECT value FROM claims WHERE store = ? AND key = ?", (store, key)
    ).fetchone()
    return str(row[0])
