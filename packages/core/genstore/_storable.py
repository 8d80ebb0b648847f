"""Making recorded values storable instead of losing the record: what JSON or UTF-8 cannot hold
is kept as text, and each change is described in a note.

A recorded request may carry ``NaN``, ``Infinity`` or ``1e999`` (Python's ``json`` reads them),
nesting deeper than any sane request, or lone surrogates (``"\\ud800"``, valid in JSON text,
invalid in UTF-8). The direct API refuses these (``InvalidInput``); the recorder, which must never
lose a record, stores what can be stored and says what it changed.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MAX_DEPTH", "storable_json", "storable_text"]

MAX_DEPTH = 64
"""Containers nested deeper than this are replaced by a placeholder."""

TOO_DEEP = "[nested too deep to record]"


def storable_text(text: str, where: str, notes: list[str]) -> str:
    """``text`` (the same object when it is valid) with lone surrogates replaced by U+FFFD
    (noted)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        notes.append(f"{where}: characters that are not valid Unicode replaced")
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def storable_json(value: Any, where: str, notes: list[str]) -> Any:
    """``value`` (JSON-like) with non-finite numbers as text and deep nesting cut, noted once per
    kind of change under ``where``."""
    seen: set[str] = set()
    cleaned = _clean(value, 0, seen)
    notes.extend(f"{where}: {change}" for change in sorted(seen))
    return cleaned


def _clean(value: Any, depth: int, seen: set[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        seen.add("numbers JSON cannot hold (NaN, Infinity) kept as text")
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        local: list[str] = []
        text = storable_text(value, "", local)
        if local:
            seen.add("characters that are not valid Unicode replaced")
        return text
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            seen.add(f"values nested deeper than {MAX_DEPTH} levels replaced")
            return TOO_DEEP
        if isinstance(value, list):
            items = [_clean(item, depth + 1, seen) for item in value]
            # The same object when nothing changed: the common case costs no copy.
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        pairs = [
            (
                _clean(key, depth + 1, seen) if isinstance(key, str) else key,
                _clean(v, depth + 1, seen),
            )
            for key, v in value.items()
        ]
        unchanged = all(
            k is k0 and v is v0 for (k, v), (k0, v0) in zip(pairs, value.items(), strict=True)
        )
        return value if unchanged else dict(pairs)
    return value
