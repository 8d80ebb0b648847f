"""The background writer behind the middleware and ``@genstore.record``: no delay, no loss.

``Recorder.submit`` hands a record to a daemon worker through a bounded queue and returns at once.
The worker saves it with ``store.save_complete_operation``. When the queue is full, the store fails
(anything but ``InvalidInput``), or shutdown's drain time is over, the record goes to a durable
local spool (``genstore._spool``) and is replayed with exponential backoff once the store answers
again, under the same idempotency key, so a replay never duplicates a record. Records spooled by an
earlier process are replayed on start. ``store.close()``, ``close()`` and interpreter exit drain
the queue within a timeout and leave the rest spooled.

What can still be lost: records in the in-memory queue when the process is killed (SIGKILL, power
loss); the queue is normally empty within milliseconds. Everything spooled survives.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import queue
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ._ids import new_ulid
from ._spool import Spool, SpoolStatus
from .exceptions import BackendUnavailable, GenstoreError, InvalidInput

if TYPE_CHECKING:
    from ._store import Store

__all__ = ["Recorder", "RecorderCounters", "SpoolStatus", "default_spool_dir"]

logger = logging.getLogger(__name__)

_Outcome = Literal["saved", "rejected", "gone", "failed"]


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
    pending: int = 0
    """Records in the queue or being saved right now."""


@dataclass(slots=True, eq=False)
class _Item:
    kwargs: dict[str, Any]
    owned: tuple[str, ...]
    spooled: bool = False
    """Set once a copy is in the spool (by the worker, or by ``close`` while a save hangs)."""
    done: bool = False
    copied: threading.Event = field(default_factory=threading.Event)


def default_spool_dir(store: Store) -> Path:
    """``<root>/.spool`` for local stores; else a per-store folder under ``$GENSTORE_SPOOL_DIR``
    or ``$XDG_CACHE_HOME/genstore/spool`` (``~/.cache``), named by the store URL's SHA-256.

    The per-store folder keeps two stores that share one spool root from replaying each other's
    records.
    """
    for attribute in ("root", "path"):  # local stores expose their folder as a pathlib.Path
        root = getattr(store.blobs, attribute, None)
        if isinstance(root, Path):
            return root / ".spool"
    url = str(getattr(store.blobs, "url", "") or repr(store))
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    env = os.environ.get("GENSTORE_SPOOL_DIR")
    if env:
        return Path(env).expanduser() / digest
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "genstore" / "spool" / digest


class Recorder:
    """Saves records in a background thread; spools what cannot be saved now and replays it later.

    ``store.recorder`` is the one to use; make your own only for a separate spool or queue size.
    ``base_backoff``/``max_backoff`` bound the retry delays (seconds, with jitter);
    ``poll_interval`` is how often the spool is rescanned for records other processes left;
    ``fsync=False`` trades power-loss durability of the spool for speed (a killed process still
    loses nothing spooled).
    """

    def __init__(
        self,
        store: Store,
        *,
        spool_dir: str | os.PathLike[str] | None = None,
        queue_size: int = 1000,
        drain_timeout: float = 10.0,
        base_backoff: float = 0.5,
        max_backoff: float = 60.0,
        poll_interval: float = 5.0,
        fsync: bool = True,
    ) -> None:
        self._store = store
        path = Path(spool_dir) if spool_dir is not None else default_spool_dir(store)
        self._spool = Spool(path, fsync=fsync)
        self._queue_size = queue_size
        self.drain_timeout = drain_timeout
        self._base_backoff = base_backoff
        self._max_backoff = max_backoff
        self._poll_interval = poll_interval
        self._closed = False
        self._setup()
        _live.add(self)
        try:
            leftovers = self._spool.has_records()
        except OSError:
            leftovers = False
        if leftovers:  # an earlier process left records: replay them without waiting for traffic
            self.start()

    def _setup(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: queue.Queue[_Item | None] = queue.Queue(maxsize=self._queue_size)
        self._counts = {name: 0 for name in ("recorded", "spooled", "replayed", "dropped")}
        self._counts["rejected"] = 0
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._inflight: _Item | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._waiting: deque[str] = deque()
        self._waiting_due = 0.0
        self._retries: dict[str, tuple[int, float]] = {}
        self._next_scan = 0.0

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

        Never raises, never waits for the store. Sources may be bytes or file paths (or file objects
        and PIL images, read later: do not change them after submitting). ``owned_paths`` are files
        handed over with the record (e.g. spooled request bodies): the recorder moves or deletes
        them when done. Without an ``idempotency_key`` one is assigned, so replays never duplicate;
        ``created_at`` defaults to now, so a replayed record keeps its time. When the queue is full
        (the store is slower than the traffic), the record is spooled in the calling thread: a
        local disk write instead of a lost record.
        """
        try:
            item = _make_item(owned_paths, save_kwargs)
        except Exception:
            logger.exception("genstore: a record could not be prepared; dropped")
            self._count("dropped")
            return
        try:
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
            if not queued:
                self._to_spool(item)
        except Exception:
            logger.exception("genstore: recording failed; the record is dropped")
            self._count("dropped")

    @property
    def counters(self) -> RecorderCounters:
        """What was recorded, spooled, replayed, dropped, rejected so far; what is pending."""
        with self._lock:
            return RecorderCounters(pending=self._pending, **self._counts)

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

        Stops at the first failure other than invalid input (the store is down: try later).
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
            elif outcome == "failed":
                break
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

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=self._wait_time())
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._process(item)
                self._replay_due()
            except Exception:  # the worker must survive anything; the record is accounted for
                logger.exception("genstore: recorder worker error")

    def _wait_time(self) -> float:
        now = time.monotonic()
        if self._deadline is not None:
            return 0.05
        if now < self._retry_at:
            return self._retry_at - now
        with self._lock:
            if self._waiting:
                return max(0.0, self._waiting_due - now)
        return max(0.0, min(self._poll_interval, self._next_scan - now))

    def _process(self, item: _Item) -> None:
        with self._lock:
            self._inflight = item
        try:
            now = time.monotonic()
            if now < self._retry_at or (self._deadline is not None and now >= self._deadline):
                self._to_spool(item)  # the store is known down, or drain time is over
            else:
                self._save(item)
        finally:
            with self._lock:
                self._inflight = None
            self._release_pending()

    def _save(self, item: _Item) -> None:
        try:
            self._store.save_complete_operation(**item.kwargs)
        except InvalidInput as exc:
            logger.warning(
                "genstore: record rejected by the store (%s): %s", _key(item.kwargs), exc
            )
            self._count("rejected")
            self._finish(item)
        except Exception as exc:
            self._note_failure(exc)
            self._to_spool(item)
        else:
            self._count("recorded")
            self._note_success()
            self._finish(item)

    def _finish(self, item: _Item) -> None:
        with self._lock:
            item.done = True
            copy_taken = item.spooled
        if copy_taken:  # close() is copying our files into the spool: let it finish first
            item.copied.wait(30.0)
        _unlink_all(item.owned)

    def _to_spool(self, item: _Item) -> None:
        with self._lock:
            copy_taken, item.spooled = item.spooled, True
        if copy_taken:  # close() spooled a copy while the save ran
            self._finish(item)
            return
        try:
            ulid = self._spool.write(item.kwargs, owned=item.owned)
        except InvalidInput as exc:
            logger.warning("genstore: record cannot be spooled (%s): %s", _key(item.kwargs), exc)
            self._count("rejected")
        except Exception:
            logger.exception("genstore: spool %s failed; record dropped", self._spool.path)
            self._count("dropped")
        else:
            with self._lock:
                self._counts["spooled"] += 1
                self._waiting.append(ulid)
                self._waiting_due = 0.0

    def _spool_leftovers(self) -> None:
        """At close, past the drain time: spool what is queued and a copy of a hanging save."""
        for _ in range(self._queue_size + 1):
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self._to_spool(item)
                self._release_pending()
        with self._lock:
            item = self._inflight
            if item is None or item.done or item.spooled:
                return
            item.spooled = True
        try:
            ulid = self._spool.write(item.kwargs, owned=())
        except Exception:
            logger.exception("genstore: could not spool the record being saved at close")
        else:
            self._count("spooled")
            logger.info("genstore: spooled record %s while its save still runs", ulid)
        finally:
            item.copied.set()

    def _replay_due(self) -> None:
        now = time.monotonic()
        if now < self._retry_at or self._stop.is_set() or self._deadline is not None:
            return
        if now >= self._next_scan:
            self._next_scan = now + self._poll_interval
            self._rescan()
        ulid = self._next_waiting(now)
        if ulid is not None:
            self._replay(ulid)

    def _rescan(self) -> None:
        try:
            self._spool.recover()
            found = self._spool.waiting()
        except OSError as exc:
            logger.error("genstore: cannot read the spool %s: %s", self._spool.path, exc)
            return
        with self._lock:
            known = set(self._waiting)
            fresh = [u for u in found if u not in known]
            self._waiting.extend(fresh)
            if fresh:
                self._waiting_due = 0.0

    def _next_waiting(self, now: float) -> str | None:
        with self._lock:
            earliest = float("inf")
            for _ in range(len(self._waiting)):
                ulid = self._waiting.popleft()
                retry = self._retries.get(ulid)
                if retry is None or retry[1] <= now:
                    return ulid
                self._waiting.append(ulid)  # a record that keeps failing waits its own turn
                earliest = min(earliest, retry[1])
            # Nothing due: the worker sleeps until the first record is (or something new comes).
            self._waiting_due = min(earliest, now + self._poll_interval)
        return None

    def _replay(self, ulid: str) -> _Outcome:
        try:
            claimed = self._spool.claim(ulid)
        except OSError as exc:
            logger.error("genstore: cannot claim spooled record %s: %s", ulid, exc)
            return "failed"
        if claimed is None:  # another process took it, or it is unreadable
            self._retries.pop(ulid, None)
            return "gone"
        try:
            self._store.save_complete_operation(**claimed.kwargs)
        except InvalidInput as exc:
            logger.warning("genstore: spooled record %s rejected by the store: %s", ulid, exc)
            self._count("rejected")
            self._retries.pop(ulid, None)
            claimed.done()
            return "rejected"
        except Exception as exc:
            self._note_failure(exc)
            attempts = self._retries.get(ulid, (0, 0.0))[0] + 1
            self._retries[ulid] = (attempts, time.monotonic() + self._backoff(attempts))
            try:
                claimed.release()
            except OSError as release_error:
                logger.error("genstore: cannot put back spooled record %s: %s", ulid, release_error)
            with self._lock:
                self._waiting.append(ulid)
            return "failed"
        self._count("replayed")
        self._note_success()
        self._retries.pop(ulid, None)
        claimed.done()
        return "saved"

    # -- backoff and bookkeeping ------------------------------------------------------------------

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self._max_backoff, self._base_backoff * 2.0 ** min(attempts - 1, 30))
        return ceiling * random.uniform(0.5, 1.0)

    def _note_failure(self, exc: Exception) -> None:
        self._failures += 1
        delay = self._backoff(self._failures)
        self._retry_at = time.monotonic() + delay
        if self._failures == 1:
            if isinstance(exc, BackendUnavailable):
                logger.warning(
                    "genstore: store unavailable (%s); spooling, retry in %.1fs", exc, delay
                )
            else:
                logger.error("genstore: save failed; spooling the record", exc_info=exc)

    def _note_success(self) -> None:
        if self._failures:
            logger.info("genstore: store answers again after %d failures", self._failures)
        self._failures = 0
        self._retry_at = 0.0

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _release_pending(self) -> None:
        with self._lock:
            self._pending -= 1
            if self._pending <= 0:
                self._idle.notify_all()

    def _wake(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def _after_fork(self) -> None:
        # The parent keeps saving what it queued; the child starts empty with its own identity.
        self._spool.forget_lock_after_fork()
        self._spool = Spool(self._spool.path, fsync=self._spool.fsync)
        self._setup()


def _make_item(owned_paths: Sequence[str | os.PathLike[str]], kwargs: dict[str, Any]) -> _Item:
    if kwargs.get("idempotency_key") is None:
        kwargs["idempotency_key"] = f"auto-{new_ulid()[1]}"
    if kwargs.get("created_at") is None:
        kwargs["created_at"] = datetime.now(UTC)
    error = kwargs.get("error")
    if isinstance(error, BaseException):  # keep the message, not the traceback's frames
        kwargs["error"] = str(error) or type(error).__name__
    images = kwargs.get("input_images")
    if images is not None and not isinstance(images, (bytes, str)):
        kwargs["input_images"] = [_snapshot(image) for image in images]
    if "result" in kwargs:
        kwargs["result"] = _snapshot(kwargs["result"])
    return _Item(kwargs, tuple(os.fspath(p) for p in owned_paths))


def _snapshot(source: Any) -> Any:
    # A bytearray or memoryview may be reused by the caller as soon as submit returns.
    return bytes(source) if isinstance(source, (bytearray, memoryview)) else source


def _key(kwargs: dict[str, Any]) -> str:
    return str(kwargs.get("idempotency_key"))


def _unlink_all(paths: Sequence[str]) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)


_live: weakref.WeakSet[Recorder] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At interpreter exit: drain every open recorder within its drain timeout."""
    for recorder in list(_live):
        try:
            recorder.close()
        except Exception:
            logger.exception("genstore: closing a recorder at exit failed")


def _after_fork_in_child() -> None:
    for recorder in list(_live):
        recorder._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
