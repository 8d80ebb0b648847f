"""PostgREST's query grammar, as far as the fake needs it: typed values, filters, logic trees, order.

Filters evaluate with SQL's three-valued logic (a comparison with NULL is unknown, and a row is
returned only when its condition is true), as PostgreSQL would.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Row = dict[str, Any]
Cond = Callable[[Row], bool | None]


class PgError(Exception):
    """An error PostgREST would answer: HTTP status, code, message, details."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.hint = details, hint

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "details": self.details,
            "hint": self.hint,
            "message": self.message,
        }


@dataclass(frozen=True)
class Table:
    """A table of the migration: column types, key, NOT NULL columns, checks, owner column,
    column defaults."""

    name: str
    columns: dict[str, str]
    primary_key: tuple[str, ...]
    not_null: frozenset[str]
    owner: str
    """The column the read policy compares with the JWT's ``sub``."""
    checks: tuple[tuple[str, Callable[[Row], bool | None]], ...] = field(default=())
    defaults: dict[str, Any] = field(default_factory=dict)
    """What a column an insert leaves out holds (NULL when not listed)."""

    def key(self, row: Row) -> tuple[Any, ...]:
        return tuple(row[c] for c in self.primary_key)

    def column(self, name: str) -> str:
        if name not in self.columns:
            raise PgError(400, "42703", f"column {self.name}.{name} does not exist")
        return self.columns[name]


def parse_timestamp(text: str) -> datetime:
    raw = text.strip().replace(" ", "T", 1)
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise PgError(
            400, "22007", f'invalid input syntax for type timestamp with time zone: "{text}"'
        ) from exc
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """As PostgreSQL writes a timestamptz into JSON (UTC session): trailing zeros trimmed."""
    text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def coerce(table: Table, column: str, raw: Any) -> Any:
    """A request value (filter text or JSON body value) as the column's type holds it."""
    kind = table.column(column)
    if raw is None:
        return None
    if kind == "timestamptz":
        return parse_timestamp(str(raw))
    if kind == "text":
        if isinstance(raw, (dict, list)):
            raise PgError(400, "22P02", f"invalid input for text column {column}")
        if isinstance(raw, str) and "\x00" in raw:
            raise PgError(400, "22P05", "unsupported Unicode escape sequence")
        return (
            raw if isinstance(raw, str) else str(raw).lower() if isinstance(raw, bool) else str(raw)
        )
    return raw  # jsonb: any JSON


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        out, escaped = [], False
        for ch in value[1:-1]:
            if escaped:
                out.append(ch)
                escaped = False
            elif ch == "\\":
                escaped = True
            else:
                out.append(ch)
        return "".join(out)
    return value


def split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and double quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quoted, escaped = 0, False, False
    for ch in text:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    if quoted or depth:
        raise PgError(400, "PGRST100", f'failed to parse logic tree ("{text}")')
    parts.append("".join(current))
    return parts


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "neq": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


def _negate(cond: Cond) -> Cond:
    def negated(row: Row) -> bool | None:
        value = cond(row)
        return None if value is None else not value

    return negated


def parse_filter(table: Table, column: str, expr: str, *, in_tree: bool = False) -> Cond:
    """``[not.]op.value`` on ``column``: eq neq lt lte gt gte is in."""
    negate = expr.startswith("not.")
    if negate:
        expr = expr[4:]
    op, dot, raw = expr.partition(".")
    if not dot:
        raise PgError(400, "PGRST100", f"failed to parse filter ({expr})")
    table.column(column)
    cond: Cond
    if op in _COMPARE:
        if table.columns[column] == "jsonb":
            raise PgError(400, "42883", "operator does not exist: jsonb = unknown (fake)")
        value = coerce(table, column, unquote(raw) if in_tree else raw)
        compare = _COMPARE[op]

        def cond(row: Row) -> bool | None:
            have = row.get(column)
            return None if have is None or value is None else compare(have, value)

    elif op == "is":
        wanted = raw.lower()
        if wanted not in ("null", "true", "false", "unknown"):
            raise PgError(400, "PGRST100", f"failed to parse filter (is.{raw})")

        def cond(row: Row) -> bool | None:
            have = row.get(column)
            if wanted in ("null", "unknown"):
                return have is None
            return have is (wanted == "true")

    elif op == "in":
        if not (raw.startswith("(") and raw.endswith(")")):
            raise PgError(400, "PGRST100", f"failed to parse filter (in.{raw})")
        values = [coerce(table, column, unquote(v)) for v in split_top(raw[1:-1]) if v != ""]

        def cond(row: Row) -> bool | None:
            have = row.get(column)
            return None if have is None else have in values

    else:
        raise PgError(400, "PGRST100", f'unknown or unsupported operator "{op}" (fake)')
    return _negate(cond) if negate else cond


def parse_tree(table: Table, kind: str, text: str, *, negate: bool = False) -> Cond:
    """``or=(...)`` / ``and=(...)``: items are ``col.[not.]op.value`` or nested ``and(...)``."""
    if not (text.startswith("(") and text.endswith(")")):
        raise PgError(400, "PGRST100", f"failed to parse logic tree ({text})")
    conds: list[Cond] = []
    for item in split_top(text[1:-1]):
        item = item.strip()
        inner_negate = item.startswith("not.")
        body = item[4:] if inner_negate else item
        for nested in ("and", "or"):
            if body.startswith(nested + "("):
                conds.append(parse_tree(table, nested, body[len(nested) :], negate=inner_negate))
                break
        else:
            column, dot, expr = item.partition(".")
            if not dot:
                raise PgError(400, "PGRST100", f"failed to parse logic tree ({text})")
            conds.append(parse_filter(table, column, expr, in_tree=True))

    def combined(row: Row) -> bool | None:
        results = [c(row) for c in conds]
        if kind == "and":
            if any(r is False for r in results):
                return False
            return None if any(r is None for r in results) else True
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False

    return _negate(combined) if negate else combined


def parse_order(table: Table, text: str) -> Callable[[Row, Row], int]:
    """``col[.asc|.desc][.nullsfirst|.nullslast],...`` as a comparison function."""
    terms: list[tuple[str, bool, bool]] = []
    for term in text.split(","):
        column, *mods = term.strip().split(".")
        if table.column(column) == "jsonb":
            raise PgError(400, "PGRST100", "ordering by a jsonb column is not supported (fake)")
        desc = "desc" in mods
        nulls_first = "nullsfirst" in mods or (desc and "nullslast" not in mods)
        terms.append((column, desc, nulls_first))

    def compare(a: Row, b: Row) -> int:
        for column, desc, nulls_first in terms:
            x, y = a.get(column), b.get(column)
            if x is None and y is None:
                continue
            if x is None or y is None:
                first = (x is None) == nulls_first
                return -1 if first else 1
            if x == y:
                continue
            result = -1 if x < y else 1
            return -result if desc else result
        return 0

    return compare


def sort_rows(rows: list[Row], compare: Callable[[Row, Row], int]) -> list[Row]:
    return sorted(rows, key=functools.cmp_to_key(compare))
