"""From the request path to the store's background recorder, through one worker thread.

The request path only enqueues a finished ``Exchange`` (a few microseconds); parsing bodies and
building the record happen on this module's thread, which then calls ``store.recorder.submit`` —
which never blocks and never raises. A ``ThreadPoolExecutor`` is used because its queue is drained
at interpreter exit, so exchanges still waiting when the process ends normally are not lost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from ._capture import _unlink
from ._exchange import Exchange, RecordOptions, minimal_record, to_record

__all__ = ["Handoff", "RecorderLike", "StoreLike"]

logger = logging.getLogger(__name__)


class RecorderLike(Protocol):
    """The part of ``genstore``'s background recorder the middleware uses."""

    def submit(
        self, owned_paths: Sequence[str | os.PathLike[str]] = (), **save_kwargs: Any
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


class Handoff:
    """Builds records from exchanges on a background thread and submits them to the recorder."""

    def __init__(self, store: StoreLike | None, options: RecordOptions) -> None:
        self._store = store
        self._options = options
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> StoreLike:
        """The store records go to (``genstore.default_store()`` when none was given)."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = _default_store()
        return self._store

    def submit(self, exchange: Exchange) -> None:
        """Queue ``exchange`` for recording; never blocks on I/O, never raises."""
        executor = self._executor
        if executor is None:
            executor = self._start()
        try:
            executor.submit(self._record, exchange)
        except RuntimeError:
            # The executor is shut down (interpreter exit, or a late request after lifespan
            # shutdown): record inline rather than lose it.
            self._record(exchange)

    def _start(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="genstore-asgi")
            return self._executor

    def _record(self, exchange: Exchange) -> None:
        owned: list[str] = []
        try:
            try:
                owned, record = to_record(exchange, self._options)
            except Exception:
                logger.exception(
                    "genstore: could not read a %s exchange; recording bare facts", exchange.path
                )
                record = minimal_record(exchange)
            self.store.recorder.submit(owned, **record)
        except Exception:
            # Only reachable when the store itself cannot be reached (default store failing to
            # open, or a recorder breaking its never-raise contract).
            logger.exception("genstore: could not hand a record of %s over", exchange.path)
            for path in owned:
                _unlink(path)

    def drain(self, timeout: float) -> bool:
        """Wait until every queued exchange reached the recorder, then flush the recorder.

        True when both finished within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        executor = self._executor
        if executor is not None:
            marker: Future[None] = executor.submit(lambda: None)
            try:
                marker.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                return False
        if self._store is None and executor is None:
            return True  # nothing was ever recorded: do not open the default store for nothing
        try:
            return self.store.recorder.flush(max(0.0, deadline - time.monotonic()))
        except Exception:
            logger.exception("genstore: flushing the recorder failed")
            return False

    def close(self) -> None:
        """Stop the worker thread once its queue is empty (a later submit starts a new one)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)
