"""The background writer behind the middleware and ``@genstore.record``: no delay, no loss.

``Recorder.submit`` hands a record (a ``SaveRequest``) to a daemon worker through a bounded queue
and returns at once. The worker saves it with ``store.save`` (or, when several are queued, up to
``batch_size`` with ``store.save_batch``: their catalog rows in one transaction). When the queue is full, the store fails
(anything but ``InvalidInput``), or shutdown's drain time is over, the record goes to a durable
local spool (``genstore._spool``) and is replayed with exponential backoff once the store answers
again, under the operation id chosen when it was submitted (``SaveRequest.for_later``), so a
replay finds the record if an earlier attempt saved it and never duplicates it. Records spooled by an
earlier process are replayed on start. ``store.close()``, ``close()`` and interpreter exit drain
the queue within a timeout and leave the rest spooled.

What a killed process (SIGKILL) loses: nothing the ASGI middleware recorded, which journals each
exchange before answering and passes ``settled`` here so the journal keeps it until it is saved or
spooled; records submitted directly (``@genstore.record``, ``submit``) that were still in the
in-memory queue or the batch being saved (normally empty within milliseconds). Everything spooled
survives.

The worker loop, replay and backoff live in ``worker``; a queued record in ``items``; the
interpreter-exit and fork hooks in ``hooks``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .._save_request import SaveRequest
from ..exceptions import GenstoreError, InvalidInput
from ..plugin import BlobStore
from .hooks import _live
from .items import Item, Recordable, unlink_all
from .latency import LatencySnapshot
from .spool import Spool, SpoolStatus
from .worker import RecorderWorker, SaveTarget

__all__ = [
    "Recorder",
    "RecorderCounters",
    "SpoolStatus",
    "default_spool_dir",
    "legacy_spool_dir",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecorderCounters:
    """A snapshot of what a recorder did since it was made."""

    recorded: int = 0
    """Records saved straight from the queue."""
    spooled: int = 0
    """Records written to the spool (queue full, store failing, or left over at close)."""
    replayed: int = 0
    """Spooled records saved later (spooled by this process or an earlier one)."""
    dropped: int = 0
    """Records neither saved nor spooled: only when the spool's own disk fails."""
    rejected: int = 0
    """Records the store refused as invalid (``InvalidInput``): logged, never retried."""
    quarantined: int = 0
    """Spooled records set aside after failing for their own content several times
    (``genstore spool status`` lists them; ``spool retry``/``purge``)."""
    download_failures: int = 0
    """Result downloads that failed (deadline, refused address, HTTP error, too large...): the
    worker's downloads before a save and the result URLs fetched into the spool."""
    pending: int = 0
    """Records in the queue, downloading their results, or being saved right now."""
    queued: int = 0
    """Records waiting in the queue right now (the queue depth; at most ``queue_size``)."""


class RecordTarget(SaveTarget, Protocol):
    """What a recorder records into: something that saves requests, over a blob store."""

    @property
    def blobs(self) -> BlobStore:
        """The blob store (it names the default spool folder)."""
        ...


def default_spool_dir(blobs: BlobStore) -> Path:
    """A per-store folder under ``$GENSTORE_SPOOL_DIR``, else ``$XDG_STATE_HOME/genstore/spool``
    (``~/.local/state``), named by the store URL's SHA-256.

    Never inside the store: a store whose own disk fails or fills keeps recording into the spool.
    The per-store folder keeps two stores that share one spool root from replaying each other's
    records.
    """
    url = blobs.url or repr(blobs)
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    env = os.environ.get("GENSTORE_SPOOL_DIR")
    if env:
        return Path(env).expanduser() / digest
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "genstore" / "spool" / digest


def legacy_spool_dir(blobs: BlobStore) -> Path | None:
    """Where genstore before 0.2 spooled a local store's records (``<root>/.spool``)."""
    root = blobs.local_root()
    return None if root is None else root / ".spool"


