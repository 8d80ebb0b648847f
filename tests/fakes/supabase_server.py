"""A FAKE Supabase (Storage + PostgREST) at the HTTP boundary, for tests: no real server exists here.

It is a fake, not Supabase. It follows ``/work/shared/SUPABASE_STORAGE_API.md`` (the contract
observed against storage-api v1.70.6 with storage3 2.34.1) for Storage, under ``/storage/v1/``:
buckets (create, get, list, delete, empty), upload (POST, ``x-upsert``) and update (PUT) as
multipart, download (with ``Range``), info, list v1 and v2 (``_supabase_list``: v1 folds case
and merges folders that differ only in case, 1,500 entries at most; v2 lists whole keys, exact
prefixes, 1,000 a page with a cursor), signed URLs (one and many; fetching one needs no auth and
checks the token), public URLs, move, copy, remove. Errors are the real ones: HTTP 400 with the
real status as a *string* in ``{"statusCode", "error", "message", "code"}``, except the real HTTP
500 ``DatabaseError`` (JWT role that is not a database role) and the real HTTP 416 (bad ``Range``).

Where the real server surprises, the fake does the same (each checked against it by
tests/adapters/test_supabase_fake_vs_real.py): ``x-upsert: false`` is a check before the upload,
so racing uploads to one key may all succeed; keys are URL-decoded (``%41`` is ``A``) and refused
with ``InvalidKey`` outside storage-api's alphabet (``~``, ``[``, ``]``, ``%``, ``#``,
non-ASCII); a bad signed-URL token is ``InvalidJWT``, a token for another object
``InvalidSignature``, and signing in a missing bucket is ``NoSuchKey``.

Under ``/rest/v1/`` it answers the PostgREST calls the supabase client makes for genstore's two
tables (columns, keys, defaults and checks as in ``migration.sql``; ``tables_version = 1`` serves
its first version's, without ``store``): select with ``eq neq lt lte gt gte is
in`` filters (and ``not.``), ``or=(...)``/``and=(...)`` trees with quoted values, multi-column
``order``, ``limit``/``offset`` and the ``Range`` header, ``Prefer: count=exact`` with
``Content-Range`` and the real 206/416 statuses, a ``db-max-rows`` cap, single-object ``Accept``,
insert and upsert (``Prefer: resolution=merge-duplicates|ignore-duplicates`` with
``on_conflict``), update and delete with filters (``pg-safeupdate``: none without a filter).
Its errors carry PostgREST's codes (``PGRST205`` missing table, ``23505``, ``23502``, ``42703``...).

Auth, as through the Supabase gateway: every request needs an ``apikey`` (HS256 JWT signed with
the fake's secret); ``Authorization: Bearer <jwt>`` picks the role. ``service_role`` bypasses
row-level security; ``authenticated`` and ``anon`` see what the migration's policies allow (own
rows and objects under ``images/<sub>/``) and may not write.

Left out: the S3 endpoint, resumable (TUS) uploads, image transforms, the v2 list, bucket
updates, every other PostgREST feature (embedding, RPC, aggregates, JSON paths, text search), and
PostgreSQL semantics beyond what is listed (text compares by code point, as the migration's
``collate "C"`` columns do).

Failure injection for retry tests: ``fail_next(n, status)`` answers the next ``n`` requests with
that status and a gateway-style plain-text body; ``delay_next(n, seconds)`` holds them first.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["FakeSupabase", "StoredObject", "running_fake_supabase"]

DB_ROLES = frozenset({"anon", "authenticated", "service_role"})


@dataclass
class StoredObject:
    """One object in a fake bucket."""

    data: bytes
    content_type: str
    cache_control: str = "max-age=3600"
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def etag(self) -> str:
        return hashlib.md5(self.data, usedforsecurity=False).hexdigest()


@dataclass
class Bucket:
    """A fake bucket and its objects (full path -> object)."""

    id: str
    public: bool = False
    file_size_limit: int | None = None
    allowed_mime_types: list[str] | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    objects: dict[str, StoredObject] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        stamp = self.created_at.isoformat().replace("+00:00", "Z")
        return {
            "id": self.id,
            "name": self.id,
            "owner": "",
            "public": self.public,
            "file_size_limit": self.file_size_limit,
            "allowed_mime_types": self.allowed_mime_types,
            "created_at": stamp,
            "updated_at": stamp,
            "type": "STANDARD",
        }


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: a database role and the JWT's ``sub``."""

    role: str
    sub: str | None = None

    @property
    def privileged(self) -> bool:
        return self.role == "service_role"


