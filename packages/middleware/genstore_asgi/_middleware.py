"""``RecordingMiddleware``: record an ASGI app's generation routes without touching their code."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from time import perf_counter, time_ns
from typing import Any, TypeAlias

import anyio.to_thread
from genstore._recording.rules import Redact, Redactor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._capture import BodyTee
from ._exchange import RECORD_HEADERS, Exchange, RecordOptions, media_type_of
from ._extract import ResultExtractor, default_result_extractor
from ._handoff import Handoff, StoreLike
from ._parse import ParseLimits
from ._routes import RouteMatcher, Routes, RouteSpec
from ._stream import STREAM_TYPES, StreamTee

__all__ = ["RecordStatuses", "RecordingMiddleware", "UserId"]

logger = logging.getLogger(__name__)

UserId: TypeAlias = str | Callable[[Scope], str | None] | None
"""A fixed user id, or a callable given the ASGI scope (after the response) returning one."""

RecordStatuses: TypeAlias = Callable[[int], bool] | Collection[int]
"""The response statuses recorded: a predicate given the status, or the statuses themselves."""

UNRECORDED_STATUSES = frozenset({401, 403, 407, 429})
"""Not recorded by default: answers to unauthenticated, forbidden or rate-limited requests say
nothing about a generation, and anyone could write records with them."""

_MiB = 1024 * 1024
_UNSEEN: Any = object()
_ERROR_TEXT_LIMIT = 64 * 1024
_STREAM_BUDGET = 8 * _MiB
"""Bytes of a stream's newest candidate events kept (see ``_stream``)."""


def _status_rule(record_statuses: RecordStatuses | None) -> Callable[[int], bool]:
    if record_statuses is None:
        return lambda status: status not in UNRECORDED_STATUSES
    if callable(record_statuses):
        return record_statuses
    statuses = frozenset(record_statuses)
    return statuses.__contains__


class RecordingMiddleware:
    """Records the requests of ``routes`` as genstore operations, after their response is sent.

    ``routes``: ``{path or glob: route value}`` or a callable(scope) -> route value | None; a
    route value is an operation type, ``Operation(type, results=False)``, ``JobStart(type,
    job_id=)`` or ``JobComplete(job_id=, done=)`` (see ``genstore_asgi._routes``).
    ``store``: where records go (``genstore.default_store()`` if None); never closed by this class.
    ``user_id``: a string, or a callable(scope) -> user id | None.
    ``prompt_field``: the request field holding the prompt; other fields become ``parameters``.
    ``result_extractor``: callable(parsed JSON response) -> its outputs (a URL, ``bytes``, an
    ``Output`` or a list of them, or None); by default genstore's shared extraction, which finds
    every output of the common providers' shapes, in order.
    ``base_url``: where relative result URLs (``/files/x.png``) are fetched from; by default the
    address the server is bound to (never the request's ``Host`` header).
    ``record_statuses``: which response statuses are recorded (a predicate or a collection);
    by default all but 401, 403, 407 and 429.
    ``redact``: more field names to drop (credential-like names always are), or a predicate.
    ``max_body_in_memory``: bodies beyond this are spooled to disk while they stream.
    ``max_body``: bodies beyond this are not recorded (the request is, without them).
    ``record_methods``: the HTTP methods recorded on matching routes (``JobComplete`` routes
    name their own: GET and POST).
    ``write_ahead``: before a response's last chunk goes out, its exchange is appended to this
    process's journal beside the recorder's spool (a copy into a mapped file, no fsync; see
    ``_journal``), so a process killed at any instant loses no answered request: the next process
    to start replays what the journal holds. False keeps records in memory until saved (lost on
    SIGKILL).

    Everything else — non-HTTP scopes, other methods, unmatched paths — is passed straight to the
    app with the original ``receive`` and ``send``; only a lifespan's ``receive`` is watched: on
    ``lifespan.startup`` the store's recorder is started (so it replays what an earlier process
    spooled or journaled), on ``lifespan.shutdown`` the pending records are drained into the recorder and
    flushed (up to ``shutdown_timeout`` seconds). The store itself is never closed.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: StoreLike | None = None,
        routes: Routes,
        user_id: UserId = None,
        prompt_field: str = "prompt",
        result_extractor: ResultExtractor | None = None,
        redact: Redact = (),
        max_body_in_memory: int = _MiB,
        max_body: int | None = 1024 * _MiB,
        max_document: int = 32 * _MiB,
        record_methods: Iterable[str] = ("POST",),
        record_statuses: RecordStatuses | None = None,
        base_url: str | None = None,
        spool_dir: str | None = None,
        shutdown_timeout: float = 10.0,
        write_ahead: bool = True,
    ) -> None:
        self.app = app
        self.record_methods = frozenset(method.upper() for method in record_methods)
        self.matcher = RouteMatcher(routes, self.record_methods)
        self._seen: dict[str, Any] = self.matcher.seen
        self._methods = self.matcher.methods
        self.records_status = _status_rule(record_statuses)
        self.user_id = user_id
        self.max_body_in_memory = max_body_in_memory
        self.max_body = max_body
        self.max_document = max_document
        self.spool_dir = spool_dir
        self.shutdown_timeout = shutdown_timeout
        options = RecordOptions(
            prompt_field=prompt_field,
            redactor=Redactor(redact),
            result_extractor=result_extractor or default_result_extractor,
            limits=ParseLimits(max_body_in_memory, max_document, spool_dir),
            base_url=base_url.rstrip("/") if base_url else None,
        )
        self.handoff = Handoff(store, options, self._respec if write_ahead else None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope["type"]
        if scope_type == "http":
            method = scope["method"]
            if method in self._methods:
                # Inlined cache lookup: this is the cost every unrecorded request pays.
                spec = self._seen.get(scope["path"], _UNSEEN)
                if spec is _UNSEEN:
                    spec = self._route(scope)
                if spec is not None and method in spec.methods:
                    await RecordingResponder(self, spec)(scope, receive, send)
                    return
        elif scope_type == "lifespan":
            receive = self._lifespan_receive(receive)
        await self.app(scope, receive, send)

    def _route(self, scope: Scope) -> RouteSpec | None:
        try:
            return self.matcher.match(scope)
        except Exception:
            logger.exception("genstore: the routes callable raised; not recording this request")
            return None

    def _respec(self, method: str, path: str, operation_type: str, pattern: str) -> RouteSpec:
        """The route a journaled request of an earlier process is recorded under: what the routes
        say of it now, else a plain operation of the type it was recorded as."""
        scope = {"type": "http", "method": method, "path": path, "headers": []}
        spec = self._route(scope)
        if spec is not None and method in spec.methods:
            return spec
        return RouteSpec(operation_type, frozenset({method}), pattern=pattern)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def receive_lifespan() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await anyio.to_thread.run_sync(self._start_recorder)
            elif message["type"] == "lifespan.shutdown":
                await self.drain()
            return message

        return receive_lifespan

    def _start_recorder(self) -> None:
        # Made now rather than at the first recorded request, a recorder replays what an earlier
        # process left in the spool straight away, even if no request comes.
        try:
            self.handoff.start()  # opens the store's recorder and this process's journal
        except Exception:
            logger.exception("genstore: the store's recorder could not be started")

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every finished request reached the store's recorder and the recorder saved
        or spooled it; False if ``timeout`` (default ``shutdown_timeout``) seconds ran out."""
        limit = self.shutdown_timeout if timeout is None else timeout
        done = self.handoff.drain(limit)
        if not done:
            logger.warning("genstore: records still pending after %.1fs", limit)
        return done

    async def drain(self) -> bool:
        """``flush`` for async code (runs in a worker thread): what ``lifespan.shutdown`` calls."""
        return await anyio.to_thread.run_sync(self.flush)


