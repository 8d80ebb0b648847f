"""Reading operations back from a catalog: checked filters, pages and their cursors.

A cursor is the ``(created_at, operation_id)`` of the last record of a page, so a page never
repeats or skips a record however many are saved meanwhile.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

from ._ids import check_id
from ._records import OperationRecord, OperationStatus, Page
from .exceptions import InvalidInput
from .plugin import Catalog, HistoryQuery

__all__ = ["history_page", "history_query", "iter_history"]

MAX_LIMIT = 1000


def history_query(
    *,
    user_id: str | None = None,
    operation_type: str | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> HistoryQuery:
    """The catalog query for ``Store.history``'s arguments (``limit`` + 1, to see a next page)."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be an integer from 1 to {MAX_LIMIT}")
    if status is not None and status not in {s.value for s in OperationStatus}:
        raise InvalidInput(f"status must be one of {[s.value for s in OperationStatus]}")
    if user_id is not None:
        check_id(user_id, "user_id")
    return HistoryQuery(
        user_id=user_id,
        operation_type=operation_type,
        status=status,
        since=_utc(since),
        until=_utc(until),
        limit=limit + 1,
        before=decode_cursor(cursor) if cursor else None,
    )


def history_page(catalog: Catalog, query: HistoryQuery) -> Page[OperationRecord]:
    """One page of ``query`` (made by ``history_query``), with the cursor of the next one."""
    limit = query.limit - 1
    rows = catalog.query_operations(query)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor(last.created_at, last.operation_id)
    return Page[OperationRecord](items=rows, next_cursor=next_cursor)


def iter_history(catalog: Catalog, query: HistoryQuery) -> Iterator[OperationRecord]:
    """Every record matching ``query``'s filters, newest first, fetched page by page."""
    while True:
        page = history_page(catalog, query)
        yield from page.items
        if page.next_cursor is None:
            return
        query = replace(query, before=decode_cursor(page.next_cursor))


def encode_cursor(created_at: datetime, operation_id: str) -> str:
    """The opaque cursor of a record's position."""
    raw = f"{created_at.isoformat()}|{operation_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The position a cursor names; ``InvalidInput`` for anything this module did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        when, operation_id = raw.split("|", 1)
        created = datetime.fromisoformat(when)
        check_id(operation_id, "cursor")
        if created.tzinfo is None:
            raise ValueError("a cursor's time has a zone")
        return created.astimezone(UTC), operation_id
    except (ValueError, UnicodeDecodeError, OverflowError) as exc:
        # OverflowError: a forged time at the end of the calendar, moved into UTC.
        raise InvalidInput("cursor is not one this store handed out") from exc


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise InvalidInput("since and until must be datetimes")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
