"""The write-ahead journal: an exchange is on disk before its response's last chunk is sent.

Each process appends to its own file, ``<spool>/journal/<pid>-<token>-<n>.wal`` (mode 0600), and
holds an exclusive ``flock`` on it for as long as it lives (a file is locked before it gets its
name, so a recovery never takes a file being made). The file's blocks are allocated whole
when it is made (``FILE_SIZE``; a full disk fails then, never in the middle of a request) and it is
mapped into memory: appending an entry is a copy into the OS page cache, with no system call, so
the request path never gives up the GIL for it (an ``os.write`` did, and waiting to take the GIL
back from the busy hand-off thread cost more than everything else the journal does). The page
cache survives the process: SIGKILL loses nothing written; power loss may (nothing is fsynced).

An entry is a frame (``_journal_format``: a header with length, CRC-32 and flags, then a
MessagePack array of plain values; 1.3 µs to pack an exchange here, less than ``marshal``); zeros
follow the last frame. An exchange carries only the request headers its record reads
(``content-type``, ``idempotency-key``), so credentials in headers never reach the journal. Bodies
the tee already spooled to a file are not copied: the journal gives each a second name (a hard
link, ``<file>.held``) that keeps its bytes until the entry is settled, and the entry names that.
An error learnt after the entry was written (the exception behind a 5xx answer) is written again
under the same seed (``amend``); a replay takes an entry's last version.

An entry is *settled* once its record is saved, spooled or refused: its flag is set in place (a
replay skips it, as the spool or the store has its record) and its held bodies go. A file whose
entries are all settled is emptied (zeroed, its end marker back at the start) once it holds ``TRUNCATE_AT`` bytes,
or when it stayed settled for ``TIDY_AFTER`` seconds (``tidy``, called by the hand-off's idle
worker). Past ``ROTATE_AT`` bytes the settling thread starts a new file, and the old one is deleted
once its entries are settled. A crash replays at most those settled entries again, and they find
their records by id.

The journal holds the exchange as received (redaction happens when the record is built, off the
request path): the raw copy lives in a private file for about a second after its record is saved
or spooled, and is gone at once after ``flush`` and at a normal exit, which flushes.

A process starting beside files whose lock is free (their process died) replays their entries
through its own hand-off (``_journal_recovery.recover``). Each entry carries a seed from which its record's operation
id is drawn, so an entry whose record was saved before the crash finds that record again instead of
adding a second one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import mmap
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from ._exchange import Exchange
from ._journal_format import (
    END,
    FLAGS_AT,
    HEADER,
    SETTLED,
    SUFFIX,
    Once,
    Respec,
    decode,
    entry,
    header,
    hold,
    unlink_all,
)
from ._journal_recovery import Recovered, recover

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no journal (records are kept as before)
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FILE_SIZE",
    "ROTATE_AT",
    "Journal",
    "Recovered",
    "Respec",
    "decode",
    "entry",
    "recover",
]

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


@dataclass(slots=True, eq=False)
class _File:
    """One journal file and the count of its entries written and settled."""

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
        fresh = path.with_name(path.name + ".new")  # no recovery looks at it
        fd = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.posix_fallocate(fd, 0, FILE_SIZE)  # no block to find later: no SIGBUS on a full disk
            view = mmap.mmap(fd, FILE_SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            os.rename(fresh, path)  # named once locked: a starting process never takes it
        except (OSError, ValueError):
            _remove(_File(fresh, fd))
            raise
        return _File(path, fd, view)

    # -- the request path ----------------------------------------------------------------------

    def append(self, exchange: Exchange) -> None:
        """Write ``exchange`` ahead; set its seed and its settle callback. Never raises."""
        held = hold(exchange)
        with self._lock:
            self._seq += 1
            seed = f"{self.token}:{self._seq}".encode()
            version = self._write(entry(exchange, seed, held))
        if version is None:
            unlink_all(held.values())
            return
        exchange.seed = seed
        exchange.settle = _Settle(self, version, held)

    def amend(self, exchange: Exchange) -> None:
        """Write ``exchange`` again under its seed, for a change made since it was written (an
        error learnt when the app raised); a replay takes the last version. Never raises."""
        settle, seed = exchange.settle, exchange.seed
        if not isinstance(settle, _Settle) or seed is None:
            return
        with self._lock:
            if settle.done:  # already settled: its record has the change
                return
            version = self._write(entry(exchange, seed, settle.held))
            if version is not None:
                settle.versions.append(version)

    def _write(self, value: tuple[Any, ...]) -> tuple[_File, int] | None:
        """Append a frame of ``value`` (under ``_lock``): its file and offset; None if it could
        not be written (said once)."""
        try:
            payload = self._packer.pack(value)
            file = self._room(HEADER.size + len(payload))
        except (OSError, ValueError, TypeError) as exc:  # TypeError: a value msgpack lacks
            self._warn(exc)
            return None
        start = file.size
        body = start + HEADER.size
        end = body + len(payload)
        view = file.map
        assert view is not None
        # The new end marker first, then the payload, then its header over the old marker:
        # until that last copy the file ends where it did.
        view[end : end + HEADER.size] = END
        view[body:end] = payload
        view[start:body] = header(payload)
        file.size = end
        file.written += 1
        return file, start

    def _room(self, length: int) -> _File:
        """The file with room for a frame of ``length`` bytes (a new one if need be)."""
        if self._current.size + length + HEADER.size <= FILE_SIZE:
            return self._current
        if length + HEADER.size > FILE_SIZE:
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

    def settled(self, versions: list[tuple[_File, int]], held: Mapping[str, str]) -> None:
        """An entry (its ``versions``) has its record saved, spooled or refused: flagged in
        place, then the bodies it held go."""
        with self._settle_lock:
            for file, offset in versions:
                if file.map is not None:
                    file.map[offset + FLAGS_AT] = SETTLED
                file.settled += 1
            # ``written`` read without the append lock: checked again under it below.
            states = {id(file): (file, file.idle()) for file, _ in versions}
        unlink_all(held.values())
        for file, idle in states.values():
            self._after_settle(file, idle)

    def _after_settle(self, file: _File, idle: bool) -> None:
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
                    if file in self._sealed:
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
            file.map[: file.size + HEADER.size] = bytes(file.size + HEADER.size)
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

    def close_at_exit(self) -> None:
        """At a normal exit: delete the files whose entries are all settled (each holds 8 MiB
        of disk), release the others for the next process to recover."""
        with self._lock, self._settle_lock:
            for file in (*self._sealed, self._current):
                if file.idle():
                    _remove(file)
                else:
                    _release(file)

    def forget(self) -> None:
        """In a forked child: release the inherited mappings and descriptors (the files and their
        locks stay the parent's; closing a copy releases nothing while the parent holds its own)."""
        for file in (*self._sealed, self._current):
            _release(file)


class _Settle(Once):
    """A journaled exchange's settle callback: ``Journal.settled`` of all its versions, once."""

    __slots__ = ("held", "versions")

    def __init__(self, journal: Journal, version: tuple[_File, int], held: Mapping[str, str]):
        self.versions = [version]
        """Where each version of the entry was written (its file, its offset)."""
        self.held = held
        """The second names of the exchange's spooled bodies (by their tee file)."""
        super().__init__(functools.partial(journal.settled, self.versions, held))


def _release(file: _File) -> None:
    view, file.map = file.map, None  # a late settle then flags nothing (the next process replays)
    if view is not None:
        with contextlib.suppress(BufferError, ValueError):
            view.close()
    with contextlib.suppress(OSError):
        os.close(file.fd)


def _remove(file: _File) -> None:
    with contextlib.suppress(OSError):
        os.unlink(file.path)
    _release(file)