class RecordingResponder:
    """One recorded request: tees its body and its response, then hands them over once sent."""

    __slots__ = (
        "app",
        "disconnected",
        "ended",
        "exchange",
        "middleware",
        "receive",
        "request_tee",
        "response_tee",
        "response_type",
        "scope",
        "send",
        "skipped",
        "spec",
        "started",
        "status_code",
        "stream_tee",
        "submitted",
        "trailers",
    )

    def __init__(self, middleware: RecordingMiddleware, spec: RouteSpec) -> None:
        self.middleware = middleware
        self.app = middleware.app
        self.spec = spec
        self.request_tee = BodyTee(
            max_in_memory=middleware.max_body_in_memory,
            max_body=middleware.max_body,
            spool_dir=middleware.spool_dir,
        )
        self.response_tee: BodyTee | None = None
        self.stream_tee: StreamTee | None = None
        self.response_type = ""
        self.status_code: int | None = None
        self.trailers = False
        self.disconnected = False
        self.submitted = False
        self.exchange: Exchange | None = None
        """Built and journaled when the response ended (5xx: before the app returned)."""
        self.skipped = False
        self.ended = False
        """The response was sent whole, and its record waits for the app to return (5xx: the
        exception behind it is still on its way up)."""
        self.started = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.started = perf_counter()
        try:
            await self.app(scope, self.receive_with_tee, self.send_with_tee)
        except BaseException as exc:
            # Starlette's ServerErrorMiddleware (inside us when the whole app is wrapped) has
            # already answered 500 and re-raised: the exception says more than its answer.
            self.finish(describe(exc))
            raise
        if self.ended:
            self.finish()
        elif not self.submitted:
            self.finish(
                "the client disconnected before the response was sent"
                if self.disconnected
                else "the application returned without completing the response"
            )

    async def receive_with_tee(self) -> Message:
        message = await self.receive()
        if message["type"] == "http.request":
            if not self.submitted:
                more_body = message.get("more_body", False)
                self.request_tee.feed(message.get("body", b""), more=more_body)
        elif message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    async def send_with_tee(self, message: Message) -> None:
        # The exchange is handed over just before the response's last message goes to the
        # server: once a client has the whole answer, its record is already queued.
        message_type = message["type"]
        if message_type == "http.response.start":
            self._start(message)
        elif message_type == "http.response.body":
            more_body = message.get("more_body", False)
            stream = self.stream_tee
            if stream is not None and more_body:
                await self.send(message)  # a stream's events are not held back for the tee
                stream.feed(message.get("body", b""), more=True)
                return
            tee = stream or self.response_tee
            if tee is not None:
                tee.feed(message.get("body", b""), more=more_body)
            if not more_body and not self.trailers:
                self._ended()
        elif message_type == "http.response.trailers":
            if not message.get("more_trailers", False):
                self._ended()
        elif message_type == "http.response.zerocopysend":
            if not message.get("more_body", False) and not self.trailers:
                self._ended()
        elif message_type == "http.response.pathsend":
            self._ended()
        await self.send(message)

    def _start(self, message: Message) -> None:
        status: int = message["status"]
        self.status_code = status
        self.trailers = message.get("trailers", False)
        if not self.middleware.records_status(status):
            self.skipped = True
            return
        self.response_type = media_type_of(message.get("headers", ()))
        if status < 400 and self.response_type in STREAM_TYPES:
            self.stream_tee = StreamTee(
                self.response_type, budget=_STREAM_BUDGET, max_event=self.middleware.max_document
            )
        else:
            self.response_tee = self._response_tee()

    def _ended(self) -> None:
        if self.status_code is not None and self.status_code >= 500:
            # Finished when the app returns or raises (see __call__), but journaled now: the
            # client is about to have the whole answer.
            self.ended = True
            if not self.skipped:
                self._write_ahead()
        else:
            self.finish()

    def _response_tee(self) -> BodyTee | None:
        kind = self.response_type
        middleware = self.middleware
        if self.status_code is not None and self.status_code >= 400 and "json" not in kind:
            return BodyTee(
                max_in_memory=_ERROR_TEXT_LIMIT, max_body=_ERROR_TEXT_LIMIT, spool_dir=None
            )
        if kind.startswith(("image/", "video/")):
            return BodyTee(
                max_in_memory=middleware.max_body_in_memory,
                max_body=middleware.max_body,
                spool_dir=middleware.spool_dir,
            )
        if kind == "application/json" or kind.endswith("+json"):
            return BodyTee(
                max_in_memory=middleware.max_body_in_memory,
                max_body=middleware.max_document,
                spool_dir=middleware.spool_dir,
            )
        return None

    def finish(self, error: str | None = None) -> None:
        """Hand the exchange over (once); never raises into the app."""
        if self.submitted:
            return
        self.submitted = True
        if self.skipped:  # a status not recorded (401, 429, ...): drop what was captured
            self.request_tee.discard()
            return
        handoff = self.middleware.handoff
        exchange = self.exchange
        if exchange is None:
            exchange = self._write_ahead(error)
            if exchange is None:
                return
        elif error is not None:  # a 5xx answer, journaled before the app raised
            exchange.error = error
            handoff.amend(exchange)
        handoff.submit(exchange)

    def _write_ahead(self, error: str | None = None) -> Exchange | None:
        """The exchange as it stands, written to the journal; None if it could not be built."""
        scope = self.scope
        try:
            exchange = Exchange(
                spec=self.spec,
                method=scope["method"],
                path=scope["path"],
                scheme=scope.get("scheme", "http"),
                server=scope.get("server"),
                root_path=scope.get("root_path", ""),
                query_string=scope.get("query_string", b""),
                request_headers=[
                    (k, v) for k, v in scope.get("headers", ()) if k.lower() in RECORD_HEADERS
                ],
                request_body=self.request_tee.finish(),
                created_ns=time_ns(),
                status_code=self.status_code,
                response_type=self.response_type,
                response_body=self.response_tee.finish() if self.response_tee else None,
                response_stream=self.stream_tee.finish() if self.stream_tee else None,
                error=error,
                duration_ms=(perf_counter() - self.started) * 1000.0,
                user_id=self._user_id(scope),
            )
        except Exception:
            logger.exception("genstore: could not record a request to %s", scope.get("path"))
            self.request_tee.discard()
            if self.response_tee is not None:
                self.response_tee.discard()
            return None
        self.exchange = exchange
        self.middleware.handoff.write_ahead(exchange)
        return exchange

    def _user_id(self, scope: Scope) -> str | None:
        user_id = self.middleware.user_id
        if user_id is None or isinstance(user_id, str):
            return user_id
        try:
            value = user_id(scope)
        except Exception:
            logger.exception("genstore: the user_id callable raised; recording without a user")
            return None
        return None if value is None else str(value)


def describe(exc: BaseException) -> str:
    """How an exception is recorded: ``RuntimeError: boom`` (a group of one: its exception)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    message = str(exc)
    name = type(exc).__name__
    return f"{name}: {message}" if message else name
