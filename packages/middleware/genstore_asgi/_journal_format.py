"""What a journal file holds: frames of MessagePack entries, and the bodies they hold by name.

A frame is a 12-byte header (payload length, CRC-32 of the payload, flags) then the payload; eight
or more zero bytes end the frames (a length of 0). Flag ``SETTLED`` is set in place once the
entry's record is saved, spooled or refused: a replay skips it. An entry is a MessagePack array of
plain values (reading it back builds data, never objects or code, unlike pickle).
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import msgpack

from ._capture import CapturedBody
from ._exchange import RECORD_HEADERS, Exchange
from ._routes import RouteSpec
from ._stream import StreamEvents

__all__ = [
    "END",
    "FLAGS_AT",
    "FORMAT",
    "HEADER",
    "HELD",
    "SETTLED",
    "SUFFIX",
    "Once",
    "Respec",
    "decode",
    "entry",
    "frames",
    "header",
    "hold",
    "unlink_all",
]

logger = logging.getLogger(__name__)

FORMAT = 1
"""The entry layout's version (the first value of every entry)."""
SUFFIX = ".wal"
HELD = ".held"
"""Suffix of the second name the journal gives a body the tee spooled to a file."""
HEADER = struct.Struct("<IIB3x")
FLAGS_AT = 8
"""Offset of the flags byte in a header."""
SETTLED = 1
END = bytes(HEADER.size)
_NONE: Mapping[str, str] = MappingProxyType({})

Respec = Callable[[str, str, str, str], RouteSpec]
"""``respec(method, path, operation_type, pattern)``: the route spec a recovered entry is
recorded under (the running app's routes, else a plain operation of its type)."""


def header(payload: bytes) -> bytes:
    """The header of a frame holding ``payload`` (not settled)."""
    return HEADER.pack(len(payload), zlib.crc32(payload), 0)


def frames(path: Path, data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """``(offset, flags, payload)`` of each whole frame of ``data``, up to the end marker."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, crc, flags = HEADER.unpack_from(data, offset)
        if length == 0:
            return  # the end marker
        payload = data[offset + HEADER.size : offset + HEADER.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            # A copy cut short (power loss): nothing after it was answered.
            logger.error("genstore: %s: a journal entry torn at byte %d", path, offset)
            return
        yield offset, flags, payload
        offset += HEADER.size + length


# -- bodies held by a second name -----------------------------------------------------------------


def hold(exchange: Exchange) -> dict[str, str]:
    """A second name (a hard link, ``<file>.held``) for each body of ``exchange`` the tee spooled
    to a file, by its path: building the record deletes a parsed request body and the recorder
    moves or deletes a result file long before the save; the held name keeps the bytes a replay
    needs until the entry is settled."""
    held = {}
    for body in (exchange.request_body, exchange.response_body):
        if body is not None and body.path is not None:
            name = body.path + HELD
            try:
                os.link(body.path, name)
            except OSError:
                continue  # the entry names the tee's file, which lives until the record is built
            held[body.path] = name
    return held


class Once:
    """A settle callback: runs ``action`` the first time it is called, never again (whichever
    threads call it)."""

    __slots__ = ("_action",)
    _lock = threading.Lock()

    def __init__(self, action: Callable[[], None]) -> None:
        self._action: Callable[[], None] | None = action

    @property
    def done(self) -> bool:
        """Whether it was called."""
        return self._action is None

    def __call__(self) -> None:
        with self._lock:
            action, self._action = self._action, None
        if action is not None:
            action()


def unlink_all(paths: Iterable[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


# -- entries --------------------------------------------------------------------------------------


def _body(body: CapturedBody | None, held: Mapping[str, str]) -> tuple[Any, ...] | None:
    if body is None:
        return None
    path = None if body.path is None else held.get(body.path, body.path)
    return (body.chunks, path, body.size, body.complete, body.overflow)


def entry(exchange: Exchange, seed: bytes, held: Mapping[str, str] = _NONE) -> tuple[Any, ...]:
    """``exchange`` as a journal entry (plain values only); its spooled bodies by the names in
    ``held``, if there."""
    stream = exchange.response_stream
    return (
        FORMAT,
        seed,
        exchange.created_ns,
        exchange.method,
        exchange.path,
        exchange.spec.operation_type,
        exchange.spec.pattern,
        exchange.scheme,
        exchange.server,
        exchange.root_path,
        exchange.query_string,
        exchange.request_headers,
        _body(exchange.request_body, held),
        exchange.status_code,
        exchange.response_type,
        _body(exchange.response_body, held),
        None if stream is None else (stream.kind, stream.events, stream.complete, stream.count),
        exchange.error,
        exchange.duration_ms,
        exchange.user_id,
    )


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes):  # bytes(int) would allocate that many
        raise ValueError(f"{type(value).__name__} where bytes belong")
    return value


def _captured(value: Any) -> CapturedBody | None:
    if value is None:
        return None
    chunks, path, size, complete, overflow = value
    if not (isinstance(chunks, list) and all(isinstance(c, bytes) for c in chunks)):
        raise ValueError("body chunks are not bytes")
    return CapturedBody(
        chunks=chunks,
        path=str(path) if path is not None else None,
        size=int(size),
        complete=bool(complete),
        overflow=bool(overflow),
    )


def decode(payload: bytes, respec: Respec) -> Exchange:
    """The exchange a journal entry holds; ``ValueError`` (or ``TypeError``) if it is not one."""
    value = msgpack.unpackb(payload, raw=False, use_list=True)
    if not (isinstance(value, list) and len(value) == 20 and value[0] == FORMAT):
        raise ValueError("not a journal entry of format 1")
    (_, seed, created_ns, method, path, operation_type, pattern, scheme, server, root_path) = value[
        :10
    ]
    (query, headers, request, status, response_type, response, stream, error, duration, user) = (
        value[10:]
    )
    if not (isinstance(seed, bytes) and isinstance(created_ns, int) and isinstance(path, str)):
        raise ValueError("malformed journal entry")
    exchange = Exchange(
        spec=respec(str(method), path, str(operation_type), str(pattern)),
        method=str(method),
        path=path,
        scheme=str(scheme),
        server=(str(server[0]), server[1]) if server is not None else None,
        root_path=str(root_path),
        query_string=_bytes(query),
        request_headers=[(k, _bytes(v)) for k, v in headers if k in RECORD_HEADERS],
        request_body=_captured(request) or CapturedBody(),
        created_ns=created_ns,
        status_code=None if status is None else int(status),
        response_type=str(response_type),
        response_body=_captured(response),
        response_stream=None if stream is None else StreamEvents(*stream),
        error=None if error is None else str(error),
        duration_ms=None if duration is None else float(duration),
        user_id=None if user is None else str(user),
    )
    exchange.seed = seed
    return exchange
