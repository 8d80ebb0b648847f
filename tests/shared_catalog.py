"""One scenario every shared catalog runs: two stores on one catalog never read or touch each
other's rows through history, images, stats, verify, verify --fix and reindex.

The catalog test files call ``check_stores_stay_apart`` with two open stores and two callables
reading and damaging rows straight in the database (what each catalog's SQL looks like).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import genstore
from genstore import _keys
from helpers import png_bytes

Rows = Callable[[str], list[tuple[str, ...]]]
"""``rows(store)``: every row (operations and images) of that store, as stored, sorted."""
Corrupt = Callable[[str, str], None]
"""``corrupt(store, operation_id)``: replace that operation row's record with garbage."""

NO_GRACE = timedelta(0)


def _history(store: genstore.Store) -> list[str]:
    return [r.operation_id for r in store.history(limit=100).items]


def _save(store: genstore.Store, n: int, key: str) -> list[str]:
    saved = [store.save_complete_operation(operation_type="t", idempotency_key=key)]
    saved += [store.save_complete_operation(operation_type="t") for _ in range(n - 1)]
    store.images.create(user_id="u1", prompt="p", image_data=png_bytes())
    return [s.operation_id for s in saved][::-1]


def check_stores_stay_apart(
    a: genstore.Store, b: genstore.Store, rows: Rows, corrupt: Corrupt
) -> None:
    """``a`` and ``b`` share one catalog; run everything on ``a`` and prove ``b`` untouched."""
    mine = _save(a, 3, key="same-key")
    theirs = _save(b, 3, key="same-key")  # the same idempotency key in another store: no clash
    # b's own trouble, which a must neither report nor repair: a row whose record is gone,
    # a row that does not parse.
    b.blobs.delete(_keys.operation_record_key(theirs[0]))
    corrupt(b.blobs.url, theirs[1])
    before = rows(b.blobs.url)
    assert _history(a) == mine
    assert [i.user_id for i in a.images.list(user_id="u1").items] == ["u1"]
    assert (a.stats()["operations"], a.stats()["images"]) == (3, 1)
    assert a.verify(grace=NO_GRACE).ok
    assert a.verify(fix=True, grace=NO_GRACE).ok
    report = a.reindex()
    assert (report.operations, report.images, report.corrupt) == (3, 1, [])
    assert _history(a) == mine
    assert rows(b.blobs.url) == before
    found = b.verify(grace=NO_GRACE)
    assert (found.stale_index, found.corrupt_index) == ([theirs[0]], [theirs[1]])
    assert found.unindexed == []
    kept = rows(a.blobs.url)
    b.verify(fix=True, grace=NO_GRACE)
    assert _history(b) == theirs[1:]
    assert rows(a.blobs.url) == kept
    assert a.verify(grace=NO_GRACE).ok and b.verify(grace=NO_GRACE).ok
