"""The route table: each API route declared once, as data, so the app and its documentation
are built from the same definitions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ._deps import Guard, Handler, ServiceDeps

__all__ = ["ApiRoute", "PublicHandler", "build_routes"]

PublicHandler = Callable[[Request, ServiceDeps], Awaitable[Response]]


@dataclass(frozen=True)
class ApiRoute:
    """One operation of the API: where it lives, what runs it, and whether it needs a token."""

    method: str
    path: str
    name: str
    summary: str
    handler: Handler | None = None
    public: PublicHandler | None = None
    tag: str = "images"


class _Public:
    """An endpoint that needs no token (health): the handler gets the shared dependencies."""

    def __init__(self, deps: ServiceDeps, handler: PublicHandler) -> None:
        self.deps = deps
        self.handler = handler

    async def endpoint(self, request: Request) -> Response:
        return await self.handler(request, self.deps)


def build_routes(table: Sequence[ApiRoute], deps: ServiceDeps) -> list[BaseRoute]:
    """Starlette routes for ``table``: guarded handlers behind auth and limits, public ones bare."""
    routes: list[BaseRoute] = []
    for spec in table:
        if spec.handler is not None:
            endpoint = Guard(deps, spec.handler).endpoint
        elif spec.public is not None:
            endpoint = _Public(deps, spec.public).endpoint
        else:
            raise ValueError(f"route {spec.name} has no handler")
        routes.append(Route(spec.path, endpoint, methods=[spec.method], name=spec.name))
    return routes
