"""Turning a captured request into prompt, parameters and input images (run off the request path).

JSON objects give ``prompt`` (the configured field) and ``parameters`` (every other field);
multipart and urlencoded forms give their fields the same way and their uploaded files as input
images; a raw ``image/*`` body is itself the input. Query parameters are merged in (body fields win
on a name clash). Credential-like names are dropped before anything is kept.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from genstore._recording.rules import Redactor
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from ._capture import BodyTee, CapturedBody, _unlink
from ._extract import decode_data_url

__all__ = ["ParseLimits", "ParsedRequest", "media_type", "parse_request"]

logger = logging.getLogger(__name__)

Input = bytes | str
"""An input image: its bytes, or the path of a temporary file holding them."""


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Size limits for parsing (all in bytes)."""

    max_in_memory: int
    """Beyond this an uploaded file is spooled to a temporary file."""
    max_document: int
    """JSON and urlencoded bodies larger than this are not parsed (they are read whole)."""
    spool_dir: str | None = None
    """Where spooled files go (the system temporary directory when None)."""


@dataclass(slots=True)
class ParsedRequest:
    """What a request asked for."""

    prompt: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: list[Input] = field(default_factory=list)
    owned: list[str] = field(default_factory=list)
    """Temporary files among ``inputs``: whoever records them deletes them."""
    document: Any = None
    """A JSON body as parsed (redacted; its ``data:`` URLs still in place), else None."""


def media_type(content_type: str) -> str:
    """``image/png`` for ``image/png; charset=x``: the lower-cased type without parameters."""
    return content_type.partition(";")[0].strip().lower()


def _add(fields: dict[str, Any], name: str, value: Any) -> None:
    if name in fields:
        existing = fields[name]
        if isinstance(existing, list):
            existing.append(value)
        else:
            fields[name] = [existing, value]
    else:
        fields[name] = value


def _pairs_to_fields(pairs: list[tuple[str, str]], redactor: Redactor) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name, value in pairs:
        if not redactor.is_secret(name, in_query=True):
            _add(fields, name, value)
    return fields


def _take_data_urls(value: Any, inputs: list[Input]) -> Any:
    """Move ``data:image/...`` strings into ``inputs``, leaving ``input_images[i]`` in place."""
    if isinstance(value, str):
        if value.startswith(("data:image/", "data:video/")):
            decoded = decode_data_url(value)
            if decoded is not None:
                inputs.append(decoded[0])
                return f"input_images[{len(inputs) - 1}]"
        return value
    if isinstance(value, dict):
        return {key: _take_data_urls(item, inputs) for key, item in value.items()}
    if isinstance(value, list):
        return [_take_data_urls(item, inputs) for item in value]
    return value


class _Multipart:
    """Streams a multipart body through python-multipart: fields kept, files teed to sinks."""

    def __init__(self, boundary: bytes, limits: ParseLimits, redactor: Redactor) -> None:
        self.limits = limits
        self.redactor = redactor
        self.fields: dict[str, Any] = {}
        self.files: list[CapturedBody] = []
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._value: bytearray | None = None
        self._value_size = 0
        self._file: BodyTee | None = None
        self._skip = False
        self.parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
            },
        )

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._name = ""
        self._value = None
        self._value_size = 0
        self._file = None
        self._skip = False

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._skip = self.redactor.is_secret(self._name, in_query=True)
        if b"filename" in options:
            self._file = BodyTee(
                max_in_memory=self.limits.max_in_memory,
                max_body=None,
                spool_dir=self.limits.spool_dir,
            )
        else:
            self._value = bytearray()

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._skip:
            return
        if self._file is not None:
            self._file.feed(data[start:end], more=True)
        elif self._value is not None:
            self._value_size += end - start
            if self._value_size <= self.limits.max_in_memory:
                self._value += data[start:end]

    def _on_part_end(self) -> None:
        if self._file is not None:
            self._file.feed(b"", more=False)
            captured = self._file.finish()
            if self._skip or captured.size == 0 or captured.overflow:
                captured.discard()
            else:
                self.files.append(captured)
            self._file = None
        elif self._value is not None and not self._skip:
            if self._value_size > self.limits.max_in_memory:
                text = f"[{self._value_size} bytes, not recorded]"
            else:
                text = self._value.decode("utf-8", "replace")
            _add(self.fields, self._name, text)
            self._value = None

    def drop_unfinished(self) -> None:
        """Delete the file of a part the body ended inside of (a truncated upload)."""
        if self._file is not None:
            self._file.discard()
            self._file = None

    def abandon(self) -> None:
        """Delete every spooled file (after a parse error)."""
        self.drop_unfinished()
        for captured in self.files:
            captured.discard()
        self.files = []


