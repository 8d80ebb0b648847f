"""From the request path to the store's background recorder, through one worker thread.

The request path writes a finished ``Exchange`` ahead to this process's journal (``_journal``: a
copy into a mapped file, a few microseconds) and appends it to a deque (well under a microsecond). The
worker is woken only when it is idle; under load, after each batch it lets ``BATCH_WINDOW`` pass,
so it takes the GIL once per window rather than once per request.
Parsing bodies and building the record happen on the worker, which then calls
``store.recorder.submit_request`` — which never blocks and never raises. At interpreter exit the worker's
queue is drained (within ``EXIT_DRAIN_SECONDS``), so a normal exit loses nothing queued; a killed
process loses nothing journaled: when the worker starts it first replays the journals that dead
processes left beside the recorder's spool.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from genstore._recording.items import Recordable
from genstore.exceptions import InvalidInput

from ._capture import _unlink
from ._exchange import Exchange, RecordOptions, minimal_record, to_record
from ._journal import Journal, Respec, recover

__all__ = ["EXIT_DRAIN_SECONDS", "Handoff", "RecorderLike", "StoreLike"]

logger = logging.getLogger(__name__)

EXIT_DRAIN_SECONDS = 10.0
"""How long interpreter exit waits for exchanges still queued."""

BATCH_WINDOW = 0.01
"""Seconds the worker lets exchanges gather after a batch (see ``Handoff._run``)."""
_YIELD_EVERY = 8
"""Exchanges recorded between two offers of the GIL (a hold stays around 100-200 µs)."""


class RecorderLike(Protocol):
    """The part of ``genstore``'s background recorder the middleware uses."""

    def submit_request(
        self,
        request: Recordable,
        owned_paths: Sequence[str | os.PathLike[str]] = (),
        *,
        settled: Callable[[], None] | None = None,
    ) -> None: ...

    def reject(
        self, reason: Exception, owned_paths: Sequence[str | os.PathLike[str]] = ()
    ) -> None: ...

    def flush(self, timeout: float | None = None) -> bool: ...


class StoreLike(Protocol):
    """A store with a background recorder (``genstore.Store``)."""

    @property
    def recorder(self) -> RecorderLike: ...


def _default_store() -> StoreLike:
    import genstore

    opener = getattr(genstore, "default_store", None)
    if opener is None:  # pragma: no cover - only while the core lacks it
        raise RuntimeError("genstore.default_store() is not available; pass store=")
    store: StoreLike = opener()
    return store


def journal_folder(store: StoreLike) -> Path | None:
    """Where ``store``'s middleware journals: ``<its recorder's spool>/journal`` (None when the
    recorder has no spool folder)."""
    spool = getattr(store.recorder, "spool_dir", None)
    return None if spool is None else Path(spool) / "journal"


