"""Commands that repair and tidy: ``cleanup``, ``reindex``, ``verify``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Annotated, Any

import typer
from rich import box
from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

from ._app import (
    EXIT_FAILURE,
    CatalogOption,
    JsonOption,
    State,
    UrlOption,
    app,
    duration_option,
    get_state,
    progress,
)
from ._parse import format_duration
from ._render import key_value_table, to_json

__all__: list[str] = []

# VerifyReport's lists, in the order they are shown, with a word for each.
FINDINGS = (
    ("orphan_blobs", "orphan blob"),
    ("unindexed", "unindexed record"),
    ("stale_index", "stale index row"),
    ("unreferenced_inputs", "unreferenced input"),
    ("corrupt", "corrupt record"),
    ("corrupt_index", "corrupt catalog row"),
    ("needs_reindex", "catalog to rebuild"),
)


@contextmanager
def _spinner(state: State, message: str) -> Iterator[None]:
    """A spinner on stderr while the block runs (terminals only)."""
    if not state.err.is_terminal:
        yield
        return
    with state.err.status(message):
        yield


@app.command()
def cleanup(
    ctx: typer.Context,
    older_than: Annotated[
        timedelta,
        typer.Option(
            "--older-than",
            parser=duration_option,
            metavar="DURATION",
            show_default="30d",
            help="Delete operations created longer ago than this (30d, 12h, 90m, 1d12h).",
        ),
    ] = timedelta(days=30),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count only; delete nothing.")] = False,
    as_json: JsonOption = False,
    url: UrlOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Delete old operations, then the inputs no remaining operation uses."""
    state = get_state(ctx, url, catalog)
    verb = "counting" if dry_run else "deleting"
    with _spinner(state, f"{verb} operations older than {format_duration(older_than)}"):
        report = state.store().cleanup(older_than, dry_run=dry_run)
    if as_json:
        typer.echo(to_json(report))
        return
    rows = {
        "operations": report.operations,
        "unused inputs": report.inputs,
        "bytes": decimal(report.bytes),
    }
    state.out.print("dry run: would delete (nothing deleted)" if dry_run else "deleted:")
    state.out.print(key_value_table(rows))


@app.command()
def reindex(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Rebuild the catalog from the JSON records (exit 1 if some records are corrupt)."""
    state = get_state(ctx, url, catalog)
    store = state.store()
    with progress(state, "reindexing") as advance:
        report = store.reindex(progress=advance)
    if as_json:
        typer.echo(to_json(report))
    else:
        state.out.print(
            f"indexed {report.operations} operations and {report.images} images", soft_wrap=True
        )
        for key in report.corrupt:
            state.err.print(Text(f"corrupt record skipped: {key}", style="yellow"), soft_wrap=True)
    if report.corrupt:
        raise typer.Exit(EXIT_FAILURE)


def _findings(report: Any) -> list[tuple[str, str]]:
    return [(word, entry) for name, word in FINDINGS for entry in getattr(report, name)]


def _findings_table(findings: list[tuple[str, str]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("finding", no_wrap=True, style="yellow")
    table.add_column("key", overflow="fold")
    for word, entry in findings:
        table.add_row(word, Text(entry))
    return table


@app.command()
def verify(
    ctx: typer.Context,
    fix: Annotated[bool, typer.Option("--fix", help="Repair what is found.")] = False,
    grace: Annotated[
        timedelta,
        typer.Option(
            parser=duration_option,
            metavar="DURATION",
            show_default="10m",
            help="Leave blobs younger than this alone (a save may be writing them right now).",
        ),
    ] = timedelta(minutes=10),
    as_json: JsonOption = False,
    url: UrlOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Compare blobs, records and catalog; exit 1 if something is (still) wrong."""
    state = get_state(ctx, url, catalog)
    store = state.store(must_exist=not fix)
    with _spinner(state, "verifying"):
        report = store.verify(fix=fix, grace=grace)
        # After a repair, look again: what is left (corrupt records, never deleted) decides.
        remaining = store.verify(fix=False, grace=grace) if fix and not report.ok else report
    found, left = _findings(report), _findings(remaining)
    if as_json:
        data = to_json({**report.as_dict(), "remaining": remaining.as_dict()} if fix else report)
        typer.echo(data)
    elif not found:
        state.out.print("ok: blobs, records and catalog agree", style="green")
    else:
        state.out.print(_findings_table(found))
        if fix:
            repaired = len(found) - len(left)
            state.out.print(f"repaired {repaired} of {len(found)} findings", soft_wrap=True)
            if left:
                state.out.print(
                    f"{len(left)} remain (corrupt records are kept for a human to look at)",
                    style="yellow",
                    soft_wrap=True,
                )
        else:
            state.out.print(
                f"{len(found)} findings; run `genstore verify --fix` to repair them",
                style="yellow",
                soft_wrap=True,
            )
    if not remaining.ok:
        raise typer.Exit(EXIT_FAILURE)
