"""Sign-in and sign-out pages: paste a token, or use the development token in ``--dev`` mode."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from .._auth import AuthFailed
from ._context import UI
from ._session import Session, clear_cookie, current_session, from_this_site, set_cookie, verify

__all__ = ["home", "sign_in", "sign_in_form", "sign_out"]


def _next(ui: UI, request: Request, raw: str) -> str:
    """Where to go after signing in: only a path inside the UI (no open redirect)."""
    prefix = ui.prefix(request)
    if raw.startswith(prefix) and not raw.startswith("//") and "\\" not in raw:
        return raw
    return ui.url(request, "operations")


async def home(ui: UI, request: Request) -> Response:
    """``/ui/``: the operations page, or sign-in first."""
    signed_in = await current_session(request, ui.authenticate) is not None
    return RedirectResponse(ui.url(request, "operations" if signed_in else "sign_in"), 303)


async def sign_in_form(ui: UI, request: Request) -> Response:
    """The sign-in page."""
    session = await current_session(request, ui.authenticate)
    return ui.render(
        request,
        "sign_in.html",
        session,
        next=_next(ui, request, request.query_params.get("next", "")),
        error="",
    )


async def sign_in(ui: UI, request: Request) -> Response:
    """Verify the pasted (or development) token, then keep it in the cookie."""
    data = await request.form(max_files=0, max_fields=10)
    target = _next(ui, request, str(data.get("next", "")))
    token = str(data.get("token", ""))
    if data.get("dev") and ui.dev_token is not None:
        token = ui.dev_token
    try:
        if not from_this_site(request):  # login CSRF: signing a victim into an attacker's account
            raise AuthFailed("sign-in must come from this site")
        await verify(ui.authenticate, token)
    except AuthFailed as exc:
        return ui.render(
            request, "sign_in.html", None, 401, next=target, error=f"Not signed in: {exc}"
        )
    response = RedirectResponse(target, status_code=303)
    set_cookie(response, request, token, ui.prefix(request))
    return response


async def sign_out(ui: UI, request: Request, session: Session) -> Response:
    """Forget the token (the form carries the CSRF token, checked by the guard)."""
    response = RedirectResponse(ui.url(request, "sign_in"), status_code=303)
    clear_cookie(response, ui.prefix(request))
    return response