def _parse_multipart(
    body: CapturedBody, content_type: str, limits: ParseLimits, redactor: Redactor
) -> tuple[dict[str, Any], list[CapturedBody]]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        return {}, []
    multipart = _Multipart(boundary, limits, redactor)
    try:
        for chunk in body.iter_chunks():
            multipart.parser.write(chunk)
        multipart.parser.finalize()
        multipart.drop_unfinished()
    except (FormParserError, ValueError, OSError) as exc:
        logger.info("genstore: could not parse a multipart body (%s); fields only", exc)
        multipart.abandon()
    return multipart.fields, multipart.files


def _decode_json(body: CapturedBody, limits: ParseLimits) -> Any:
    if body.size > limits.max_document:
        logger.info("genstore: a JSON body of %d bytes is over the parse limit", body.size)
        return None
    try:
        return json.loads(body.read())
    except (ValueError, OSError) as exc:
        logger.info("genstore: could not parse a JSON body (%s)", exc)
        return None


def parse_request(
    body: CapturedBody,
    content_type: str,
    query_string: bytes,
    *,
    prompt_field: str,
    redactor: Redactor,
    limits: ParseLimits,
) -> ParsedRequest:
    """Parse a captured request. The caller still owns ``body`` (and its spool file) afterwards."""
    parsed = ParsedRequest()
    fields = _pairs_to_fields(
        parse_qsl(query_string.decode("latin-1"), keep_blank_values=True), redactor
    )
    kind = media_type(content_type)
    if body.usable and body.size:
        if kind == "application/json" or kind.endswith("+json") or (not kind and _looks_json(body)):
            parsed.document = redactor.redact(_decode_json(body, limits))
            document = _take_data_urls(parsed.document, parsed.inputs)
            if isinstance(document, dict):
                fields.update(document)
            elif document is not None:
                fields["body"] = document
        elif kind == "multipart/form-data":
            form, files = _parse_multipart(body, content_type, limits, redactor)
            fields.update(form)
            for captured in files:
                if captured.path is not None:
                    parsed.inputs.append(captured.path)
                    parsed.owned.append(captured.path)
                else:
                    parsed.inputs.append(b"".join(captured.chunks))
        elif kind == "application/x-www-form-urlencoded":
            if body.size <= limits.max_document:
                text = body.read().decode("latin-1")
                fields.update(_pairs_to_fields(parse_qsl(text, keep_blank_values=True), redactor))
        elif kind.startswith(("image/", "video/")):
            if body.path is not None:
                parsed.inputs.append(body.path)
                parsed.owned.append(body.path)
            else:
                parsed.inputs.append(b"".join(body.chunks))
    prompt = fields.get(prompt_field)
    if isinstance(prompt, str):
        parsed.prompt = prompt
        del fields[prompt_field]
    parsed.parameters = fields
    return parsed


def _looks_json(body: CapturedBody) -> bool:
    head = body.chunks[0] if body.chunks else b""
    return head.lstrip()[:1] in (b"{", b"[")


def discard_unless_owned(body: CapturedBody, parsed: ParsedRequest) -> None:
    """Delete the request's spool file unless it became an input (then the recorder owns it)."""
    if body.path is not None and body.path not in parsed.owned:
        _unlink(body.path)
    body.chunks = []
