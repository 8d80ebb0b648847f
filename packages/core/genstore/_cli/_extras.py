"""Commands around the core: ``migrate``, ``spool status|drain``, ``supabase-sql``, ``plugins``.

Each imports its module when run, so the rest of the CLI works without it (an optional extra that
is not installed, or a part of genstore that is newer than this build).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

from .._config import open_store
from .._plugins import backend_specs, catalog_specs, plugin_load_errors
from ..exceptions import ConfigurationError, MissingDependency, NotFound
from ..plugin import BackendSpec
from ._app import EXIT_FAILURE, CatalogOption, JsonOption, UrlOption, app, get_state, progress
from ._render import as_plain, key_value_table, to_json

if TYPE_CHECKING:
    from .._recording.spool import Spool, SpoolStatus
    from .._store import Store

__all__: list[str] = []

_MIGRATE_COUNTS = ("records", "images", "artefacts", "bytes", "skipped", "verified", "failed")
_SHOWN_FAILURES = 20


@app.command()
def migrate(
    ctx: typer.Context,
    src_url: Annotated[str, typer.Argument(metavar="SRC_URL", help="Store to copy from.")],
    dst_url: Annotated[str, typer.Argument(metavar="DST_URL", help="Store to copy into.")],
    verify: Annotated[
        bool, typer.Option("--verify", help="Check every copied artefact's checksum.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Copy every record and artefact from SRC_URL to DST_URL (resumable; exit 1 on failures).

    Name each store's catalog in its own URL (``?catalog=``); --url and --catalog do not apply.
    """
    from .._migrate import migrate as run_migrate

    state = get_state(ctx)
    with (
        open_store(src_url) as src,
        open_store(dst_url) as dst,
        progress(state, "copying") as advance,
    ):
        # Shown as the stores name themselves: secrets in the URLs (a catalog DSN) stay out.
        title = f"migrate {src.blobs.url} → {dst.blobs.url}"
        report = run_migrate(src, dst, verify=verify, progress=advance)
    failures = [str(f) for f in report.failures]
    counts = {name: getattr(report, name) for name in _MIGRATE_COUNTS}
    if as_json:
        typer.echo(to_json({**counts, "failures": failures}))
    else:
        shown = dict(counts)
        if isinstance(shown["bytes"], int):
            shown["bytes"] = decimal(shown["bytes"])
        state.out.print(key_value_table(shown, title=title))
        for failure in failures[:_SHOWN_FAILURES]:
            state.err.print(Text(f"failed: {failure}", style="red"), soft_wrap=True)
        if len(failures) > _SHOWN_FAILURES:
            state.err.print(f"... and {len(failures) - _SHOWN_FAILURES} more", style="red")
    if failures or counts["failed"]:
        raise typer.Exit(EXIT_FAILURE)


spool_app = typer.Typer(
    name="spool",
    help="The recorder's local spool: records waiting to be saved.",
    no_args_is_help=True,
)
app.add_typer(spool_app)


def _spool_rows(status: Any) -> dict[str, Any]:
    rows = dict(as_plain(status))
    if isinstance(rows.get("bytes"), int):
        rows["bytes"] = decimal(rows["bytes"])
    return rows


def _spool_of(store: Store) -> Spool:
    """The store's spool, opened without making the store's recorder: a recorder that finds
    records starts replaying them, and looking must not change what is looked at."""
    from .._recording.recorder import default_spool_dir
    from .._recording.spool import Spool

    return Spool(default_spool_dir(store.blobs))


def _read_spool(store: Store) -> SpoolStatus:
    return _spool_of(store).status()


@spool_app.command("status")
def spool_status(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = None,
    catalog: CatalogOption = None,
) -> None:
    """How many records wait in the spool, their size, the oldest one's time, and the records
    set aside (quarantined) with why."""
    state = get_state(ctx, url, catalog)
    spool = _spool_of(state.store())
    status, quarantined = spool.status(), spool.quarantined()
    if as_json:
        items = [{"id": ulid, "error": error} for ulid, error in quarantined]
        typer.echo(to_json({**as_plain(status), "quarantine": items}))
        return
    state.out.print(key_value_table(_spool_rows(status)))
    for ulid, error in quarantined:
        state.out.print(f"quarantined {ulid}: {error}", soft_wrap=True)


RecordId = Annotated[str, typer.Argument(help="A quarantined record's id.")]


@spool_app.command("retry")
def spool_retry(
    ctx: typer.Context, record_id: RecordId, url: UrlOption = None, catalog: CatalogOption = None
) -> None:
    """Put a quarantined record back in line (after fixing what made it fail)."""
    _quarantined(ctx, url, catalog, record_id, "retry")
    typer.echo(f"{record_id} is back in line; the recorder (or `spool drain`) replays it")


