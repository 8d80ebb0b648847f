"""Who is signed in: the bearer token lives in an HttpOnly, SameSite=Strict cookie.

No server-side session exists (the service is stateless, as the seed's is): every request carries
the token and is verified again, so an expired or revoked token signs the user out at once.
Forms carry a CSRF token derived from the session token, which a page on another site cannot read
(the cookie is HttpOnly) nor compute; ``Sec-Fetch-Site``/``Origin`` are checked as well.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .._auth import AuthFailed

__all__ = [
    "COOKIE",
    "Authenticate",
    "Session",
    "clear_cookie",
    "csrf_token",
    "current_session",
    "from_this_site",
    "set_cookie",
    "verify",
]

COOKIE = "genstore_ui_token"
MAX_TOKEN = 8192
"""Longer values are refused before any verification (cookies are capped near 4 KB anyway)."""

Authenticate = Callable[[str], str | Awaitable[str]]
"""Takes an ``Authorization`` header value (``Bearer <token>``), returns the user id or raises
``AuthFailed``: ``JWTAuthenticator.user_id`` fits. A plain function runs in a worker thread (it
may fetch a JWKS); a coroutine function is awaited."""


@dataclass(frozen=True, slots=True)
class Session:
    """The signed-in user of one request."""

    user_id: str
    token: str

    @property
    def csrf(self) -> str:
        """The value every form of this session posts back."""
        return csrf_token(self.token)


def csrf_token(session_token: str) -> str:
    """A CSRF token bound to the session token: HMAC keyed by the token, so only its holder has it."""
    return hmac.new(session_token.encode(), b"genstore-ui-csrf", hashlib.sha256).hexdigest()


async def verify(authenticate: Authenticate, token: str) -> str:
    """The user id of ``token``; ``AuthFailed`` if it is malformed or not valid."""
    token = token.strip()
    if not token or len(token) > MAX_TOKEN or any(c.isspace() or c == ";" for c in token):
        raise AuthFailed("that is not a token")
    header = f"Bearer {token}"
    if inspect.iscoroutinefunction(authenticate):
        user: str = await authenticate(header)
        return user
    result = await run_in_threadpool(authenticate, header)
    if inspect.isawaitable(result):  # a callable object whose __call__ is async
        return str(await result)
    return result


async def current_session(request: Request, authenticate: Authenticate) -> Session | None:
    """The session of the request's cookie, or None when there is none or it no longer verifies."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        return Session(await verify(authenticate, token), token)
    except AuthFailed:
        return None


def from_this_site(request: Request) -> bool:
    """False for a request a browser says came from another site (cross-site form posts).

    ``Sec-Fetch-Site`` (which pages cannot forge) decides when present; older browsers send
    ``Origin``, compared with ``Host``: in a CSRF attempt the victim's browser writes both.
    Clients that are not browsers send neither; the CSRF token covers them.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def set_cookie(response: Response, request: Request, token: str, path: str) -> None:
    """Store the token for ``path`` (the UI's prefix): HttpOnly, SameSite=Strict, Secure on https."""
    response.set_cookie(
        COOKIE,
        token.strip(),
        path=path,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response: Response, path: str) -> None:
    """Sign out: the browser drops the cookie."""
    response.delete_cookie(COOKIE, path=path, httponly=True, samesite="strict")
