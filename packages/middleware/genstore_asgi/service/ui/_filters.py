"""The operations page's filters: parsed from the query string, never raising, errors listed."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from genstore import OperationStatus

__all__ = ["HistoryFilters", "matches_search", "parse_filters"]

MAX_TEXT = 200
"""Longer type or search values are cut: no real prompt search needs more."""


@dataclass(frozen=True, slots=True)
class HistoryFilters:
    """What the user asked the operations page for; ``errors`` says what was ignored and why."""

    operation_type: str = ""
    status: str = ""
    since: date | None = None
    until: date | None = None
    """Inclusive: operations of that whole day are shown."""
    q: str = ""
    cursor: str = ""
    errors: tuple[str, ...] = field(default=())

    def store_kwargs(self) -> dict[str, Any]:
        """The filters as ``Store.history`` keyword arguments (dates as UTC day bounds)."""
        return {
            "operation_type": self.operation_type or None,
            "status": self.status or None,
            "since": _midnight(self.since) if self.since else None,
            "until": _midnight(self.until + timedelta(days=1)) if self.until else None,
            "cursor": self.cursor or None,
        }

    def query(self, **changes: str) -> str:
        """The query string of these filters with ``changes`` applied (empty values dropped)."""
        values = {
            "type": self.operation_type,
            "status": self.status,
            "since": self.since.isoformat() if self.since else "",
            "until": self.until.isoformat() if self.until else "",
            "q": self.q,
            "cursor": self.cursor,
        }
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v})

    def without_cursor(self) -> HistoryFilters:
        return replace(self, cursor="")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _date(raw: str, name: str, errors: list[str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        errors.append(f"{name} must be a date (YYYY-MM-DD); ignored")
        return None


def parse_filters(params: Mapping[str, str]) -> HistoryFilters:
    """Filters from query parameters ``type``, ``status``, ``since``, ``until``, ``q``, ``cursor``."""
    errors: list[str] = []
    status = params.get("status", "").strip()
    if status and status not in {s.value for s in OperationStatus}:
        errors.append(f"status {status[:40]!r} is not one of {[s.value for s in OperationStatus]}")
        status = ""
    since = _date(params.get("since", ""), "from", errors)
    until = _date(params.get("until", ""), "to", errors)
    if since and until and since > until:
        errors.append("the 'from' date is after the 'to' date; dates ignored")
        since = until = None
    if until is not None and until >= date.max - timedelta(days=1):
        until = None  # the day after could not be represented, and nothing is that late anyway
    return HistoryFilters(
        operation_type=params.get("type", "").strip()[:MAX_TEXT],
        status=status,
        since=since,
        until=until,
        q=params.get("q", "").strip()[:MAX_TEXT],
        cursor=params.get("cursor", "").strip()[:1000],
        errors=tuple(errors),
    )


def matches_search(prompt: str | None, q: str) -> bool:
    """Whether ``prompt`` contains ``q``, ignoring case (and accents' composed/decomposed forms)."""
    if not q:
        return True
    if not prompt:
        return False
    return _fold(q) in _fold(prompt)


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()