class AuthFailure(Exception):
    """The request's JWT is missing, bad, expired, or names an unknown role."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "missing" | "invalid" | "expired" | "role"
        self.message = message


class FakeSupabase:
    """State and behaviour of the fake; ``app`` is the ASGI app, see ``running_fake_supabase``."""

    def __init__(self, *, jwt_secret: str = "fake-supabase-secret-at-least-32-bytes!!") -> None:
        self.jwt_secret = jwt_secret
        self.lock = threading.RLock()
        self.service_role_key = self.make_jwt("service_role")
        self.anon_key = self.make_jwt("anon")
        self.max_rows = 1000
        """PostgREST's ``db-max-rows``: larger answers are cut silently."""
        self.global_file_size_limit = 50 * 1024 * 1024
        self.reset()
        from ._supabase_postgrest_routes import postgrest_routes
        from ._supabase_storage_routes import storage_routes

        self.app: ASGIApp = _Gateway(
            Starlette(
                routes=[
                    Mount("/storage/v1", routes=storage_routes(self)),
                    Mount("/rest/v1", routes=postgrest_routes(self)),
                ]
            ),
            self,
        )

    def reset(self) -> None:
        """Forget every bucket, row, injected failure and logged request."""
        with self.lock:
            self.buckets: dict[str, Bucket] = {}
            self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {
                "genstore_operations": {},
                "genstore_images": {},
            }
            self.tables_installed = True
            self.tables_version = 2
            """2: the tables of migration.sql; 1: its first version's (no ``store`` column)."""
            self.requests: list[tuple[str, str]] = []
            self._failures: list[tuple[int, str, bool, str]] = []
            self._delays: list[float] = []

    def apply_migration(self) -> None:
        """What applying migration.sql to the first version's tables does (checked on the real
        PostgreSQL by test_supabase_stores.py): a ``store`` column, ``''`` in every row, leading
        every key."""
        with self.lock:
            for name, rows in self.tables.items():
                self.tables[name] = {
                    ("", *key): {"store": ""} | row if "store" not in row else row
                    for key, row in rows.items()
                }
            self.tables_version = 2

    # -- auth -------------------------------------------------------------------------------

    def make_jwt(self, role: str, *, sub: str | None = None, expires_in: int = 3600) -> str:
        """A JWT signed with the fake's secret (``expires_in`` may be negative: expired)."""
        now = int(time.time())
        claims: dict[str, Any] = {"role": role, "iat": now, "exp": now + expires_in}
        if sub is not None:
            claims["sub"] = sub
        return jwt.encode(claims, self.jwt_secret, algorithm="HS256")

    def decode(self, token: str) -> dict[str, Any]:
        """Claims of a token signed by this fake; ``AuthFailure`` otherwise."""
        try:
            claims: dict[str, Any] = jwt.decode(token, self.jwt_secret, algorithms=["HS256"])
        except jwt.ExpiredSignatureError as exc:
            raise AuthFailure("expired", "jwt expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthFailure("invalid", str(exc) or "invalid signature") from exc
        return claims

    def caller(self, request: Request) -> Caller:
        """The caller of a request that passed the gateway: from ``Authorization``."""
        header = request.headers.get("authorization", "")
        if not header:
            raise AuthFailure("missing", "no authorization header")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthFailure("invalid", "authorization is not a bearer token")
        claims = self.decode(token)
        role = str(claims.get("role", "anon"))
        if role not in DB_ROLES:
            raise AuthFailure("role", f'role "{role}" does not exist')
        sub = claims.get("sub")
        return Caller(role, str(sub) if sub is not None else None)

    # -- failure injection ------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 503,
        body: str = "",
        *,
        after_handling: bool = False,
        path: str = "",
    ) -> None:
        """Answer the next ``n`` requests with ``status`` (a gateway's plain-text error page).

        ``after_handling``: the request is carried out first and only its reply is lost, as when
        a gateway times out after the server committed. ``path``: only requests whose path
        contains it count (others pass untouched).
        """
        text = body or "upstream connect error or disconnect/reset before headers"
        with self.lock:
            self._failures.extend([(status, text, after_handling, path)] * n)

    def delay_next(self, n: int, seconds: float) -> None:
        """Hold the next ``n`` requests ``seconds`` before handling them (client timeouts)."""
        with self.lock:
            self._delays.extend([seconds] * n)

    def _take_fault(self, path: str) -> tuple[float, tuple[int, str, bool] | None]:
        with self.lock:
            delay = self._delays.pop(0) if self._delays else 0.0
            for i, (status, text, after_handling, wanted) in enumerate(self._failures):
                if wanted in path:
                    del self._failures[i]
                    return delay, (status, text, after_handling)
        return delay, None

    def count(self, method: str, path_prefix: str) -> int:
        """How many logged requests had ``method`` and a path starting with ``path_prefix``."""
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and p.startswith(path_prefix))


class _Gateway:
    """What Kong does in front of Supabase: logs, injected faults, and the ``apikey`` check."""

    def __init__(self, app: ASGIApp, fake: FakeSupabase) -> None:
        self.app = app
        self.fake = fake

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.fake.lock:
            self.fake.requests.append((scope["method"], scope["path"]))
        delay, failure = self.fake._take_fault(scope["path"])
        if delay:
            await asyncio.sleep(delay)
        if failure is not None:
            status, text, after_handling = failure
            if after_handling:

                async def swallow(message: Message) -> None:
                    pass

                await self._checked(scope, receive, swallow)
            await Response(text, status_code=status, media_type="text/plain")(scope, receive, send)
            return
        await self._checked(scope, receive, send)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _is_tokenised(scope):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        apikey = headers.get(b"apikey", b"").decode("latin-1")
        if not apikey:
            await JSONResponse({"message": "No API key found in request"}, 401)(
                scope, receive, send
            )
            return
        try:
            # Kong matches the key against the project's keys; it does not look at expiry.
            jwt.decode(
                apikey, self.fake.jwt_secret, algorithms=["HS256"], options={"verify_exp": False}
            )
        except jwt.PyJWTError:
            await JSONResponse({"message": "Invalid API key"}, 401)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _is_tokenised(scope: Scope) -> bool:
    """Signed and public object URLs are fetched without any key, as the real gateway allows."""
    path: str = scope["path"]
    return scope["method"] in ("GET", "HEAD") and path.startswith(
        ("/storage/v1/object/sign/", "/storage/v1/object/public/")
    )


@contextmanager
def running_fake_supabase(fake: FakeSupabase | None = None) -> Iterator[tuple[FakeSupabase, str]]:
    """Serve a fake with uvicorn on 127.0.0.1 (a free port, a background thread).

    Yields the fake and its base URL (``SUPABASE_URL``); stops the server on exit.
    """
    fake = fake or FakeSupabase()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        fake.app,
        log_level="warning",
        lifespan="off",
        ws="none",
        http="h11",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="fake-supabase", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake Supabase server did not start")
        time.sleep(0.01)
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
