"""One finished request/response pair, and the record it becomes (built off the request path)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import genstore
from genstore import check_id  # the store's own rule for ids
from genstore._recording.rules import Redactor, error_message

from ._capture import CapturedBody
from ._extract import ResultExtractor, decode_data_url, resolve_url
from ._parse import ParseLimits, discard_unless_owned, media_type, parse_request

__all__ = ["Exchange", "RecordOptions", "media_type_of", "minimal_record", "to_record"]

logger = logging.getLogger(__name__)

_WORKFLOW_FIELDS = ("workflowAnalysis", "workflow_analysis")
_MAX_KEY = 200


@dataclass(frozen=True, slots=True)
class RecordOptions:
    """How exchanges become records (fixed per middleware)."""

    prompt_field: str
    redactor: Redactor
    result_extractor: ResultExtractor
    limits: ParseLimits


@dataclass(slots=True)
class Exchange:
    """Everything captured on the request path; plain data, handed to the background thread."""

    operation_type: str
    method: str
    path: str
    scheme: str
    server: tuple[str, int | None] | None
    root_path: str
    query_string: bytes
    request_headers: Sequence[tuple[bytes, bytes]]
    request_body: CapturedBody
    created_at: datetime
    status_code: int | None = None
    response_type: str = ""
    response_body: CapturedBody | None = None
    error: str | None = None
    """Why the request failed before a response was complete (an exception, a disconnect)."""
    duration_ms: float | None = None
    user_id: str | None = None

    def header(self, name: bytes) -> str | None:
        """A request header's value (``name`` lower-case), or None."""
        for key, value in self.request_headers:
            if key.lower() == name:
                return value.decode("latin-1")
        return None

    def base_url(self) -> str:
        """``scheme://host[:port]/root`` of the service, to resolve relative result URLs."""
        host = self.header(b"host")
        if host is None and self.server is not None:
            name, port = self.server
            host = name if port is None else f"{name}:{port}"
        return f"{self.scheme}://{host or 'localhost'}{self.root_path}"

    def discard(self) -> None:
        """Delete every captured body (used when the record cannot be built at all)."""
        self.request_body.discard()
        if self.response_body is not None:
            self.response_body.discard()


def _result(exchange: Exchange, options: RecordOptions, record: dict[str, Any]) -> list[str]:
    """Put the response's result (bytes, file or URL) into ``record``; return files handed over."""
    body = exchange.response_body
    if body is None:
        return []
    kind = exchange.response_type
    failed = exchange.status_code is None or exchange.status_code >= 400
    if failed or not body.usable:
        body.discard()
        return []
    if kind.startswith(("image/", "video/")):
        if body.path is not None:
            record["result"] = body.path
            return [body.path]
        record["result"] = b"".join(body.chunks)
        return []
    try:
        document = json.loads(body.read())
    except (ValueError, OSError) as exc:
        logger.info("genstore: could not parse the JSON response (%s)", exc)
        return []
    finally:
        body.discard()
    if isinstance(document, dict):
        for name in _WORKFLOW_FIELDS:
            if document.get(name) is not None:
                record["workflow_analysis"] = document[name]
                break
    try:
        found = options.result_extractor(document)
    except Exception:
        logger.exception("genstore: the result extractor raised; recording without a result")
        return []
    if not found:
        return []
    decoded = decode_data_url(found)
    if decoded is not None:
        record["result"] = decoded[0]
        return []
    url = resolve_url(found, exchange.base_url())
    if url is None:
        logger.info("genstore: result %r is not a URL genstore can download", found[:100])
    else:
        record["result_url"] = url
    return []


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


def to_record(exchange: Exchange, options: RecordOptions) -> tuple[list[str], dict[str, Any]]:
    """The files handed over and the ``save_complete_operation`` arguments for ``exchange``.

    Consumes the exchange: its bodies are either handed over (listed in the first item) or deleted.
    """
    error = _failure(exchange)
    record = _base(exchange, failed=error is not None)
    owned: list[str] = []
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
        record["prompt"] = parsed.prompt
        record["parameters"] = parsed.parameters or None
        record["input_images"] = parsed.inputs
        if error is not None:
            record["error"] = error
        owned.extend(_result(exchange, options, record))
    except BaseException:
        for path in owned:
            CapturedBody(path=path).discard()
        exchange.discard()
        raise
    return owned, record


def minimal_record(exchange: Exchange) -> dict[str, Any]:
    """What needs no parsing, for when ``to_record`` failed: a record is never silently dropped."""
    exchange.discard()
    error = exchange.error
    if error is None and (exchange.status_code is None or exchange.status_code >= 400):
        error = f"HTTP {exchange.status_code}"
    record = _base(exchange, failed=error is not None)
    if error is not None:
        record["error"] = error
    return record


def media_type_of(headers: Sequence[tuple[bytes, bytes]]) -> str:
    """The media type of a header list's ``content-type`` (lower-case, no parameters)."""
    for key, value in headers:
        if key.lower() == b"content-type":
            return media_type(value.decode("latin-1"))
    return ""
