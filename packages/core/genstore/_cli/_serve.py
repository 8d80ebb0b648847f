"""``genstore serve``: run the images service (the seed's REST API, its docs and UI) with uvicorn.

The service lives in ``genstore_asgi`` (the ``server`` extra); it is imported when the command
runs or its help is shown, so the rest of the CLI works without it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand

from ..exceptions import MissingDependency
from ._app import CatalogOption, UrlOption, app, get_state

__all__: list[str] = []

_INSTALL = "genstore serve needs the server extra: pip install 'genstore[server]'"


def _environment_help() -> str:
    try:
        from genstore_asgi.service._settings import environment_help
    except ImportError:
        return _INSTALL
    return environment_help()


class _ServeCommand(TyperCommand):
    """Shows the service's environment variables in ``--help``, read from the service itself."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        # Rich markup would eat "[server]" in the install hint.
        self.epilog = escape(_environment_help())
        super().format_help(ctx, formatter)


@app.command(cls=_ServeCommand)
def serve(
    ctx: typer.Context,
    url: UrlOption = None,
    catalog: CatalogOption = None,
    host: Annotated[
        str, typer.Option("--host", envvar="HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", envvar="PORT", help="Port to listen on.")] = 5002,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes (uvicorn).")
    ] = 1,
    dev: Annotated[
        bool,
        typer.Option("--dev", help="Sign tokens with a secret made for this run; print one."),
    ] = False,
) -> None:
    """Serve the images API (REST, OpenAPI docs, UI) with uvicorn until interrupted."""
    try:
        from genstore_asgi.service import ServeOptions
        from genstore_asgi.service import serve as run_service
    except ImportError as exc:
        raise MissingDependency("genstore serve", extra="server", package=exc.name or "") from exc
    state = get_state(ctx, url, catalog)
    options = ServeOptions(
        url=state.url, catalog=state.catalog, host=host, port=port, workers=workers, dev=dev
    )
    raise typer.Exit(run_service(options))
