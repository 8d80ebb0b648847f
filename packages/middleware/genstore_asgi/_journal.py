"""The write-ahead journal: an exchange is on disk before its response's last chunk is sent.

Each process appends to its own file, ``<spool>/journal/<pid>-<token>-<n>.wal`` (mode 0600), and
holds an exclusive ``flock`` on it for as long as it lives. The file's blocks are allocated whole
when it is made (``FILE_SIZE``; a full disk fails then, never in the middle of a request) and it is
mapped into memory: appending an entry is a copy into the OS page cache, with no system call, so
the request path never gives up the GIL for it (an ``os.write`` did, and waiting to take the GIL
back from the busy hand-off thread cost more than everything else the journal does). The page
cache survives the process: SIGKILL loses nothing written; power loss may (nothing is fsynced).

An entry is a frame of 8 bytes (payload length, CRC-32) then a MessagePack array of plain values
(bytes, str, numbers: reading it back builds data, never objects or code, unlike pickle; 1.3 µs to
pack an exchange here, less than ``marshal``). Eight zero bytes follow the last frame: the end.
Bodies the tee already spooled to a file are referenced by path, not copied. An exchange carries
only the request headers its record reads (``content-type``, ``idempotency-key``), so credentials
in headers never reach the journal.

An entry is *settled* once its record is saved, spooled or refused. A file whose entries are all
settled is emptied (zeroed, its end marker back at the start) once it holds ``TRUNCATE_AT`` bytes,
or when it stayed settled for ``TIDY_AFTER`` seconds (``tidy``, called by the hand-off's idle
worker). Past ``ROTATE_AT`` bytes the settling thread starts a new file, and the old one is deleted
once its entries are settled. A crash replays at most those settled entries again, and they find
their records by id.

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
import mmap
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

FILE_SIZE = 8 * 1024 * 1024
"""Bytes allocated and mapped per journal file."""
ROTATE_AT = 4 * 1024 * 1024
"""Bytes after which a busy journal file is replaced by a new one (by a settling thread; the
request path makes one only when an entry does not fit in what is left)."""
TRUNCATE_AT = 64 * 1024
"""Bytes from which a file whose entries are all settled is emptied at once."""
TIDY_AFTER = 1.0
"""Seconds after which a smaller file whose entries are all settled is emptied (``tidy``)."""
FORMAT = 1
"""The entry layout's version (the first value of every entry)."""
SUFFIX = ".wal"

_HEADER = struct.Struct("<II")
_END = bytes(_HEADER.size)

Respec = Callable[[str, str, str, str], RouteSpec]
"""``respec(method, path, operation_type, pattern)``: the route spec a recovered entry is
recorded under (the running app's routes, else a plain operation of its type)."""


@dataclass(slots=True, eq=False)
class _File:
    """One journal file and the entries written to it that are not settled yet."""

    path: Path
    fd: int
    map: mmap.mmap | None = None
    size: int = 0
    """Bytes of entries: where the end marker is."""
    written: int = 0
    """Entries written (changed under the journal's append lock)."""
    settled: int = 0
    """Entries settled (changed under its settle lock): all are when it equals ``written``."""
    sealed: bool = False
    """No more entries go here: deleted once all are settled."""

    def idle(self) -> bool:
        """Whether every entry written is settled (exact under both locks)."""
        return self.settled == self.written


