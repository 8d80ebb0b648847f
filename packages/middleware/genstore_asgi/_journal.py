"""The write-ahead journal: an exchange is on disk before its response's last chunk is sent.

Each process appends to its own file, ``<spool>/journal/<pid>-<token>.wal`` (mode 0600), and holds
an exclusive ``flock`` on it for as long as it lives. An entry is one ``write`` into the OS page
cache, never fsynced (``SIGKILL`` loses nothing written; power loss may): a frame of 8 bytes
(payload length, CRC-32) then a ``marshal``-ed tuple of plain values (bytes, str, numbers; loading
it runs no code, unlike pickle). Bodies the tee already spooled to a file are referenced by path,
not copied. An exchange carries only the request headers its record reads (``content-type``,
``idempotency-key``), so credentials in headers never reach the journal.

An entry is *settled* once its record is saved, spooled or refused. A file whose entries are all
settled is emptied (``ftruncate``) once it holds ``TRUNCATE_AT`` bytes, or when it stayed settled
for ``TIDY_AFTER`` seconds (``tidy``, called by the hand-off's idle worker): truncating after every
request would cost each write a fresh block. Past ``ROTATE_AT`` bytes a new file is started (by the
thread that settles, never on the request path) and the old one is deleted once its entries are
settled. A crash replays at most those settled entries again, and they find their records by id.

The journal holds the exchange as received (redaction happens when the record is built, off the
request path): the raw copy lives in a private file for about a second after its record is saved
or spooled, and is gone at once after ``flush`` and at a normal exit, which flushes.

A process starting beside files whose lock is free (their process died) replays their entries
through its own hand-off (``recover``). Each entry carries a seed from which its record's operation
id is drawn, so an entry whose record was saved before the crash finds that record again instead of
adding a second one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from ._capture import CapturedBody
from ._exchange import RECORD_HEADERS, Exchange
from ._routes import RouteSpec
from ._stream import StreamEvents

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no journal (records are kept as before)
    fcntl = None  # type: ignore[assignment]

__all__ = ["ROTATE_AT", "Journal", "Recovered", "recover"]

logger = logging.getLogger(__name__)

ROTATE_AT = 4 * 1024 * 1024
"""Bytes after which a busy journal file is replaced by a new one."""
TRUNCATE_AT = 64 * 1024
"""Bytes from which a file whose entries are all settled is emptied at once."""
TIDY_AFTER = 1.0
"""Seconds after which a smaller file whose entries are all settled is emptied (``tidy``)."""
FORMAT = 1
"""The entry layout's version (the first value of every entry)."""
SUFFIX = ".wal"

_HEADER = struct.Struct("<II")

Respec = Callable[[str, str, str, str], RouteSpec]
"""``respec(method, path, operation_type, pattern)``: the route spec a recovered entry is
recorded under (the running app's routes, else a plain operation of its type)."""


@dataclass(slots=True, eq=False)
class _File:
    """One journal file and the entries written to it that are not settled yet."""

    path: Path
    fd: int
    size: int = 0
    outstanding: int = 0
    sealed: bool = False
    """No more entries go here: deleted once ``outstanding`` is back to 0."""


class Journal:
    """This process's journal in ``folder``; ``OSError`` if it cannot be created there."""

    def __init__(self, folder: Path) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise OSError("a write-ahead journal needs fcntl.flock")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder = folder
        self.token = secrets.token_hex(8)
        self._lock = threading.Lock()
        self._seq = 0
        self._files = 0
        self._sealed: list[_File] = []
        """Earlier files with entries not settled yet."""
        self._current = self._new_file()
        self._failed = False
        self._settled_at: float | None = None
        """When the current file's entries were last all settled while it kept some bytes."""
        self._packer = msgpack.Packer()
        """Used under ``_lock`` only (a packer is not thread-safe)."""

    def _new_file(self) -> _File:
        self._files += 1
        path = self.folder / f"{os.getpid()}-{self.token}-{self._files}{SUFFIX}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        return _File(path, fd)

    # -- the request path ----------------------------------------------------------------------

    def append(self, exchange: Exchange) -> None:
        """Write ``exchange`` ahead; set its seed and its settle callback. Never raises."""
        with self._lock:
            self._seq += 1
            seed = f"{self.token}:{self._seq}".encode()
            file = self._current
            try:
                frame = _frame(self._packer.pack(entry(exchange, seed)))
                written = os.write(file.fd, frame)
                if written != len(frame):  # disk full mid-frame: take the torn part back
                    os.ftruncate(file.fd, file.size)
                    raise OSError(f"short write ({written} of {len(frame)} bytes)")
            except (OSError, ValueError, TypeError) as exc:  # TypeError: a value msgpack lacks
                self._warn(exc)
                return
            file.size += written
            file.outstanding += 1
        exchange.seed = seed
        exchange.settle = _Once(lambda: self.settled(file))

    def _warn(self, exc: Exception) -> None:
        if not self._failed:
            self._failed = True
            logger.error(
                "genstore: the write-ahead journal in %s failed (%s); records are kept in memory "
                "until saved, as without a journal",
                self.folder,
                exc,
            )

    # -- off the request path ------------------------------------------------------------------

    def settled(self, file: _File) -> None:
        """One entry of ``file`` has its record saved, spooled or refused."""
        with self._lock:
            file.outstanding -= 1
            if file.outstanding > 0:
                if file is self._current and file.size >= ROTATE_AT:
                    self._rotate()
                return
            if file.sealed:
                self._sealed.remove(file)
                _remove(file)
            elif file.size >= TRUNCATE_AT:
                self._truncate(file)
            elif file.size and self._settled_at is None:
                self._settled_at = time.monotonic()

    def tidy(self, *, at_once: bool = False) -> float | None:
        """Empty the current file if its entries have all been settled for ``TIDY_AFTER``
        seconds (``at_once``: if they are all settled); the seconds until it should be called
        again (None: the file is empty)."""
        with self._lock:
            file, since = self._current, self._settled_at
            if not file.size:
                return None
            if file.outstanding or (since is None and not at_once):
                return TIDY_AFTER
            left = 0.0 if at_once or since is None else since + TIDY_AFTER - time.monotonic()
            if left > 0:
                return left
            self._truncate(file)
            return None

    def _truncate(self, file: _File) -> None:
        self._settled_at = None
        try:
            os.ftruncate(file.fd, 0)
            file.size = 0
        except OSError as exc:
            self._warn(exc)

    def _rotate(self) -> None:
        try:
            fresh = self._new_file()
        except OSError as exc:
            self._warn(exc)
            return
        self._current.sealed = True
        self._sealed.append(self._current)
        self._current = fresh

    def close(self) -> None:
        """Release the files (entries not settled stay for the next process to recover)."""
        with self._lock:
            for file in (*self._sealed, self._current):
                with contextlib.suppress(OSError):
                    os.close(file.fd)

    def forget(self) -> None:
        """In a forked child: close the inherited descriptors (the files and their locks stay
        the parent's; closing a copy releases nothing while the parent holds its own)."""
        for file in (*self._sealed, self._current):
            with contextlib.suppress(OSError):
                os.close(file.fd)


