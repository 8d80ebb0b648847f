"""A catalog file that is not a database: moved aside, recreated empty, and marked for a reindex.

The catalog is only an index of the JSON records, so a file SQLite refuses (garbage bytes, a
truncated copy, a header overwritten) never stops the store from opening: it is renamed to
``<name>.corrupt-<UTC time>`` (its ``-wal``/``-shm`` companions too) for a human to look at, and a
new empty catalog takes its place. The new file records why (table ``genstore_recreated``) and which
stores have been refilled since (``genstore_rebuilt``, one row per store, written by ``clear``,
which ``reindex`` and ``verify --fix`` call before refilling): until then a store's history and
image pages raise ``CorruptRecord`` saying so, rather than show a partial index as if it were
whole. Saving goes on meanwhile, and single records are still found (from their JSON record).

Opening never reindexes by itself: a reindex reads every record of the store (minutes on a big
object store), which must not block opening, and an operator should learn that the file was
corrupt. ``genstore reindex`` or ``genstore verify --fix`` refills it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "REBUILT_TABLE",
    "is_broken_file",
    "mark_rebuilt",
    "move_aside",
    "record_recreation",
    "reindex_reason",
]

_MAGIC = b"SQLite format 3\x00"
_BROKEN_CODES = frozenset({sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT})
REBUILT_TABLE = "genstore_rebuilt"


def is_broken_file(exc: BaseException) -> bool:
    """Whether ``exc`` says the file itself is not (or no longer) a usable database."""
    return isinstance(exc, sqlite3.DatabaseError) and (
        getattr(exc, "sqlite_errorcode", None) in _BROKEN_CODES
        or "not a database" in str(exc)
        or "malformed" in str(exc)
    )


def _looks_broken(path: Path) -> bool:
    """Check the header again right before moving: another process may have replaced the file
    with a good one meanwhile (an empty file is a valid, empty database)."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(_MAGIC))
    except FileNotFoundError:
        return False
    if not head:
        return False
    return head != _MAGIC or _unreadable(path)


def _unreadable(path: Path) -> bool:
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA quick_check(1)").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return is_broken_file(exc)
    return False


def move_aside(path: Path) -> Path | None:
    """Rename the broken ``path`` (and its WAL and shared-memory files) to
    ``<name>.corrupt-<UTC time>``; return the new name, or None if the file is already fine or gone
    (another process moved it first)."""
    if not _looks_broken(path):
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        os.rename(path, target)
    except FileNotFoundError:
        return None
    for suffix in ("-wal", "-shm"):
        companion = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            os.rename(companion, target.with_name(target.name + suffix))
    return target


def record_recreation(conn: sqlite3.Connection, moved_to: Path) -> None:
    """Note in the new catalog that it replaced a broken one and needs refilling."""
    conn.execute("CREATE TABLE IF NOT EXISTS genstore_recreated (reason TEXT NOT NULL)")
    conn.execute(f"CREATE TABLE IF NOT EXISTS {REBUILT_TABLE} (store TEXT PRIMARY KEY)")
    reason = (
        f"the catalog file was not a database: it was moved to {moved_to} and recreated empty; "
        "run `genstore reindex` (or `genstore verify --fix`) to rebuild it"
    )
    conn.execute("INSERT INTO genstore_recreated VALUES (?)", (reason,))


def reindex_reason(conn: sqlite3.Connection, store: str) -> str | None:
    """Why ``store``'s rows must be rebuilt (the file was recreated and it has not been refilled
    since), or None."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'genstore_recreated'"
    ).fetchone()
    if exists is None:
        return None
    row = conn.execute(
        f"SELECT reason FROM genstore_recreated WHERE NOT EXISTS"  # noqa: S608 - a constant
        f" (SELECT 1 FROM {REBUILT_TABLE} WHERE store = ?) LIMIT 1",
        (store,),
    ).fetchone()
    return None if row is None else str(row[0])


def mark_rebuilt(conn: sqlite3.Connection, store: str) -> None:
    """``store`` is being refilled (its rows were just cleared, inside the caller's transaction)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (REBUILT_TABLE,)
    ).fetchone()
    if exists is not None:
        conn.execute(f"INSERT OR IGNORE INTO {REBUILT_TABLE} VALUES (?)", (store,))  # noqa: S608
