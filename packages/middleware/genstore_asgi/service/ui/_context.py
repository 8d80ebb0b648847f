"""What every UI handler shares: the store, the authenticator, templates and URL building."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from genstore import ImageStatus, OperationStatus, OperationType, Store
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Router

from ._session import Authenticate, Session
from ._views import pretty_json

__all__ = ["PAGE_HEADERS", "UI", "Handler"]

Handler = Callable[["UI", Request, Session], Awaitable[Any]]
"""A page of a signed-in user: ``(ui, request, session) -> Response``."""

PAGE_HEADERS = {
    # Pages show one user's records: never cached by anyone, never framed, no third-party anything.
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'self'; "
        "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer Chromium posts forms with ``Origin: null``.
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

_TEMPLATES = Path(__file__).parent / "templates"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty_json"] = pretty_json
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M:%S UTC") if d else ""
    env.globals.update(
        operation_types=[t.value for t in OperationType],
        operation_statuses=[s.value for s in OperationStatus],
        image_statuses=[s.value for s in ImageStatus if s is not ImageStatus.DELETED],
    )
    return env


@dataclass
class UI:
    """The UI's collaborators; one per mounted UI."""

    get_store: Callable[[], Store]
    authenticate: Authenticate
    dev_token: str | None = None
    thumbnail_px: int = 256
    router: Router = field(default_factory=Router)
    env: jinja2.Environment = field(default_factory=_environment)

    def url(self, request: Request, name: str, **params: Any) -> str:
        """The path of a UI route, under whatever prefix the UI is mounted at (never from Host)."""
        root: str = request.scope.get("root_path", "")
        return root + self.router.url_path_for(name, **params)

    def prefix(self, request: Request) -> str:
        """The UI's path prefix with a trailing ``/`` (the cookie's path)."""
        root: str = request.scope.get("root_path", "")
        return root + "/"

    def render(
        self,
        request: Request,
        template: str,
        session: Session | None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        """A page from ``template``; ``url(name, **params)`` and the session are in its context."""

        def url(name: str, **params: Any) -> str:
            return self.url(request, name, **params)

        html = self.env.get_template(template).render(
            url=url, session=session, dev_mode=self.dev_token is not None, **context
        )
        return HTMLResponse(html, status_code=status_code, headers=PAGE_HEADERS)
