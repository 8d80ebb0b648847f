"""Wrappers every UI endpoint goes through: sign-in, CSRF for forms, errors as pages."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from genstore.exceptions import BackendUnavailable, GenstoreError, InvalidInput, NotFound
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from ._context import UI, Handler
from ._session import Session, current_session, from_this_site

__all__ = ["form", "page", "public"]

logger = logging.getLogger("genstore_asgi.service.ui")

Endpoint = Callable[[Request], Awaitable[Response]]


def _to_sign_in(ui: UI, request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = ui.url(request, "sign_in") + "?" + urlencode({"next": target})
    return RedirectResponse(url, status_code=303)


def _failure(
    ui: UI, request: Request, session: Session, status: int, message: str, bare: bool
) -> Response:
    if bare:  # files and thumbnails: an <img> cannot show a page
        return PlainTextResponse(message, status_code=status, headers={"Cache-Control": "no-store"})
    return ui.render(request, "error.html", session, status, message=message, status=status)


_STALE = "this form is stale or came from another site: reload the page and try again"


async def _csrf_ok(request: Request, expected: str) -> bool:
    data = await request.form(max_files=0, max_fields=20)
    sent = data.get("csrf")
    if not isinstance(sent, str):
        return False
    return hmac.compare_digest(sent.encode(), expected.encode()) and from_this_site(request)


def _guarded(ui: UI, handler: Handler, *, bare: bool, posted: bool) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        session = await current_session(request, ui.authenticate)
        if session is None:
            if bare:
                return PlainTextResponse("sign in first", status_code=401)
            return _to_sign_in(ui, request)
        try:
            if posted and not await _csrf_ok(request, session.csrf):
                return _failure(ui, request, session, 403, _STALE, bare)
            response: Response = await handler(ui, request, session)
            return response
        except NotFound:
            return _failure(ui, request, session, 404, "not found", bare)
        except InvalidInput as exc:
            return _failure(ui, request, session, 400, str(exc), bare)
        except BackendUnavailable as exc:
            logger.error("storage unavailable: %s", exc)
            return _failure(ui, request, session, 503, "storage unavailable, try again later", bare)
        except GenstoreError:
            logger.exception("UI request failed")
            return _failure(ui, request, session, 500, "internal error", bare)

    return endpoint


def page(ui: UI, handler: Handler, *, bare: bool = False) -> Endpoint:
    """A GET endpoint for signed-in users; ``bare`` for bytes (401/404 text, no redirects)."""
    return _guarded(ui, handler, bare=bare, posted=False)


def form(ui: UI, handler: Handler) -> Endpoint:
    """A POST endpoint for signed-in users whose form carries the session's CSRF token."""
    return _guarded(ui, handler, bare=False, posted=True)


def public(ui: UI, handler: Callable[[UI, Request], Awaitable[Response]]) -> Endpoint:
    """An endpoint anyone may reach (sign-in): ``handler(ui, request)``."""

    async def endpoint(request: Request) -> Response:
        return await handler(ui, request)

    return endpoint
