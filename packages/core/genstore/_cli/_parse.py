"""Parsing the command line's durations (``30d``, ``12h``, ``1d12h``) and times (ISO or ``7d`` ago)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["MAX_DURATION", "format_duration", "parse_duration", "parse_time"]

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
# ASCII digits only: ``\d`` would also take other scripts' digits, which nobody means here.
_DURATION = re.compile(r"(?:[0-9]+[wdhms])+")
_PART = re.compile(r"([0-9]+)([wdhms])")

MAX_DURATION = timedelta(days=100 * 366)
"""Longer durations are refused: ``now - duration`` must stay a representable date."""


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w``, or several at once (``1d12h``); case-insensitive.

    Raises ``ValueError`` (with a message fit for the user) for anything else, including
    durations longer than ``MAX_DURATION``.
    """
    compact = text.strip().lower()
    if not _DURATION.fullmatch(compact):
        raise ValueError(f"{text!r} is not a duration such as 30d, 12h, 90m or 1d12h")
    seconds = sum(int(number) * _UNITS[unit] for number, unit in _PART.findall(compact))
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest ``parse_duration`` spelling of a whole number of seconds (``1d12h``, ``0s``)."""
    seconds = int(value.total_seconds())
    if seconds < 0:
        raise ValueError("durations are never negative")
    parts = []
    for unit, size in _UNITS.items():
        if unit == "w":  # "30d" reads better than "4w2d"
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An instant: ``now``, a duration ago (``7d``, ``24h``), or an ISO date or date-time.

    ISO values without a time zone are taken as UTC (records are kept in UTC). Raises
    ``ValueError`` with a message fit for the user.
    """
    now = now or datetime.now(UTC)
    stripped = text.strip()
    if stripped.lower() == "now":
        return now
    if _DURATION.fullmatch(stripped.lower()):
        return now - parse_duration(stripped)
    try:
        value = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO date or time (2024-05-01, 2024-05-01T12:00Z) "
            "nor a time ago such as 7d or 24h"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