@spool_app.command("purge")
def spool_purge(
    ctx: typer.Context, record_id: RecordId, url: UrlOption = None, catalog: CatalogOption = None
) -> None:
    """Delete a quarantined record for good."""
    _quarantined(ctx, url, catalog, record_id, "purge")
    typer.echo(f"{record_id} deleted")


def _quarantined(
    ctx: typer.Context, url: str | None, catalog: str | None, record_id: str, action: str
) -> None:
    spool = _spool_of(get_state(ctx, url, catalog).store())
    try:
        spool.retry(record_id) if action == "retry" else spool.purge(record_id)
    except FileNotFoundError:
        raise NotFound(f"no quarantined record {record_id[:40]!r} in {spool.path}") from None


@spool_app.command("drain")
def spool_drain(
    ctx: typer.Context,
    as_json: JsonOption = False,
    url: UrlOption = None,
    catalog: CatalogOption = None,
) -> None:
    """Save every spooled record now (exit 1 if some are left: the store may be down)."""
    state = get_state(ctx, url, catalog)
    store = state.store()
    recorder = store.recorder
    recorder.replay_spool()
    # The recorder's own worker may be replaying too (it starts when it finds records): closing
    # waits for it, and its counters then hold every record either of them saved.
    recorder.close()
    counters = recorder.counters
    status = _read_spool(store)
    # Records another live process is replaying right now are not ours to wait for.
    left = status.count - status.claimed
    if as_json:
        report = {
            "replayed": counters.replayed,
            "rejected": counters.rejected,
            "left": left,
            "status": as_plain(status),
        }
        typer.echo(to_json(report))
    else:
        rejected = f" ({counters.rejected} rejected as invalid)" if counters.rejected else ""
        state.out.print(
            f"replayed {counters.replayed} records{rejected}; {left} left in the spool",
            soft_wrap=True,
        )
    if left > 0:
        raise typer.Exit(EXIT_FAILURE)


@app.command("supabase-sql")
def supabase_sql() -> None:
    """Print the SQL migration to apply to a Supabase project (tables, indexes, RLS policies)."""
    try:
        import genstore_adapters  # noqa: F401 - only to tell "not installed" from the rest
    except ImportError as exc:
        raise MissingDependency(
            "genstore supabase-sql", extra="supabase", package="genstore-adapters"
        ) from exc
    try:
        from genstore_adapters.supabase import migration_sql
    except ImportError as exc:
        if (exc.name or "").startswith("genstore_adapters"):
            # The adapters are there but older than this command: no extra would help.
            raise ConfigurationError(f"supabase-sql is not available: {exc}") from exc
        raise MissingDependency(
            "genstore supabase-sql", extra="supabase", package=exc.name or "supabase"
        ) from exc
    typer.echo(migration_sql())


@app.command()
def plugins(
    ctx: typer.Context,
    as_json: JsonOption = False,
) -> None:
    """The URL schemes the installed plugins serve, and plugins that failed to load."""
    state = get_state(ctx)
    schemes, failed = _declared_schemes()
    if as_json:
        typer.echo(to_json({"schemes": schemes, "failed": failed}))
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("scheme", "kind", "plugin", "extra", "description"):
        table.add_column(column, no_wrap=column != "description")
    for row in schemes:
        table.add_row(
            Text(row["scheme"], style="cyan"),
            Text(row["kind"]),
            Text(row["plugin"]),
            Text(row["extra"]),
            Text(row["description"]),
        )
    state.out.print(table)
    if failed:
        errors = Table(
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            title="failed to load",
            title_justify="left",
        )
        errors.add_column("plugin", no_wrap=True, style="red")
        errors.add_column("error")
        for name, error in sorted(failed.items()):
            errors.add_row(Text(name), Text(error))
        state.out.print(errors)


def _declared_schemes() -> tuple[list[dict[str, str]], dict[str, str]]:
    """One row per scheme each spec declares (the specs ``open_store`` routes by), and the
    plugins that failed to load or to declare."""
    backends, catalogs = backend_specs(), catalog_specs()
    failed = {**plugin_load_errors(), **backends.failed, **catalogs.failed}
    rows: list[dict[str, str]] = []
    for kind, registered in (("backend", backends.specs), ("catalog", catalogs.specs)):
        for plugin_name, spec in registered:
            names = list(spec.schemes)
            if isinstance(spec, BackendSpec) and spec.catch_all:
                names.append("<any other>")
            for scheme in names:
                row = {"scheme": scheme, "kind": kind, "plugin": plugin_name}
                row |= {"description": spec.description, "extra": spec.extra or ""}
                rows.append(row)
    rows.sort(key=lambda row: (row["scheme"], row["kind"], row["plugin"]))
    return rows, failed
