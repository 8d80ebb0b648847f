"""Atomic claims in the PostgreSQL catalog (``Catalog.claim``): ``INSERT ... ON CONFLICT DO
NOTHING`` on a primary key, so racing processes and hosts agree on one winner.

The ``genstore_claims`` table is created on first use under the catalog's migration lock (no schema
version needed). ``clear`` and ``reindex`` leave it alone: a claim is not a record.
"""

from __future__ import annotations

from typing import Any

import psycopg
from genstore.exceptions import BackendUnavailable
from psycopg import sql

from .schema import _lock_key as lock_key  # the catalog's migration lock, shared on purpose

__all__ = ["claim", "ensure_claims_table"]


def ensure_claims_table(conn: psycopg.Connection[Any], schema: str) -> None:
    """Create the claims table if missing (concurrent callers queue on the schema's lock)."""
    table = sql.Identifier(schema, "genstore_claims")
    with conn.transaction():
        found = conn.execute("SELECT to_regclass(%s)", (table.as_string(conn),)).fetchone()
        if found is not None and found[0] is not None:
            return
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema),))
        conn.execute(
            sql.SQL(
                'CREATE TABLE IF NOT EXISTS {} (store text COLLATE "C" NOT NULL,'
                ' key text COLLATE "C" NOT NULL, value text NOT NULL, PRIMARY KEY (store, key))'
            ).format(table)
        )


def claim(
    conn: psycopg.Connection[Any], schema: str, store: str, key: str, value: str
) -> str | None:
    """Record ``value`` under ``(store, key)`` unless taken; None if recorded, else the holder's."""
    table = sql.Identifier(schema, "genstore_claims")
    inserted = conn.execute(
        sql.SQL(
            "INSERT INTO {} (store, key, value) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
            " RETURNING value"
        ).format(table),
        (store, key, value),
    ).fetchone()
    if inserted is not None:
        return None
    row = conn.execute(
        sql.SQL("SELECT value FROM {} WHERE store = %s AND key = %s").format(table), (store, key)
    ).fetchone()
    if row is None:  # claims are never deleted: a conflict means a row
        raise BackendUnavailable(f"claim {key!r} conflicted but its row is gone")
    return str(row[0])
