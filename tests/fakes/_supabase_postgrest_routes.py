"""The fake's PostgREST routes for genstore's tables (see ``supabase_server``'s docstring)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._postgrest_query import (
    Cond,
    PgError,
    Row,
    Table,
    coerce,
    format_timestamp,
    parse_filter,
    parse_order,
    parse_tree,
    sort_rows,
)
from .supabase_server import AuthFailure, Caller, FakeSupabase

_NOT_NULL_OPS = frozenset(
    {"store", "operation_id", "operation_type", "status", "created_at", "record"}
)
_NOT_NULL_IMAGES = frozenset(
    {"store", "user_id", "image_id", "status", "created_at", "updated_at", "record"}
)


def _text(record: Any, key: str) -> str | None:
    """``record ->> key``: NULL when absent, the text of the value otherwise."""
    if not isinstance(record, dict) or record.get(key) is None:
        return None
    value = record[key]
    return value if isinstance(value, str) else json.dumps(value)


def _matches(row: Row, *pairs: tuple[str, str]) -> bool | None:
    results = [_text(row.get("record"), key) for key, _ in pairs]
    if any(r is None for r in results):
        return None  # a CHECK passes on NULL, as in PostgreSQL
    return all(r == row.get(col) for r, (_, col) in zip(results, pairs, strict=True))


TABLES: dict[str, Table] = {
    "genstore_operations": Table(
        "genstore_operations",
        {
            "store": "text",
            "operation_id": "text",
            "operation_type": "text",
            "status": "text",
            "user_id": "text",
            "idempotency_key": "text",
            "created_at": "timestamptz",
            "record": "jsonb",
        },
        ("store", "operation_id"),
        _NOT_NULL_OPS,
        "user_id",
        (
            (
                "genstore_operations_record_matches",
                lambda r: _matches(r, ("operation_id", "operation_id")),
            ),
        ),
        {"store": ""},
    ),
    "genstore_images": Table(
        "genstore_images",
        {
            "store": "text",
            "user_id": "text",
            "image_id": "text",
            "status": "text",
            "created_at": "timestamptz",
            "updated_at": "timestamptz",
            "record": "jsonb",
        },
        ("store", "user_id", "image_id"),
        _NOT_NULL_IMAGES,
        "user_id",
        (
            (
                "genstore_images_record_matches",
                lambda r: _matches(r, ("image_id", "image_id"), ("user_id", "user_id")),
            ),
        ),
        {"store": ""},
    ),
}
"""The tables, columns and keys of migration.sql (tests check the two agree)."""


def _first_version(table: Table) -> Table:
    """The table as the first migration.sql made it: no ``store`` column."""
    return replace(
        table,
        columns={c: kind for c, kind in table.columns.items() if c != "store"},
        primary_key=table.primary_key[1:],
        not_null=table.not_null - {"store"},
        defaults={},
    )


FIRST_TABLES = {name: _first_version(table) for name, table in TABLES.items()}

_RESERVED = frozenset({"select", "order", "limit", "offset", "on_conflict", "columns"})


def _prefer(request: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for header in request.headers.getlist("prefer"):
        for item in header.split(","):
            name, _, value = item.strip().partition("=")
            if name:
                out[name] = value
    return out


def duplicate(table: Table, key: tuple[Any, ...]) -> PgError:
    """PostgreSQL's unique violation of the primary key."""
    return PgError(
        409,
        "23505",
        f'duplicate key value violates unique constraint "{table.name}_pkey"',
        f"Key ({', '.join(table.primary_key)})=({', '.join(map(str, key))}) already exists.",
    )


def _json_row(table: Table, row: Row, columns: list[str]) -> dict[str, Any]:
    out = {}
    for column in columns:
        value = row.get(column)
        out[column] = (
            format_timestamp(value) if table.columns[column] == "timestamptz" and value else value
        )
    return out


