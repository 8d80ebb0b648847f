"""The ``genstore`` Typer app: global options, the lazily opened store, errors turned into exit codes.

Exit codes scripts can rely on::

    0  ok
    1  findings or failures (verify not ok, migrate with failures, a corrupt record or catalog,
       an unexpected error)
    2  usage (bad option or argument, invalid input)
    3  the store cannot be opened or reached (ConfigurationError, BackendUnavailable), or a
       command that only reads finds no store at the URL ("no genstore store at …")
    4  not found
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.text import Text
from typer.core import TyperGroup

from .._config import open_store
from .._store import Store
from ..exceptions import (
    BackendUnavailable,
    ConfigurationError,
    GenstoreError,
    InvalidInput,
    NotFound,
)
from ._exists import require_store
from ._parse import parse_duration, parse_time

__all__ = [
    "EXIT_FAILURE",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_STORE",
    "EXIT_USAGE",
    "CatalogOption",
    "State",
    "UrlOption",
    "app",
    "duration_option",
    "exit_code_for",
    "get_state",
    "progress",
    "report_error",
    "time_option",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_STORE = 3
EXIT_NOT_FOUND = 4

_WIDTH_WHEN_PIPED = 160


def make_console(*, stderr: bool = False) -> Console:
    """A console on the current stdout/stderr; wide when piped so tables do not fold ids."""
    stream = sys.stderr if stderr else sys.stdout
    width: int | None = None
    isatty = getattr(stream, "isatty", None)
    if not (callable(isatty) and isatty()):
        columns = os.environ.get("COLUMNS", "")
        width = int(columns) if columns.isdigit() and int(columns) > 0 else _WIDTH_WHEN_PIPED
    return Console(file=stream, width=width, highlight=False)


def exit_code_for(exc: GenstoreError) -> int:
    """The exit code of a genstore error (see the module docstring)."""
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, ConfigurationError | BackendUnavailable):
        return EXIT_STORE
    if isinstance(exc, InvalidInput):
        return EXIT_USAGE
    return EXIT_FAILURE


def report_error(message: str) -> None:
    """Print ``error: message`` as one red line on stderr (never wrapped, newlines folded)."""
    line = " ".join(message.split()) or "unknown error"
    make_console(stderr=True).print(Text(f"error: {line}", style="bold red"), soft_wrap=True)


class State:
    """What every command shares: the global options, the consoles, and the store once opened."""

    def __init__(self, url: str | None, catalog: str | None) -> None:
        self.url = url
        self.catalog = catalog
        self.out = make_console()
        self.err = make_console(stderr=True)
        self._store: Store | None = None

    def store(self, *, must_exist: bool = False) -> Store:
        """The store named by ``--url``/``--catalog`` (or the environment), opened on first use.

        ``must_exist`` (commands that only read): where there is no store, raise
        ``ConfigurationError("no genstore store at …")`` (exit 3) and create nothing.
        """
        if self._store is None:
            if must_exist:
                require_store(self.url)
            self._store = open_store(self.url, catalog=self.catalog)
        return self._store

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url", help="Store URL, as the global --url (also accepted here, after the command)."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
CatalogOption = Annotated[
    str | None,
    typer.Option("--catalog", help="Catalog URL, as the global --catalog (also accepted here)."),
]


def get_state(ctx: typer.Context, url: str | None = None, catalog: str | None = None) -> State:
    """The shared state; ``url``/``catalog`` given after the command win over the global ones."""
    state = ctx.find_object(State)
    if state is None:  # only when a command is invoked without the root group
        state = ctx.obj = State(None, None)
    if url is not None:
        state.url = url
    if catalog is not None:
        state.catalog = catalog
    return state


# The order ``genstore --help`` lists the commands in: daily use first.
_ORDER = (
    "serve",
    "history",
    "show",
    "stats",
    "export",
    "cleanup",
    "reindex",
    "verify",
    "demo",
    "migrate",
    "spool",
    "plugins",
    "supabase-sql",
)


class _Group(TyperGroup):
    """The root group: closes the store after the command and turns errors into one line."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(names, key=lambda n: _ORDER.index(n) if n in _ORDER else len(_ORDER))

    def invoke(self, ctx: Any) -> Any:
        try:
            try:
                return super().invoke(ctx)
            finally:
                if isinstance(ctx.obj, State):
                    ctx.obj.close()
        except (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError):
            # Usage errors keep typer's own report and exit code 2; a closed pipe
            # (``genstore history | head``) is quieted by typer's main loop.
            raise
        except GenstoreError as exc:
            report_error(str(exc) or type(exc).__name__)
            raise typer.Exit(exit_code_for(exc)) from None
        except Exception as exc:
            if os.environ.get("GENSTORE_DEBUG"):
                raise
            report_error(
                f"unexpected {type(exc).__name__}: {exc} (set GENSTORE_DEBUG=1 for the traceback)"
            )
            raise typer.Exit(EXIT_FAILURE) from None


app = typer.Typer(
    cls=_Group,
    name="genstore",
    help="Keep every AI generation your service performs, on storage you own.",
    epilog="Exit codes: 0 ok, 1 findings or failures, 2 usage, 3 store or configuration error, "
    "4 not found.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            envvar="GENSTORE_URL",
            show_envvar=True,
            help="Store URL: a path, file://, s3://bucket/prefix, supabase://bucket, memory://... "
            "(default: ./genstore-data).",
        ),
    ] = None,
    catalog: Annotated[
        str | None,
        typer.Option(
            "--catalog",
            envvar="GENSTORE_CATALOG",
            show_envvar=True,
            help="Catalog URL: sqlite:///path, postgresql://..., sidecar or supabase "
            "(default: the store's own).",
        ),
    ] = None,
) -> None:
    """Keep every AI generation your service performs, on storage you own."""
    ctx.obj = State(url, catalog)


def duration_option(value: str | timedelta) -> timedelta:
    """Typer parser for durations (``30d``, ``12h``, ``90m``)."""
    if isinstance(value, timedelta):
        return value
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def time_option(value: str | datetime) -> datetime:
    """Typer parser for instants (ISO date/time, or a duration ago such as ``7d``)."""
    if isinstance(value, datetime):
        return value
    try:
        return parse_time(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@contextmanager
def progress(state: State, description: str) -> Iterator[Callable[[int], None]]:
    """A progress display on stderr while the block runs; yields ``advance(n)``.

    Nothing is drawn when stderr is not a terminal, so piped output stays clean.
    """
    if not state.err.is_terminal:
        yield _ignore
        return
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=state.err, transient=True) as bar:
        task = bar.add_task(description, total=None)
        yield lambda n: bar.advance(task, n)


def _ignore(_: int) -> None:
    return None