class Handoff:
    """Builds records from exchanges on a background thread and submits them to the recorder.

    ``respec``: how the routes name a journaled request after a restart; None turns the
    write-ahead journal off.
    """

    def __init__(
        self, store: StoreLike | None, options: RecordOptions, respec: Respec | None = None
    ) -> None:
        self._store = store
        self._options = options
        self._respec = respec
        self._journal: Journal | None = None
        self._journal_lock = threading.Lock()
        self._journal_tried = respec is None
        self._queue: deque[Exchange] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._settled = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._sleeping = False
        self._flushing = threading.Event()
        """Set while someone waits for the queue to empty: no batching window then."""
        self._busy = 0
        """Exchanges queued or being recorded (guarded by ``_lock``)."""
        _live.add(self)

    @property
    def store(self) -> StoreLike:
        """The store records go to (``genstore.default_store()`` when none was given)."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = _default_store()
        return self._store

    def start(self) -> None:
        """Open the store's recorder and this process's journal; start the worker, which first
        replays what dead processes journaled."""
        self.store.recorder  # noqa: B018 - the property creates the recorder
        self._open_journal()
        if self._thread is None:
            self._start()

    def write_ahead(self, exchange: Exchange) -> None:
        """Append ``exchange`` to the journal (opened on first use); never raises."""
        if not self._journal_tried:
            self._open_journal()
        journal = self._journal
        if journal is not None:
            journal.append(exchange)

    def amend(self, exchange: Exchange) -> None:
        """Journal ``exchange`` again, changed since ``write_ahead`` (its error); never raises."""
        journal = self._journal
        if journal is not None:
            journal.amend(exchange)

    def _open_journal(self) -> None:
        with self._journal_lock:
            if self._journal_tried:
                return
            self._journal_tried = True
            try:
                folder = journal_folder(self.store)
                if folder is not None:
                    self._journal = Journal(folder)
            except Exception as exc:
                logger.error(
                    "genstore: no write-ahead journal (%s): a killed process loses the records "
                    "not yet saved",
                    exc,
                )

    def _recover(self) -> None:
        """Queue what the journals of dead processes hold (their files go once all are settled)."""
        if self._respec is None:
            return
        try:
            folder = journal_folder(self.store)
            if folder is None:
                return
            count = 0
            for recovered in recover(folder, self._respec):
                with self._lock:
                    self._busy += len(recovered.exchanges)
                self._queue.extend(recovered.exchanges)
                count += len(recovered.exchanges)
        except Exception:
            logger.exception("genstore: the journals of earlier processes could not be read")
            return
        if count:
            logger.warning(
                "genstore: %d answered requests recovered from the journal of a process that "
                "stopped before recording them",
                count,
            )

    def submit(self, exchange: Exchange) -> None:
        """Queue ``exchange`` for recording; never blocks on I/O, never raises."""
        with self._lock:
            self._busy += 1
        self._queue.append(exchange)
        if self._thread is None:
            self._start()
        elif self._sleeping:  # a stale read only costs one spare wake-up, never a lost one
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._busy += 1  # the recovery of dead processes' journals: flush waits for it
                self._thread = threading.Thread(
                    target=self._run, name="genstore-asgi-handoff", daemon=True
                )
                self._thread.start()
        _exit_hook.install()

    def _run(self) -> None:
        try:
            self._recover()
        finally:
            self._done(1)
        queue = self._queue
        while True:
            self._wake.clear()
            self._sleeping = True
            if not queue:  # checked after _sleeping is set: a submit in between wakes us
                self._wake.wait(self._tidy())
            self._sleeping = False
            batch = 0
            while queue:
                if batch % _YIELD_EVERY == _YIELD_EVERY - 1:
                    time.sleep(0)  # let a waiting event loop take the GIL: no long holds
                exchange = queue.popleft()
                batch += 1
                try:
                    self._record(exchange)
                finally:
                    self._done(1)
            # Let the next exchanges gather before taking the GIL again: under load this thread
            # then wakes once per window, not once per request (each wake-up costs the event
            # loop a GIL hand-over). Submits during the window do not wake it.
            self._flushing.wait(BATCH_WINDOW)

    def _tidy(self) -> float | None:
        """Let the journal empty a settled file; how long the idle worker may sleep."""
        journal = self._journal
        return None if journal is None else journal.tidy()

    def _done(self, count: int) -> None:
        with self._lock:
            self._busy -= count
            if self._busy == 0:
                self._settled.notify_all()

    def _record(self, exchange: Exchange) -> None:
        owned: list[str] = []
        try:
            recorder = self.store.recorder
            _exit_hook.after_recorders()
            try:
                request = to_record(exchange, self._options, owned)
            except InvalidInput as exc:
                recorder.reject(exc, owned)
                _settle(exchange)
                return
            except Exception:
                logger.exception(
                    "genstore: could not read a %s exchange; recording bare facts", exchange.path
                )
                request = minimal_record(exchange)
            if request is None:  # a poll of a running job: nothing to record, nothing to keep
                for path in owned:
                    _unlink(path)
                _settle(exchange)
                return
            if exchange.settle is None:
                recorder.submit_request(request, owned)
            else:
                recorder.submit_request(request, owned, settled=exchange.settle)
        except Exception:
            # Only reachable when the store itself cannot be reached (default store failing to
            # open, or a recorder breaking its never-raise contract). The journal keeps the
            # exchange for the next process.
            logger.exception("genstore: could not hand a record of %s over", exchange.path)
            exchange.discard()
            for path in owned:
                _unlink(path)

    def wait(self, timeout: float) -> bool:
        """Wait until every queued exchange reached the recorder; False if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        self._flushing.set()
        try:
            return self._wait_settled(deadline)
        finally:
            self._flushing.clear()

    def _wait_settled(self, deadline: float) -> bool:
        with self._settled:
            while self._busy > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._settled.wait(remaining)
        return True

    def drain(self, timeout: float) -> bool:
        """Wait until every queued exchange reached the recorder, then flush the recorder (and
        empty the journal, whose entries are then all settled).

        True when both finished within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        if not self.wait(timeout):
            return False
        if self._store is None and self._thread is None:
            return True  # nothing was ever recorded: do not open the default store for nothing
        try:
            flushed = self.store.recorder.flush(max(0.0, deadline - time.monotonic()))
        except Exception:
            logger.exception("genstore: flushing the recorder failed")
            return False
        journal = self._journal
        if flushed and journal is not None:
            journal.tidy(at_once=True)  # every record is saved or spooled: the raw copy goes
        return flushed

    def close_journal(self) -> None:
        """At exit: the journal's settled files go, the others stay for the next process."""
        journal, self._journal = self._journal, None
        if journal is not None:
            journal.close_at_exit()

    def _after_fork(self) -> None:
        """In a forked child: the parent's journal (and its lock) stay the parent's; the child
        opens its own on first use, and starts its own worker."""
        if self._journal is not None:
            self._journal.forget()
        self._journal = None
        self._journal_lock = threading.Lock()
        self._journal_tried = self._respec is None
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._thread = None
        self._queue.clear()
        self._busy = 0


def _settle(exchange: Exchange) -> None:
    settle = exchange.settle
    if settle is not None:
        settle()


_live: weakref.WeakSet[Handoff] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for handoff in list(_live):
        handoff._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


class _ExitHook:
    """Registers ``_drain_at_exit`` with atexit, and moves it after the recorders' own hook.

    atexit runs hooks last-in first-out. The recorder module (imported when a store's recorder is
    first used) registers its drain-and-close hook then; re-registering ours after that makes it
    run first, so queued exchanges reach a recorder that is still open.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._installed = False
        self._moved = False

    def install(self) -> None:
        with self._lock:
            if not self._installed:
                atexit.register(_drain_at_exit)
                self._installed = True

    def after_recorders(self) -> None:
        if self._moved:
            return
        with self._lock:
            if not self._moved:
                atexit.unregister(_drain_at_exit)
                atexit.register(_drain_at_exit)
                self._installed = self._moved = True


def _drain_at_exit() -> None:
    """At interpreter exit: hand what is still queued to the recorder (which spools if it must)."""
    deadline = time.monotonic() + EXIT_DRAIN_SECONDS
    for handoff in list(_live):
        # drain also flushes the recorder: its own exit hook may have been registered too late
        # to run (the recorder module can be imported by the worker while the process exits).
        if not handoff.drain(max(0.0, deadline - time.monotonic())):
            logger.warning("genstore: records still queued at exit may be lost")
        handoff.close_journal()


_exit_hook = _ExitHook()
