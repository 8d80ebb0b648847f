"""The route table: each API route declared once, as data (path, handler, models), so the app
and its OpenAPI document are built from the same definitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel
from starlette.routing import BaseRoute, Route

from ._deps import ServiceDeps
from ._guard import Guard, Handler, Public, PublicHandler

__all__ = ["ApiRoute", "build_routes"]


@dataclass(frozen=True)
class ApiRoute:
    """One operation of the API: where it lives, what runs it, what it takes and answers.

    ``handler`` routes need a bearer token and are rate-limited; ``public`` ones are not.
    ``errors`` are the statuses it may answer with the error body, besides auth and limits.
    ``also`` are other statuses answered with ``response`` (health's 503).
    ``media_type`` is set for a route answering raw bytes instead of ``response``.
    """

    method: str
    path: str
    name: str
    summary: str
    handler: Handler | None = None
    public: PublicHandler | None = None
    tag: str = "images"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    also: tuple[int, ...] = ()
    media_type: str | None = None

    @property
    def guarded(self) -> bool:
        return self.handler is not None


def build_routes(table: Sequence[ApiRoute], deps: ServiceDeps) -> list[BaseRoute]:
    """Starlette routes for ``table``: guarded handlers behind auth and limits, public ones bare."""
    routes: list[BaseRoute] = []
    for spec in table:
        if spec.handler is not None:
            endpoint = Guard(deps, spec.handler).endpoint
        elif spec.public is not None:
            endpoint = Public(deps, spec.public).endpoint
        else:
            raise ValueError(f"route {spec.name} has no handler")
        routes.append(Route(spec.path, endpoint, methods=[spec.method], name=spec.name))
    return routes