class Journal:
    """This process's journal in ``folder``; ``OSError`` if it cannot be created there."""

    def __init__(self, folder: Path) -> None:
        if fcntl is None:  # pragma: no cover - Windows
            raise OSError("a write-ahead journal needs fcntl.flock")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder = folder
        self.token = secrets.token_hex(8)
        self._lock = threading.Lock()
        """The append lock: the request path takes it, settling threads only to empty, rotate or
        delete a file (rare). Taken before ``_settle_lock`` when both are."""
        self._settle_lock = threading.Lock()
        """Taken by the threads that settle entries, never by the request path."""
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
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.posix_fallocate(fd, 0, FILE_SIZE)  # no block to find later: no SIGBUS on a full disk
            view = mmap.mmap(fd, FILE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except (OSError, ValueError):
            _remove(_File(path, fd))
            raise
        return _File(path, fd, view)

    # -- the request path ----------------------------------------------------------------------

    def append(self, exchange: Exchange) -> None:
        """Write ``exchange`` ahead; set its seed and its settle callback. Never raises."""
        with self._lock:
            self._seq += 1
            seed = f"{self.token}:{self._seq}".encode()
            try:
                payload = self._packer.pack(entry(exchange, seed))
                file = self._room(_HEADER.size + len(payload))
            except (OSError, ValueError, TypeError) as exc:  # TypeError: a value msgpack lacks
                self._warn(exc)
                return
            start = file.size
            body = start + _HEADER.size
            end = body + len(payload)
            view = file.map
            assert view is not None
            # The new end marker first, then the payload, then its header over the old marker:
            # until that last copy the file ends where it did.
            view[end : end + _HEADER.size] = _END
            view[body:end] = payload
            view[start:body] = _HEADER.pack(len(payload), zlib.crc32(payload))
            file.size = end
            file.written += 1
        exchange.seed = seed
        exchange.settle = _Once(lambda: self.settled(file))

    def _room(self, length: int) -> _File:
        """The file with room for a frame of ``length`` bytes (a new one if need be)."""
        if self._current.size + length + _HEADER.size <= FILE_SIZE:
            return self._current
        if length + _HEADER.size > FILE_SIZE:
            raise ValueError(f"an entry of {length} bytes is larger than a journal file")
        with self._settle_lock:
            if self._current.idle():  # all settled: start it over rather than leave it behind
                self._truncate(self._current)
            else:
                self._rotate()
        return self._current

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
        with self._settle_lock:
            file.settled += 1
            idle = file.idle()  # ``written`` read without the append lock: checked again below
        if not idle:
            if file is self._current and file.size >= ROTATE_AT:
                with self._lock, self._settle_lock:
                    if file is self._current and not file.idle():
                        try:
                            self._rotate()
                        except OSError as exc:  # the request path tries again when it must
                            self._warn(exc)
            return
        if file.sealed or file.size >= TRUNCATE_AT:
            with self._lock, self._settle_lock:
                if not file.idle():  # an entry was appended meanwhile
                    return
                if file.sealed:
                    self._sealed.remove(file)
                    _remove(file)
                elif file is self._current:
                    self._truncate(file)
        elif file.size and self._settled_at is None:
            self._settled_at = time.monotonic()

    def tidy(self, *, at_once: bool = False) -> float | None:
        """Empty the current file if its entries have all been settled for ``TIDY_AFTER``
        seconds (``at_once``: if they are all settled); the seconds until it should be called
        again (None: the file is empty)."""
        with self._lock, self._settle_lock:
            file, since = self._current, self._settled_at
            if not file.size:
                return None
            if not file.idle() or (since is None and not at_once):
                return TIDY_AFTER
            left = 0.0 if at_once or since is None else since + TIDY_AFTER - time.monotonic()
            if left > 0:
                return left
            self._truncate(file)
            return None

    def _truncate(self, file: _File) -> None:
        """Empty ``file``: its entries zeroed, the end marker back at the start (both locks
        held)."""
        self._settled_at = None
        if file.map is not None:  # zeroed, not only cut off: the raw copies are gone
            file.map[: file.size + _HEADER.size] = bytes(file.size + _HEADER.size)
        file.size = 0

    def _rotate(self) -> None:
        """Start a new file (both locks held); ``OSError`` if it cannot be made."""
        fresh = self._new_file()
        self._current.sealed = True
        self._sealed.append(self._current)
        self._current = fresh

    def close(self) -> None:
        """Release the files (entries not settled stay for the next process to recover)."""
        with self._lock:
            for file in (*self._sealed, self._current):
                _release(file)

    def forget(self) -> None:
        """In a forked child: release the inherited mappings and descriptors (the files and their
        locks stay the parent's; closing a copy releases nothing while the parent holds its own)."""
        for file in (*self._sealed, self._current):
            _release(file)


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


def _release(file: _File) -> None:
    if file.map is not None:
        with contextlib.suppress(BufferError, ValueError):
            file.map.close()
    with contextlib.suppress(OSError):
        os.close(file.fd)


def _remove(file: _File) -> None:
    with contextlib.suppress(OSError):
        os.unlink(file.path)
    _release(file)


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
    offset, unreadable, torn = 0, 0, False
    while offset + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, offset)
        if length == 0:
            break  # the end marker
        payload = data[offset + _HEADER.size : offset + _HEADER.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            torn = True  # a last copy cut short (power loss): nothing after it was answered
            break
        offset += _HEADER.size + length
        try:
            yield decode(payload, respec)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            unreadable += 1
            logger.error("genstore: a journal entry in %s cannot be read (%s); skipped", path, exc)
    if torn or unreadable:
        logger.error(
            "genstore: %s: %d unreadable entries%s",
            path,
            unreadable,
            f", torn at byte {offset}" if torn else "",
        )