def postgrest_routes(fake: FakeSupabase) -> list[Route]:
    """``/{table}`` for GET, HEAD, POST, PATCH and DELETE."""

    def table_of(request: Request) -> Table:
        name = request.path_params["table"]
        for header in ("accept-profile", "content-profile"):
            profile = request.headers.get(header, "public")
            if profile != "public":
                raise PgError(406, "PGRST106", "The schema must be one of the following: public")
        if name not in TABLES or not fake.tables_installed:
            raise PgError(
                404,
                "PGRST205",
                f"Could not find the table 'public.{name}' in the schema cache",
                hint=None,
            )
        return (TABLES if fake.tables_version >= 2 else FIRST_TABLES)[name]

    def caller_of(request: Request) -> Caller:
        if not request.headers.get("authorization"):
            return Caller("anon")
        try:
            return fake.caller(request)
        except AuthFailure as failure:
            if failure.kind == "expired":
                raise PgError(401, "PGRST303", "JWT expired") from failure
            if failure.kind == "role":
                raise PgError(400, "22023", failure.message) from failure
            raise PgError(401, "PGRST301", f"JWSError ({failure.message})") from failure

    def condition(request: Request, table: Table) -> tuple[list[Cond], bool]:
        conds: list[Cond] = []
        for key, value in request.query_params.multi_items():
            if key in _RESERVED:
                continue
            if key in ("or", "and", "not.or", "not.and"):
                negate = key.startswith("not.")
                conds.append(parse_tree(table, key.removeprefix("not."), value, negate=negate))
            else:
                conds.append(parse_filter(table, key, value))
        return conds, bool(conds)

    def visible_rows(request: Request, table: Table, caller: Caller) -> list[Row]:
        conds, _ = condition(request, table)
        rows = list(fake.tables[table.name].values())
        if not caller.privileged:
            rows = [r for r in rows if caller.sub is not None and r.get(table.owner) == caller.sub]
        return [r for r in rows if all(c(r) is True for c in conds)]

    def selected(request: Request, table: Table) -> list[str]:
        raw = request.query_params.get("select", "*")
        if raw == "*":
            return list(table.columns)
        columns = [c.strip() for c in raw.split(",") if c.strip()]
        for column in columns:
            if any(ch in column for ch in ":()->"):
                raise PgError(400, "PGRST100", f"select {column!r} is not supported by the fake")
            table.column(column)
        return columns

    def page_bounds(request: Request) -> tuple[int, int | None]:
        offset = int(request.query_params.get("offset", "0"))
        limit = request.query_params.get("limit")
        size = int(limit) if limit is not None else None
        wanted = request.headers.get("range")
        if wanted and "-" in wanted:
            first, _, last = wanted.partition("-")
            offset = max(offset, int(first))
            if last:
                span = int(last) - int(first) + 1
                size = span if size is None else min(size, span)
        size = fake.max_rows if size is None else min(size, fake.max_rows)
        return offset, size

    async def read(request: Request) -> Response:
        table, caller = table_of(request), caller_of(request)
        columns = selected(request, table)
        with fake.lock:
            rows = visible_rows(request, table, caller)
        order = request.query_params.get("order")
        if order:
            rows = sort_rows(rows, parse_order(table, order))
        offset, size = page_bounds(request)
        count_wanted = _prefer(request).get("count") == "exact"
        total = len(rows)
        if count_wanted and offset > total:
            error = PgError(
                416,
                "PGRST103",
                "Requested range not satisfiable",
                f"An offset of {offset} was requested, but there are only {total} rows.",
            )
            return JSONResponse(error.body(), 416, {"content-range": f"*/{total}"})
        page = rows[offset : offset + (size or 0)]
        shown_total = str(total) if count_wanted else "*"
        content_range = (
            f"{offset}-{offset + len(page) - 1}/{shown_total}" if page else f"*/{shown_total}"
        )
        status = 206 if count_wanted and len(page) < total else 200
        headers = {"content-range": content_range}
        body = [_json_row(table, r, columns) for r in page]
        if request.headers.get("accept", "").startswith("application/vnd.pgrst.object+json"):
            if len(body) != 1:
                error = PgError(
                    406,
                    "PGRST116",
                    "JSON object requested, multiple (or no) rows returned",
                    f"The result contains {len(body)} rows",
                )
                return JSONResponse(error.body(), 406)
            return JSONResponse(body[0], 200, headers)
        if request.method == "HEAD":
            return Response(None, status, headers, media_type="application/json")
        return JSONResponse(body, status, headers)

    def refuse_write(table: Table, caller: Caller) -> None:
        if caller.role == "anon":
            raise PgError(401, "42501", f"permission denied for table {table.name}")
        if not caller.privileged:
            raise PgError(
                403, "42501", f'new row violates row-level security policy for table "{table.name}"'
            )

    def check_row(table: Table, row: Row) -> None:
        for column in table.not_null:
            if row.get(column) is None:
                raise PgError(
                    400,
                    "23502",
                    f'null value in column "{column}" of relation '
                    f'"{table.name}" violates not-null constraint',
                )
        for name, check in table.checks:
            if check(row) is False:
                raise PgError(
                    400,
                    "23514",
                    f'new row for relation "{table.name}" violates check constraint "{name}"',
                )

    def answer(request: Request, table: Table, rows: list[Row], status: int) -> Response:
        prefer = _prefer(request)
        headers = {"content-range": f"*/{len(rows)}" if prefer.get("count") == "exact" else "*/*"}
        if prefer.get("return") == "representation":
            columns = selected(request, table)
            return JSONResponse([_json_row(table, r, columns) for r in rows], status, headers)
        return Response(None, 204 if status == 200 else status, headers)

    async def insert(request: Request) -> Response:
        table, caller = table_of(request), caller_of(request)
        payload = json.loads(await request.body() or b"null")
        items = payload if isinstance(payload, list) else [payload]
        if not all(isinstance(i, dict) for i in items):
            raise PgError(400, "PGRST102", "All object keys must match")
        prefer = _prefer(request)
        resolution = prefer.get("resolution")
        listed = request.query_params.get("columns")
        keys = [c.strip('" ') for c in listed.split(",")] if listed else None
        refuse_write(table, caller)
        conflict = request.query_params.get("on_conflict")
        if resolution and conflict and sorted(conflict.split(",")) != sorted(table.primary_key):
            raise PgError(
                400,
                "42P10",
                "there is no unique or exclusion constraint matching the ON CONFLICT specification",
            )
        incoming: list[Row] = []
        for item in items:
            given = keys if keys is not None else list(item)
            for column in given:
                if column not in table.columns:
                    raise PgError(
                        400,
                        "PGRST204",
                        f"Could not find the '{column}' column of "
                        f"'{table.name}' in the schema cache",
                    )
            incoming.append({c: coerce(table, c, item.get(c)) for c in given})
        written: list[Row] = []
        with fake.lock:
            store = fake.tables[table.name]
            staged = dict(store)
            for values in incoming:
                row = {c: table.defaults.get(c) for c in table.columns} | values
                key = table.key(row)
                existing = staged.get(key)
                if existing is not None:
                    if resolution == "ignore-duplicates":
                        continue
                    if resolution != "merge-duplicates":
                        raise duplicate(table, key)
                    row = existing | values
                check_row(table, row)
                staged[key] = row
                written.append(row)
            store.clear()
            store.update(staged)
        return answer(request, table, written, 201)

    async def update(request: Request) -> Response:
        table, caller = table_of(request), caller_of(request)
        payload = json.loads(await request.body() or b"{}")
        _, filtered = condition(request, table)
        if not filtered:
            raise PgError(400, "21000", "UPDATE requires a WHERE clause")
        values = {c: coerce(table, c, v) for c, v in payload.items()}
        with fake.lock:
            rows = visible_rows(request, table, caller) if caller.privileged else []
            store = fake.tables[table.name]
            # One statement: all rows change or none (a key taken by another row refuses all).
            staged = dict(store)
            for row in rows:
                del staged[table.key(row)]
            changed = []
            for row in rows:
                new = row | values
                check_row(table, new)
                if table.key(new) in staged:
                    raise duplicate(table, table.key(new))
                staged[table.key(new)] = new
                changed.append(new)
            store.clear()
            store.update(staged)
        return answer(request, table, changed, 200)

    async def delete(request: Request) -> Response:
        table, caller = table_of(request), caller_of(request)
        _, filtered = condition(request, table)
        if not filtered:
            raise PgError(400, "21000", "DELETE requires a WHERE clause")
        with fake.lock:
            # No delete policy exists: rows are invisible to a user's DELETE, nothing happens.
            rows = visible_rows(request, table, caller) if caller.privileged else []
            store = fake.tables[table.name]
            for row in rows:
                del store[table.key(row)]
        return answer(request, table, rows, 200)

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except PgError as error:
                return JSONResponse(error.body(), error.status)
            return response

        return endpoint

    return [
        Route("/{table}", guarded(read), methods=["GET", "HEAD"]),
        Route("/{table}", guarded(insert), methods=["POST"]),
        Route("/{table}", guarded(update), methods=["PATCH"]),
        Route("/{table}", guarded(delete), methods=["DELETE"]),
    ]
