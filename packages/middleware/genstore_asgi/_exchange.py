"""One finished request/response pair, and the record it becomes (built off the request path)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import genstore
from genstore import check_id  # the store's own rule for ids
from genstore._ids import operation_id_from
from genstore._recording.items import Recordable
from genstore._recording.rules import Redactor, error_message
from genstore._save_request import SaveRequest

from ._capture import CapturedBody
from ._extract import ResultExtractor, server_base_url
from ._jobs import complete_job, start_job
from ._parse import ParseLimits, discard_unless_owned, media_type, parse_request
from ._results import NO_RESULT, Answer, read_answer
from ._routes import JobComplete, JobStart, RouteSpec
from ._stream import StreamEvents

__all__ = [
    "RECORD_HEADERS",
    "Exchange",
    "RecordOptions",
    "media_type_of",
    "minimal_record",
    "to_record",
]

logger = logging.getLogger(__name__)

_MAX_KEY = 200
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RECORD_HEADERS = frozenset({b"content-type", b"idempotency-key"})
"""The request headers a record reads; no other is kept (nor journaled): credentials stay out."""


@dataclass(slots=True)
class RecordOptions:
    """How exchanges become records (fixed per middleware)."""

    prompt_field: str
    redactor: Redactor
    result_extractor: ResultExtractor
    limits: ParseLimits
    base_url: str | None = None
    """Where relative result URLs resolve (else the server's own bound address)."""
    warned: set[str] = field(default_factory=set)
    """Route patterns already warned about a success without a result."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def no_result(self, pattern: str) -> str:
        """The note for a success without outputs; warns once per route pattern."""
        with self.lock:
            first = pattern not in self.warned
            self.warned.add(pattern)
        if first:
            logger.warning(
                "genstore: %s answered a success with no result found; recorded with a note "
                "(declare it Operation(..., results=False) if it has none)",
                pattern,
            )
        return NO_RESULT


@dataclass(slots=True)
class Exchange:
    """Everything captured on the request path; plain data, handed to the background thread."""

    spec: RouteSpec
    method: str
    path: str
    scheme: str
    server: tuple[str, int | None] | None
    root_path: str
    query_string: bytes
    request_headers: Sequence[tuple[bytes, bytes]]
    """Only those of ``RECORD_HEADERS``."""
    request_body: CapturedBody
    created_ns: int
    """When the request was answered: ``time.time_ns()`` (exact in the journal, cheap to take)."""
    status_code: int | None = None
    response_type: str = ""
    response_body: CapturedBody | None = None
    response_stream: StreamEvents | None = None
    error: str | None = None
    """Why the request failed before a response was complete (an exception, a disconnect), or
    the exception behind a 5xx answer."""
    duration_ms: float | None = None
    user_id: str | None = None
    seed: bytes | None = None
    """Set once the exchange is in the write-ahead journal: its record's operation id is drawn
    from it, so a replay of the entry after a crash finds the record instead of adding one."""
    settle: Callable[[], None] | None = None
    """Tells the journal the record is saved, spooled or refused (the entry can go)."""

    @property
    def created_at(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self.created_ns // 1000)

    @property
    def operation_id(self) -> str | None:
        """The record's operation id when the exchange is journaled (else the recorder picks)."""
        if self.seed is None:
            return None
        return operation_id_from(self.created_ns // 1_000_000, self.seed)

    @property
    def operation_type(self) -> str:
        return self.spec.operation_type

    def header(self, name: bytes) -> str | None:
        """A request header's value (``name`` lower-case), or None."""
        for key, value in self.request_headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def server_url(self) -> str | None:
        """The server's own bound address (never the ``Host`` header: the client sets that)."""
        return server_base_url(self.scheme, self.server, self.root_path)

    def discard(self) -> None:
        """Delete every captured body (used when the record cannot be built at all)."""
        self.request_body.discard()
        if self.response_body is not None:
            self.response_body.discard()


def _failure(exchange: Exchange) -> str | None:
    if exchange.error is not None:
        return exchange.error
    status = exchange.status_code
    if status is None or status < 400:
        return None
    body = exchange.response_body
    text = b""
    if body is not None and body.usable:
        try:
            text = body.read()
        except OSError:
            text = b""
    return error_message(text, exchange.response_type, status)


def _base(exchange: Exchange, failed: bool) -> dict[str, Any]:
    return {
        "operation_type": exchange.operation_type,
        "request": genstore.RequestInfo(
            route=exchange.path, method=exchange.method, status_code=exchange.status_code
        ),
        "created_at": exchange.created_at,
        "operation_id": exchange.operation_id,
        "duration_ms": exchange.duration_ms,
        "user_id": _user_id(exchange.user_id),
        "idempotency_key": idempotency_key(exchange.header(b"idempotency-key"), failed=failed),
    }


def idempotency_key(header: str | None, *, failed: bool) -> str | None:
    """The record's idempotency key for a request's ``Idempotency-Key`` header.

    A failed attempt gets the header plus ``#failed``: the client's retry with the same header
    is a new operation that must be recorded, not folded into the failure. Keys past 200
    characters become their SHA-256 (the store accepts up to 512).
    """
    if header is None or not header.strip():
        return None
    key = header.strip()
    if len(key) > _MAX_KEY:
        key = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key + "#failed" if failed else key


def _user_id(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_id(value, "user_id")
    except genstore.InvalidInput as exc:
        # The store would refuse the whole record: keep the record, lose only the user id.
        logger.warning("genstore: recording without the user id: %s", exc)
        return None


def to_record(exchange: Exchange, options: RecordOptions, owned: list[str]) -> Recordable | None:
    """What ``exchange`` records: a save, a job's completion, or None (a poll of a running job).

    Consumes the exchange: its bodies are handed over (appended to ``owned``) or deleted.
    ``InvalidInput`` when the store would refuse the record (the caller rejects it, with
    ``owned``).
    """
    spec = exchange.spec
    error = _failure(exchange)
    fields = _base(exchange, failed=error is not None)
    try:
        parsed = parse_request(
            exchange.request_body,
            exchange.header(b"content-type") or "",
            exchange.query_string,
            prompt_field=options.prompt_field,
            redactor=options.redactor,
            limits=options.limits,
        )
        discard_unless_owned(exchange.request_body, parsed)
        owned.extend(parsed.owned)
        fields["prompt"] = parsed.prompt
        fields["parameters"] = parsed.parameters or None
        fields["input_images"] = parsed.inputs
        if error is not None:
            fields["error"] = error
            if exchange.response_body is not None:
                exchange.response_body.discard()
            return _failed(spec, fields)
        answer = _answer(exchange, options)
        owned.extend(answer.owned)
    except BaseException:
        for path in owned:
            CapturedBody(path=path).discard()
        owned.clear()
        exchange.discard()
        raise
    if answer.workflow_analysis is not None:
        fields["workflow_analysis"] = answer.workflow_analysis
    return _succeeded(spec, fields, answer, parsed.document, exchange, options)


def _answer(exchange: Exchange, options: RecordOptions) -> Answer:
    base = options.base_url

    def base_url() -> str | None:
        return base if base is not None else exchange.server_url()

    return read_answer(
        exchange.response_body,
        exchange.response_stream,
        exchange.response_type,
        options.result_extractor,
        base_url,
    )


def _failed(spec: RouteSpec, fields: dict[str, Any]) -> SaveRequest | None:
    if isinstance(spec.job, JobComplete):
        return None  # a failed poll or webhook says nothing about the job
    return SaveRequest.build(**fields)


def _succeeded(
    spec: RouteSpec,
    fields: dict[str, Any],
    answer: Answer,
    request_document: Any,
    exchange: Exchange,
    options: RecordOptions,
) -> Recordable | None:
    def note() -> str:
        return options.no_result(spec.pattern)

    if isinstance(spec.job, JobStart):
        return start_job(spec.job, fields, answer.document, answer.outputs, note)
    if isinstance(spec.job, JobComplete):
        base = options.base_url if options.base_url is not None else exchange.server_url()
        fields["input_images"] = []  # a webhook's data: URLs are the job's outputs, not inputs
        documents = [(answer.document, answer.outputs), (request_document, None)]
        return complete_job(spec.job, fields, documents, base, note)
    outputs = answer.outputs
    notes = list(outputs.notes)
    if not outputs.found and spec.results:
        notes.append(note())
    return SaveRequest.build(
        **fields, outputs=outputs.sources, result_note="; ".join(notes) or None
    )


def minimal_record(exchange: Exchange) -> SaveRequest | None:
    """What needs no parsing, for when ``to_record`` failed: a record is never silently dropped
    (a job's poll or webhook excepted: without its body it says nothing)."""
    exchange.discard()
    if isinstance(exchange.spec.job, JobComplete):
        return None
    error = exchange.error
    if error is None and (exchange.status_code is None or exchange.status_code >= 400):
        error = f"HTTP {exchange.status_code}"
    fields = _base(exchange, failed=error is not None)
    if error is not None:
        fields["error"] = error
    return SaveRequest.build(**fields)


def media_type_of(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The media type of a header list's ``content-type`` (lower-case, no parameters)."""
    for key, value in headers:
        if key.lower() == b"content-type":
            return media_type(value.decode("latin-1"))
    return ""