class Recorder(RecorderWorker):
    """Saves records in a background thread; spools what cannot be saved now and replays it later.

    ``store.recorder`` is the one to use; make your own only for a separate spool or queue size.
    ``base_backoff``/``max_backoff`` bound the retry delays (seconds, with jitter);
    ``poll_interval`` is how often the spool is rescanned for records other processes left;
    ``fsync=False`` trades power-loss durability of the spool for speed (a killed process still
    loses nothing spooled). ``batch_size`` bounds how many queued records one save takes (at most
    ``queue_size``).
    """

    def __init__(
        self,
        store: RecordTarget,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        queue_size: int = 1000,
        drain_timeout: float = 10.0,
        base_backoff: float = 0.5,
        max_backoff: float = 60.0,
        poll_interval: float = 5.0,
        fsync: bool = True,
        batch_size: int = 64,
    ) -> None:
        self._target = store
        path = Path(spool_dir) if spool_dir is not None else default_spool_dir(store.blobs)
        self._spool = Spool(path, fsync=fsync)
        self._queue_size = queue_size
        # A batch is taken out of the queue: capped at its size, at most twice the queue's
        # worth of records is in memory, as the queue alone was before batches.
        self._batch_size = max(1, min(batch_size, queue_size))
        self.drain_timeout = drain_timeout
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._poll_interval = poll_interval
        self._closed = False
        self._setup()
        legacy = legacy_spool_dir(store.blobs) if spool_dir is None else None
        if legacy is not None and legacy.is_dir():
            self._adopt(legacy)
        _live.add(self)
        try:
            leftovers = self._spool.has_records()
        except OSError:
            leftovers = False
        if leftovers:  # an earlier process left records: replay them without waiting for traffic
            self.start()

    def _adopt(self, legacy: Path) -> None:
        try:
            moved = self._spool.adopt(legacy)
        except OSError as exc:
            logger.error("genstore: records left in %s could not be moved: %s", legacy, exc)
            return
        if moved:
            logger.info("genstore: %d records moved from %s to %s", moved, legacy, self.spool_dir)

    def __repr__(self) -> str:
        return f"<genstore.Recorder spool={str(self._spool.path)!r} {self.counters}>"

    @property
    def spool_dir(self) -> Path:
        """Where this recorder spools."""
        return self._spool.path

    # -- the caller's side ----------------------------------------------------------------------

    def submit(
        self, owned_paths: Sequence[str | os.PathLike[str]] = (), **save_kwargs: Any
    ) -> None:
        """Record ``save_kwargs`` (``Store.save_complete_operation``'s arguments) in the background.

        Arguments the store would refuse are logged and counted ``rejected`` at once. Otherwise as
        ``submit_request``.
        """
        try:
            request = SaveRequest.build(**save_kwargs)
        except InvalidInput as exc:
            self.reject(exc, owned_paths)
            return
        except Exception:
            logger.exception("genstore: a record could not be prepared; dropped")
            self._count("dropped")
            return
        self.submit_request(request, owned_paths)

    def reject(self, reason: Exception, owned_paths: Sequence[str | os.PathLike[str]] = ()) -> None:
        """Count a record refused at the edge (``SaveRequest.build`` raised), and drop its files."""
        logger.warning("genstore: record rejected: %s", reason)
        self._count("rejected")
        unlink_all([os.fspath(p) for p in owned_paths])

    def submit_request(
        self,
        request: Recordable,
        owned_paths: Sequence[str | os.PathLike[str]] = (),
        *,
        settled: Callable[[], None] | None = None,
    ) -> None:
        """Save ``request`` (or complete the job of a ``JobCompletion``) in the background. Never raises, never waits for the store.

        Sources may be bytes or file paths (or file objects and PIL images, read later: do not
        change them after submitting). ``owned_paths`` are files handed over with the record (e.g.
        spooled request bodies): the recorder moves or deletes them when done. Its operation id
        is chosen now, so replays never duplicate (a caller's ``idempotency_key`` is kept too);
        ``created_at`` defaults to now, so a replayed record keeps its time. When the queue is full (the store is slower
        than the traffic), the record is spooled in the calling thread: a local disk write
        instead of a lost record. ``settled`` is called once the record is saved, spooled or
        refused, never if it is dropped (a write-ahead journal then keeps its copy).
        """
        try:
            item = Item.of(request, owned_paths, settled)
            if self._thread is None:
                self.start()
            with self._lock:  # atomic with close(): nothing is queued once it has drained
                queued = not self._closed
                if queued:
                    try:
                        self._queue.put_nowait(item)
                        self._pending += 1
                    except queue.Full:
                        queued = False
            if not queued:  # spooled in the caller's thread: no download there
                self._to_spool(item, fetch=False)
        except Exception:
            logger.exception("genstore: recording failed; the record is dropped")
            self._count("dropped")

    @property
    def counters(self) -> RecorderCounters:
        """What was recorded, spooled, replayed, dropped, rejected so far; what is pending."""
        with self._lock:
            queued = self._queue.qsize()
            return RecorderCounters(pending=self._pending, queued=queued, **self._counts)

    @property
    def save_latency(self) -> LatencySnapshot:
        """How long each save the worker attempted took (a histogram; see ``latency``)."""
        with self._lock:
            return self._latency.snapshot()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submitted record is saved or spooled; False if ``timeout`` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining)
            return True

    def close(self, timeout: float | None = None) -> None:
        """Save what is queued within ``timeout`` (default ``drain_timeout``); spool the rest.

        Idempotent. Records submitted after ``close`` go straight to the spool.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        _live.discard(self)
        deadline = time.monotonic() + (self.drain_timeout if timeout is None else timeout)
        if thread is threading.current_thread():  # closed from a save hook: cannot wait on itself
            self._stop.set()
            return
        if thread is not None:
            self._deadline = deadline
            self._wake()
            self.flush(max(0.0, deadline - time.monotonic()))
            self._stop.set()
            self._spool_leftovers()
            self._downloads.close()
            self._wake()  # after the leftovers: draining the queue would swallow the wake-up
            thread.join(max(0.0, deadline - time.monotonic()) + 0.1)
            if thread.is_alive():
                logger.warning("genstore: a save is still running at close; its record is spooled")
                return  # the worker still uses the spool; the process exit releases the lock
        self._spool.close()

    # -- the spool, for `genstore spool status|drain` ---------------------------------------------

    def spool_status(self) -> SpoolStatus:
        """How many records wait in the spool, their disk use and the oldest one's time.

        ``GenstoreError`` if the spool folder cannot be read.
        """
        try:
            return self._spool.status()
        except OSError as exc:
            raise GenstoreError(f"the spool {self._spool.path} cannot be read: {exc}") from exc

    def replay_spool(self) -> int:
        """Save every spooled record now, in the calling thread; return how many were saved.

        Stops when the store turns out to be down (try later); a record failing for its own
        content is retried on later passes, then quarantined.
        Safe while other processes replay the same spool: each record is claimed by one only.
        """
        try:
            self._spool.recover()
            waiting = self._spool.waiting()
        except OSError as exc:
            logger.error("genstore: cannot read the spool %s: %s", self._spool.path, exc)
            return 0
        saved = 0
        for ulid in waiting:
            outcome = self._replay(ulid)
            if outcome == "saved":
                saved += 1
            elif outcome == "failed" and self._store_down():
                break  # the store is down: try later (a record's own failure does not stop us)
        return saved

    # -- the worker -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker now (it starts by itself on the first ``submit``, or at once when the
        spool holds records from an earlier process). Idempotent."""
        with self._lock:
            if self._thread is not None or self._closed:
                return
            self._thread = threading.Thread(
                target=self._run, name=f"genstore-recorder-{id(self):x}", daemon=True
            )
            self._thread.start()