class _Once:
    """A settle callback: runs ``action`` the first time it is called, never again."""

    __slots__ = ("_action",)
    _lock = threading.Lock()

    def __init__(self, action: Callable[[], None]) -> None:
        self._action: Callable[[], None] | None = action

    def __call__(self) -> None:
        with self._lock:
            action, self._action = self._action, None
        if action is not None:
            action()


def _remove(file: _File) -> None:
    with contextlib.suppress(OSError):
        os.unlink(file.path)
    with contextlib.suppress(OSError):
        os.close(file.fd)


def _frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


# -- entries ------------------------------------------------------------------------------------


def _body(body: CapturedBody | None) -> tuple[Any, ...] | None:
    if body is None:
        return None
    return (body.chunks, body.path, body.size, body.complete, body.overflow)


def entry(exchange: Exchange, seed: bytes) -> tuple[Any, ...]:
    """``exchange`` as a journal entry (plain values only)."""
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
        _body(exchange.request_body),
        exchange.status_code,
        exchange.response_type,
        _body(exchange.response_body),
        None if stream is None else (stream.kind, stream.events, stream.complete, stream.count),
        exchange.error,
        exchange.duration_ms,
        exchange.user_id,
    )


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
        query_string=bytes(query),
        request_headers=[(bytes(k), bytes(v)) for k, v in headers if k in RECORD_HEADERS],
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


# -- recovery -----------------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Recovered:
    """The entries of a dead process's journal file, held (locked) until all are settled."""

    path: Path
    fd: int
    exchanges: list[Exchange] = field(default_factory=list)
    _outstanding: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def settled(self) -> None:
        with self._lock:
            self._outstanding -= 1
            if self._outstanding == 0:
                _remove(_File(self.path, self.fd))


def recover(folder: Path, respec: Respec) -> Iterator[Recovered]:
    """Every journal file in ``folder`` whose process is gone, with its entries (each exchange's
    ``settle`` deletes the file once the last is settled). Files of live processes are skipped."""
    try:
        names = sorted(os.listdir(folder))
    except FileNotFoundError:
        return
    for name in names:
        if not name.endswith(SUFFIX):
            continue
        recovered = _claim(folder / name)
        if recovered is None:
            continue
        with os.fdopen(os.dup(recovered.fd), "rb") as f:
            data = f.read()
        recovered.exchanges = list(_entries(recovered.path, data, respec))
        recovered._outstanding = len(recovered.exchanges)
        for exchange in recovered.exchanges:
            exchange.settle = _Once(recovered.settled)
        if not recovered.exchanges:
            _remove(_File(recovered.path, recovered.fd))
            continue
        yield recovered


def _claim(path: Path) -> Recovered | None:
    """``path`` opened and locked, if its process is gone and no one else recovers it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_nlink == 0:  # recovered and deleted by another process meanwhile
            raise OSError("already recovered")
    except OSError:
        os.close(fd)
        return None
    return Recovered(path, fd)


def _entries(path: Path, data: bytes, respec: Respec) -> Iterator[Exchange]:
    offset, unreadable = 0, 0
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        payload = data[offset + _HEADER.size : offset + _HEADER.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            break  # a torn last write (power loss): nothing after it was acknowledged
        offset += _HEADER.size + length
        try:
            yield decode(payload, respec)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            unreadable += 1
            logger.error("genstore: a journal entry in %s cannot be read (%s); skipped", path, exc)
    if offset < len(data) or unreadable:
        logger.error(
            "genstore: %s: %d unreadable entries, %d bytes torn at the end",
            path,
            unreadable,
            len(data) - offset,
        )
