"""Commands that read: ``history``, ``show``, ``stats``, ``export``."""

from __future__ import annotations

import os
import secrets
import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .._records import OperationStatus
from ..exceptions import NotFound
from ._app import (
    EXIT_FAILURE,
    CatalogOption,
    JsonOption,
    UrlOption,
    app,
    get_state,
    report_error,
    time_option,
)
from ._render import history_table, key_value_table, to_json

__all__: list[str] = []


class ExportFormat(StrEnum):
    """The formats ``export`` writes."""

    csv = "csv"
    jsonl = "jsonl"


UserOption = Annotated[
    str | None, typer.Option("--user", "-u", help="Only this user's operations.")
]
TypeOption = Annotated[
    str | None, typer.Option("--type", "-t", help="Only this operation type (text_to_image, ...).")
]
StatusOption = Annotated[
    OperationStatus | None,
    typer.Option("--status", "-s", case_sensitive=False, help="Only succeeded or failed ones."),
]
SinceOption = Annotated[
    datetime | None,
    typer.Option(
        parser=time_option,
        metavar="WHEN",
        help="Created at or after: an ISO date/time (UTC unless it says) or a time ago (7d, 24h).",
    ),
]
UntilOption = Annotated[
    datetime | None,
    typer.Option(
        parser=time_option,
        metavar="WHEN",
        help="Created before: an ISO date/time (UTC unless it says) or a time ago (7d, 24h).",
    ),
]


def _filters(
    user: str | None,
    operation_type: str | None,
    status: OperationStatus | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    return {
        "user_id": user,
        "operation_type": operation_type,
        "status": status.value if status is not None else None,
        "since": since,
        "until": until,
    }


@app.command()
def history(
    ctx: typer.Context,
    user: UserOption = None,
    operation_type: TypeOption = None,
    status: StatusOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Operations per page.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Continue from a page (printed after the last one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record per line.")] = False,
    url: UrlOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Operations, newest first."""
    state = get_state(ctx, url, catalog)
    page = state.store(must_exist=True).history(
        **_filters(user, operation_type, status, since, until), limit=limit, cursor=cursor
    )
    if as_json:
        for record in page.items:
            typer.echo(record.model_dump_json())
    elif page.items:
        state.out.print(history_table(page.items, width=state.out.width))
    else:
        state.err.print("no operations match", style="dim")
    if page.next_cursor:
        # On stderr so stdout stays pure records; scripts read it from there to page on.
        state.err.print(f"next page: --cursor {page.next_cursor}", soft_wrap=True, style="dim")


@app.command()
def show(
    ctx: typer.Context,
    operation_id: Annotated[str, typer.Argument(metavar="ID", help="An operation id.")],
    url: UrlOption = None,
    catalog: CatalogOption = None,
) -> None:
    """One operation as JSON (exit 4 if there is none)."""
    state = get_state(ctx, url, catalog)
    try:
        record = state.store(must_exist=True).get_operation(operation_id)
    except NotFound:
        raise NotFound(
            f"no operation {operation_id!r} in {state.store(must_exist=True).blobs.url}"
        ) from None
    text = record.model_dump_json(indent=2)
    if state.out.is_terminal:
        state.out.print_json(text)
    else:
        typer.echo(text)


@app.command()
def stats(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Counts of operations by type and status, and of images."""
    state = get_state(ctx, url, catalog)
    data = state.store(must_exist=True).stats()
    if as_json:
        typer.echo(to_json(data))
        return
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    state.out.print(key_value_table(scalars))
    for name in ("by_type", "by_status", "recorder"):
        section = data.get(name)
        if section:
            state.out.print(key_value_table(section, title=name.replace("_", " ")))


@app.command()
def export(
    ctx: typer.Context,
    format: Annotated[
        ExportFormat, typer.Option("--format", "-f", help="csv (flat columns) or jsonl (whole).")
    ] = ExportFormat.jsonl,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False, help="Write here instead of stdout."),
    ] = None,
    user: UserOption = None,
    operation_type: TypeOption = None,
    status: StatusOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    url: UrlOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Every matching operation, newest first, as CSV or JSON Lines."""
    state = get_state(ctx, url, catalog)
    store = state.store(must_exist=True)
    filters = _filters(user, operation_type, status, since, until)
    if output is None:
        store.export(format.value, sys.stdout, **filters)
        sys.stdout.flush()
        return
    # Written beside the target and renamed: a failed export never leaves half a file behind.
    tmp = output.parent / f".{output.name}.{secrets.token_hex(4)}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as file:
            count = store.export(format.value, file, **filters)
        os.replace(tmp, output)
    except OSError as exc:
        report_error(f"cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(EXIT_FAILURE) from None
    finally:
        tmp.unlink(missing_ok=True)
    state.err.print(f"exported {count} operations to {output}", soft_wrap=True)
