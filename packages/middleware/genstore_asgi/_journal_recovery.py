"""Replaying the journals of processes that died: their entries not settled, each in its last
version, with the bodies they held by a second name.

A file is taken by ``flock``: a live process holds its own, so only dead processes' files are
recovered, each by one process. The recovering process marks each entry settled in the dead
file as its own process would have, so if it dies too, the next replays only what is left.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ._exchange import Exchange
from ._journal_format import (
    FLAGS_AT,
    HELD,
    SETTLED,
    SUFFIX,
    Once,
    Respec,
    decode,
    frames,
    unlink_all,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no journal
    fcntl = None  # type: ignore[assignment]

__all__ = ["Recovered", "recover"]

logger = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Recovered:
    """The entries of a dead process's journal file, held (locked) until all are settled."""

    path: Path
    fd: int
    exchanges: list[Exchange] = field(default_factory=list)
    _outstanding: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def settled(self, offsets: Sequence[int], held: Sequence[str]) -> None:
        """One entry (its versions at ``offsets``) is settled: marked, its held bodies gone;
        the file goes with the last."""
        with self._lock:
            self._outstanding -= 1
            if self._outstanding == 0:
                _remove(self.path, self.fd)
                marked = True
            else:
                marked = _mark(self.fd, offsets)
        if marked:
            unlink_all(held)


def _mark(fd: int, offsets: Sequence[int]) -> bool:
    try:
        for offset in offsets:
            os.pwrite(fd, bytes([SETTLED]), offset + FLAGS_AT)
    except OSError as exc:
        logger.error("genstore: cannot mark a recovered journal entry settled (%s)", exc)
        return False
    return True


def _remove(path: Path, fd: int) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
    with contextlib.suppress(OSError):
        os.close(fd)


def recover(folder: Path, respec: Respec) -> Iterator[Recovered]:
    """Every journal file in ``folder`` whose process is gone, with its entries not settled (each
    exchange's ``settle`` deletes the file once the last is settled). Files of live processes are
    skipped; an entry that cannot be read is logged and skipped, the others are kept."""
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
        try:
            with os.fdopen(os.dup(recovered.fd), "rb") as f:
                data = f.read()
        except OSError as exc:
            logger.error("genstore: the journal %s cannot be read (%s)", recovered.path, exc)
            os.close(recovered.fd)
            continue
        unsettled = _unsettled(recovered.path, data, respec)
        recovered.exchanges = [exchange for exchange, _ in unsettled]
        recovered._outstanding = len(unsettled)
        for exchange, offsets in unsettled:
            settled = functools.partial(recovered.settled, offsets, _rename_held(exchange))
            exchange.settle = Once(settled)
        if not unsettled:
            _remove(recovered.path, recovered.fd)
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


def _unsettled(path: Path, data: bytes, respec: Respec) -> list[tuple[Exchange, list[int]]]:
    """The exchanges of ``data`` not marked settled, each in its last version with the offsets of
    all its versions; the held bodies of the settled ones are deleted."""
    latest: dict[bytes, Exchange] = {}
    offsets: dict[bytes, list[int]] = {}
    settled: set[bytes] = set()
    for offset, flags, payload in frames(path, data):
        try:
            exchange = decode(payload, respec)
        except Exception as exc:  # a damaged entry loses itself only
            logger.error("genstore: a journal entry in %s cannot be read (%s); skipped", path, exc)
            continue
        seed = exchange.seed or b""
        if flags & SETTLED:
            settled.add(seed)
        latest[seed] = exchange  # an amendment replaces its entry, in its place
        offsets.setdefault(seed, []).append(offset)
    for seed in settled:
        done = latest.pop(seed, None)
        if done is not None:
            unlink_all(_held(done))
    return [(exchange, offsets[seed]) for seed, exchange in latest.items()]


def _held(exchange: Exchange) -> list[str]:
    bodies = (exchange.request_body, exchange.response_body)
    return [b.path for b in bodies if b is not None and b.path and b.path.endswith(HELD)]


def _rename_held(exchange: Exchange) -> list[str]:
    """Name each held body of a replayed ``exchange`` by its tee file again (the dead process's
    name, or a new link under it): building the record consumes that name, the held one stays
    until the entry is settled. The held names."""
    held = []
    for body in (exchange.request_body, exchange.response_body):
        name = None if body is None else body.path
        if body is None or name is None or not name.endswith(HELD):
            continue
        twin = name[: -len(HELD)]
        try:
            if not (os.path.exists(twin) and os.path.samefile(twin, name)):
                os.link(name, twin)
        except OSError:
            continue  # consumed under its held name: a second crash replays it without it
        body.path = twin
        held.append(name)
    return held
