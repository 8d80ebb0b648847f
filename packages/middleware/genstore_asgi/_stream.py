"""Streamed answers (``text/event-stream``, ``application/x-ndjson``): their last result, in
bounded memory.

On the request path ``StreamTee.feed`` only cuts the stream into events and keeps the newest
ones, up to ``budget`` bytes, plus the newest older event that *may* carry an output (a byte
scan for URL, ``data:`` and base64 markers, run only on events leaving the window): the stream's
chunks pass on unchanged, and a 200 MB stream costs at most ``budget`` plus two events of
memory. Off the request path, ``last_outputs`` parses the kept events
newest first: the results are those of the newest event that carries any (an OpenAI image
stream's final image, never its ``partial_image`` previews, which carry none).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from genstore._recording.extract import extract_results
from genstore._recording.outputs import Output

__all__ = ["STREAM_TYPES", "StreamEvents", "StreamTee", "last_outputs"]

STREAM_TYPES = frozenset({"text/event-stream", "application/x-ndjson", "application/jsonl"})
"""Media types read event by event."""

# An output is an http(s) URL (any case: "://"), a data: URL, a path ("/..."), or base64 (under a b64 key, or with an
# image signature: PNG, GIF, WebP; JPEG's "/9j/" is caught by '"/'). An event with none of these
# bytes cannot carry one. JSON may escape "/" as "\/"; every SSE event holds "data:" (its field
# name), so data: URLs are recognised by their '"data:' or ';base64,'.
_MARKERS = (
    b"://",
    b":\\/\\/",
    b'"data:',
    b";base64,",
    b'"/',
    b'"\\/',
    b"b64",
    b"base64",
    b"iVBOR",
    b"R0lGOD",
    b"UklGR",
)


def may_carry_output(event: bytes | bytearray) -> bool:
    """Whether ``event`` holds a byte pattern every output has (false positives are fine)."""
    return any(marker in event for marker in _MARKERS)


@dataclass(slots=True)
class StreamEvents:
    """What a ``StreamTee`` kept: the newest events (and an older candidate), oldest first."""

    kind: str
    """``sse`` or ``ndjson``."""
    events: list[bytes] = field(default_factory=list)
    complete: bool = False
    """Whether the stream's last chunk was seen."""
    count: int = 0
    """Events seen in all."""


class StreamTee:
    """Cuts a stream into events as it passes; keeps the newest candidates within ``budget``.

    ``max_event``: an event longer than this is skipped (its bytes are not kept while it streams).
    """

    __slots__ = (
        "_buffer",
        "_kept",
        "_kept_bytes",
        "_max_event",
        "_older",
        "_oversized",
        "_scanned",
        "budget",
        "result",
    )

    def __init__(self, kind: str, *, budget: int, max_event: int) -> None:
        self.result = StreamEvents("ndjson" if "json" in kind else "sse")
        self.budget = budget
        self._max_event = max_event
        self._buffer = bytearray()
        self._scanned = 0
        self._oversized = False
        self._kept: deque[bytes] = deque()
        self._kept_bytes = 0
        self._older: bytes | None = None

    def feed(self, chunk: bytes, *, more: bool) -> None:
        """Take the events ``chunk`` completes; ``more`` False marks the stream's end."""
        if chunk:
            self._buffer += chunk
            self._split()
        if not more:
            if not self._oversized:
                self._keep(self._buffer)
            self._buffer.clear()
            self.result.complete = True

    def finish(self) -> StreamEvents:
        """What was kept (the tee is done)."""
        older = [] if self._older is None else [self._older]
        self.result.events = older + list(self._kept)
        self._kept.clear()
        return self.result

    def _split(self) -> None:
        buffer = self._buffer
        start = 0
        scan = max(0, self._scanned - 2)  # a separator may straddle two chunks
        while True:
            end, width = self._boundary(buffer, scan)
            if end < 0:
                break
            if not self._oversized:
                self._keep(buffer[start:end])
            self._oversized = False
            start = scan = end + width
        if start:
            del buffer[:start]
        self._scanned = len(buffer)
        if len(buffer) > self._max_event:  # an event too large to keep: drop it as it streams
            self._oversized = True
            del buffer[: max(0, len(buffer) - 2)]
            self._scanned = len(buffer)

    def _boundary(self, buffer: bytearray, scan: int) -> tuple[int, int]:
        """Where the next event ends in ``buffer`` (from ``scan``) and the separator's width.

        Found by single-byte ``find`` (memchr: a line feed is rare in an event, so this is a
        few calls per event where a multi-byte pattern search would crawl). Events end at a
        blank line: ``\n\n`` or ``\r\n\r\n`` (streams ending lines with a bare ``\r`` are not
        cut, and keep only their tail, as an oversized event).
        """
        at = buffer.find(b"\n", scan)
        if self.result.kind == "ndjson":
            return at, 1
        while at >= 0:
            following = buffer[at + 1 : at + 3]
            if following[:1] == b"\n":
                return at, 2
            if following == b"\r\n":
                return at, 3
            at = buffer.find(b"\n", at + 1)
        return -1, 0

    def _keep(self, event: bytes | bytearray) -> None:
        if not event.strip():
            return
        self.result.count += 1
        self._kept.append(bytes(event))
        self._kept_bytes += len(event)
        while len(self._kept) > 1 and self._kept_bytes > self.budget:
            evicted = self._kept.popleft()
            self._kept_bytes -= len(evicted)
            if may_carry_output(evicted):  # the newest candidate older than the window
                self._older = evicted


def last_outputs(stream: StreamEvents) -> list[Output]:
    """The outputs of the newest kept event that carries any ([] if none does)."""
    for raw in reversed(stream.events):
        value = _payload(raw, stream.kind)
        if value is None:
            continue
        found = extract_results(value)
        if found:
            return found
    return []


def _payload(raw: bytes, kind: str) -> Any:
    """An event's data: parsed JSON, else its text (a bare URL, as Replicate streams send)."""
    if kind == "ndjson":
        text = raw.decode("utf-8", "replace").strip()
    else:
        data = sse_data(raw)
        if data is None or data.strip() == "[DONE]":
            return None
        text = data
    try:
        return json.loads(text)
    except ValueError:
        return text.strip() or None


def sse_data(raw: bytes) -> str | None:
    """The ``data`` of one server-sent event (its ``data:`` lines joined by newlines), or None."""
    lines: list[str] = []
    for line in (
        raw.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ):
        name, colon, value = line.partition(":")
        if name == "data" and colon:
            lines.append(value[1:] if value.startswith(" ") else value)
    return "\n".join(lines) if lines else None
