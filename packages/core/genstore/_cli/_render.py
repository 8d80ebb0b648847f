"""Rich tables for records, images, stats and reports. User data always goes in as ``Text``, so a
prompt containing ``[bold]`` is printed as typed, never read as markup."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from datetime import datetime
from typing import Any

from rich import box
from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

from .._records import ImageRecord, OperationRecord, OperationStatus

__all__ = [
    "as_plain",
    "history_table",
    "images_table",
    "key_value_table",
    "short",
    "to_json",
]

PROMPT_WIDTH = 48


def short(text: str | None, width: int = PROMPT_WIDTH) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _cut(text: str, style: str = "") -> Text:
    """A cell that stays on one line: cut with an ellipsis when its column is narrowed."""
    return Text(text, style=style, no_wrap=True, overflow="ellipsis")


def _result(record: OperationRecord) -> Text:
    if record.error:
        return _cut(f"error: {short(record.error, 80)}", "red")
    if record.result is not None:
        ref = record.result
        size = f" {ref.width}x{ref.height}" if ref.width and ref.height else ""
        more = f" (+{len(record.results) - 1} more)" if len(record.results) > 1 else ""
        return _cut(f"{ref.content_type}{size} {decimal(ref.size)}{more}")
    if record.result_error:
        return _cut(f"not stored: {short(record.result_error, 80)}", "yellow")
    return _cut("-", "dim")


# History columns in display order: (name, column options, the width it needs at least).
_HISTORY_COLUMNS: tuple[tuple[str, dict[str, Any], int], ...] = (
    ("id", {"no_wrap": True, "style": "cyan"}, 35),
    ("created (UTC)", {"no_wrap": True}, 19),
    ("type", {"no_wrap": True}, 13),
    ("status", {"no_wrap": True}, 9),
    ("user", {"no_wrap": True, "overflow": "ellipsis", "max_width": 28}, 12),
    ("prompt", {"ratio": 1}, 16),
    ("result", {"ratio": 1}, 20),
)
# Which columns stay when the screen is narrow, most wanted first (the id, for ``show``).
_HISTORY_PRIORITY = ("id", "status", "prompt", "type", "created (UTC)", "result", "user")


def _history_columns(width: int | None) -> list[str]:
    if width is None:
        return [name for name, _, _ in _HISTORY_COLUMNS]
    need = {name: least + 2 for name, _, least in _HISTORY_COLUMNS}
    kept: set[str] = set()
    used = 0
    for name in _HISTORY_PRIORITY:
        if not kept or used + need[name] <= width:
            kept.add(name)
            used += need[name]
    return [name for name, _, _ in _HISTORY_COLUMNS if name in kept]


def history_table(records: Iterable[OperationRecord], *, width: int | None = None) -> Table:
    """id, created (UTC), type, status, user, prompt, result; on a screen ``width`` wide, the
    least wanted columns are left out rather than cutting the id (``genstore show`` needs it)."""
    names = _history_columns(width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for name, options, _ in _HISTORY_COLUMNS:
        if name in names:
            table.add_column(name, **options)
    for record in records:
        failed = record.status is OperationStatus.FAILED
        cells = {
            "id": Text(record.operation_id),
            "created (UTC)": Text(_when(record.created_at)),
            "type": Text(record.operation_type),
            "status": Text(record.status.value, style="red" if failed else "green"),
            "user": Text(record.user_id or "-"),
            "prompt": _cut(short(record.prompt)),
            "result": _result(record),
        }
        table.add_row(*(cells[name] for name in names))
    return table


def images_table(images: Iterable[ImageRecord]) -> Table:
    """id, user, created (UTC), status, size in pixels and bytes, prompt (cut)."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("id", no_wrap=True, style="cyan")
    table.add_column("user", no_wrap=True)
    table.add_column("created (UTC)", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("pixels", no_wrap=True, justify="right")
    table.add_column("bytes", no_wrap=True, justify="right")
    table.add_column("prompt", ratio=1, min_width=8)
    for image in images:
        table.add_row(
            Text(image.image_id),
            Text(image.user_id),
            _when(image.created_at),
            Text(image.status.value),
            f"{image.width}x{image.height}",
            decimal(image.size),
            _cut(short(image.prompt)),
        )
    return table


def key_value_table(rows: Mapping[str, Any], *, title: str | None = None) -> Table:
    """Two columns; values shown as ``str`` (None as ``-``)."""
    table = Table(
        box=box.SIMPLE_HEAD, show_edge=False, title=title, title_justify="left", show_header=False
    )
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value")
    for key, value in rows.items():
        table.add_row(Text(str(key)), Text("-" if value is None else str(value)))
    return table


def as_plain(value: Any) -> Any:
    """A report (dataclass, pydantic model, object with ``as_dict``) as JSON-ready data."""
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value


def to_json(value: Any, *, indent: int | None = 2) -> str:
    """JSON for ``--json`` output: paths, datetimes and the like as strings."""
    return json.dumps(as_plain(value), indent=indent, ensure_ascii=False, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)
