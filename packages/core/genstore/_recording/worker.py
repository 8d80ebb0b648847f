"""The recorder's background side: the worker loop, spooling, replay and backoff scheduling.

``Recorder`` (``genstore._recording.recorder``) inherits this and adds the caller's side. One worker thread
saves queued records, several at a time when several are queued (their catalog rows in one
transaction); what cannot be saved now goes to the spool and is replayed, oldest first, once the
store answers again. After a failure the store counts as down for an exponentially
growing, jittered delay; a spooled record that keeps failing gets its own delay, so it does not
hold up the others.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

from .._records import SaveResult
from .._save_request import JobCompletion, SaveRequest
from ..exceptions import BackendUnavailable, InvalidInput
from .downloads import Downloads, needs_download
from .items import Item, Recordable, unlink_all
from .latency import SaveLatency
from .metrics import record_save_seconds
from .spool import ClaimedRecord, Spool

# The recorder's messages keep the one logger name they had before its modules were split.
logger = logging.getLogger("genstore._recorder")

_Outcome = Literal["saved", "rejected", "gone", "failed", "quarantined"]

QUARANTINE_AFTER = 3
"""Tries before a record failing for its own content (not an unavailable store) is set aside."""


class SaveTarget(Protocol):
    """What the recorder saves into (a ``Store``)."""

    def save(self, request: SaveRequest) -> SaveResult:
        """Save one request; typed genstore errors when it cannot."""
        ...

    def complete_job(self, job: JobCompletion) -> SaveResult:
        """Complete a started job, or save its fallback."""
        ...

    def fetch(self, url: str, path: Path) -> str | None:
        """Download ``url`` into the new file ``path``; the error, or None."""
        ...

    def save_batch(self, requests: Sequence[SaveRequest]) -> list[SaveResult | Exception | None]:
        """Save several; per request its result, its exception, or None if not attempted."""
        ...


def apply(target: SaveTarget, request: Recordable) -> SaveResult:
    """Save ``request`` into ``target``, whichever kind it is."""
    if isinstance(request, JobCompletion):
        return target.complete_job(request)
    return target.save(request)


class RecorderWorker:
    """State and methods of the worker thread; ``Recorder.__init__`` sets the configuration."""

    _target: SaveTarget
    _spool: Spool
    _queue_size: int
    _batch_size: int
    _base_backoff: float
    _max_backoff: float
    _poll_interval: float
    _closed: bool

    def _setup(self) -> None:
        """Fresh worker state: at construction, and in a forked child."""
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queue: queue.Queue[Item | None] = queue.Queue(maxsize=self._queue_size)
        self._counts = {name: 0 for name in ("recorded", "spooled", "replayed", "dropped")}
        self._counts["rejected"] = self._counts["quarantined"] = 0
        self._counts["download_failures"] = 0
        self._latency = SaveLatency()
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._deadline: float | None = None
        self._inflight: list[Item] = []
        self._prefetching: set[Item] = set()
        self._downloads = Downloads(self._spool.path / "downloads", self._fetch)
        self._failures = 0
        self._retry_at = 0.0
        self._waiting: deque[str] = deque()
        self._waiting_due = 0.0
        self._retries: dict[str, tuple[int, float]] = {}
        self._next_scan = 0.0

    # -- the worker loop -----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=self._wait_time())
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._process(self._with_queued(item))
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

    def _with_queued(self, first: Item) -> list[Item]:
        """``first`` and what else is queued right now, up to the batch size."""
        items = [first]
        while len(items) < self._batch_size:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:  # None only wakes the worker up, which it is
                items.append(item)
        return items

    def _process(self, items: list[Item]) -> None:
        ready = []
        for item in items:
            if self._deadline is None and not item.fetched and needs_download(item.request):
                self._prefetch(item)  # back in line once its results are downloaded
            else:
                ready.append(item)
        with self._lock:
            self._inflight = ready
        try:
            self._save(ready)
        finally:
            with self._lock:
                self._inflight = []
            self._release_pending(len(ready))

    def _prefetch(self, item: Item) -> None:
        with self._lock:
            self._prefetching.add(item)
        self._downloads.submit(lambda: self._download(item))

    def _download(self, item: Item) -> None:
        """On the download pool: fetch ``item``'s results, then put it back in line (or spool
        it, if the recorder is closing; or finish it, if close already spooled a copy)."""
        try:
            item.request, paths = self._downloads.fetch_all(item.request)
            item.owned = (*item.owned, *paths)
        except Exception:
            logger.exception("genstore: downloading a record's results failed")
        item.fetched = True
        with self._lock:
            self._prefetching.discard(item)
            copy_taken = item.spooled
            closing = self._deadline is not None or self._stop.is_set()
            queued = False
            if not (copy_taken or closing):
                try:
                    self._queue.put_nowait(item)
                    queued = True
                except queue.Full:
                    pass
        if queued:
            return
        if copy_taken:
            self._finish(item)
        else:
            self._to_spool(item, fetch=False)
        self._release_pending(1)

    def _store_down(self) -> bool:
        """The store is known down, or drain time is over: records go to the spool."""
        now = time.monotonic()
        return now < self._retry_at or (self._deadline is not None and now >= self._deadline)

    def _save(self, items: list[Item]) -> None:
        batch = [item for item in items if isinstance(item.request, SaveRequest)]
        if len(batch) > 1 and not self._store_down():
            # One catalog transaction for them all, instead of one commit per record.
            requests = [item.request for item in batch if isinstance(item.request, SaveRequest)]
            started = time.perf_counter()
            try:
                outcomes = self._target.save_batch(requests)
            except Exception as exc:  # the batch call itself failed: every item goes on later
                outcomes = [exc] + [None] * (len(batch) - 1)
            self._observe_save(started, sum(outcome is not None for outcome in outcomes))
            for item, result in zip(batch, outcomes, strict=True):
                self._settle(item, result)
            items = [item for item in items if not isinstance(item.request, SaveRequest)]
        for item in items:
            if self._store_down():
                self._to_spool(item)
                continue
            try:
                outcome: SaveResult | Exception = self._apply(item.request)
            except Exception as exc:
                outcome = exc
            self._settle(item, outcome)

    def _settle(self, item: Item, outcome: SaveResult | Exception | None) -> None:
        """Count and finish an item by the outcome of its save (None: not attempted)."""
        if isinstance(outcome, InvalidInput):
            logger.warning("genstore: record rejected by the store (%s): %s", item.key, outcome)
            self._count("rejected")
            self._finish(item)
        elif isinstance(outcome, Exception):
            self._note_failure(outcome)
            self._to_spool(item)
        elif outcome is None:
            self._to_spool(item)
        else:
            self._count("recorded")
            self._note_success()
            self._finish(item)

    def _finish(self, item: Item) -> None:
        with self._lock:
            item.done = True
            copy_taken = item.spooled
        if copy_taken:  # close() is copying our files into the spool: let it finish first
            item.copied.wait(30.0)
        unlink_all(item.owned)
        item.settle()

    def _to_spool(self, item: Item, *, fetch: bool = True) -> None:
        """Spool ``item``; ``fetch``: download its result URLs into the spool first (they expire,
        and signed ones are credentials), as the worker does; the caller's thread does not."""
        with self._lock:
            copy_taken, item.spooled = item.spooled, True
        if copy_taken:  # close() spooled a copy while the save ran
            self._finish(item)
            return
        try:
            fetcher = self._fetch if fetch else None
            ulid = self._spool.write(item.request, owned=item.owned, fetch=fetcher)
        except InvalidInput as exc:
            logger.warning("genstore: record cannot be spooled (%s): %s", item.key, exc)
            self._count("rejected")
            item.settle()
        except Exception:
            logger.exception("genstore: spool %s failed; record dropped", self._spool.path)
            self._count("dropped")
        else:
            item.settle()
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
                self._to_spool(item, fetch=False)  # past the drain time: no download now
                self._release_pending(1)
        with self._lock:
            busy = [*self._inflight, *self._prefetching]
            hanging = [item for item in busy if not (item.done or item.spooled)]
            for item in hanging:
                item.spooled = True
        for item in hanging:
            try:
                ulid = self._spool.write(item.request, owned=())
            except Exception:
                logger.exception("genstore: could not spool the record being saved at close")
            else:
                self._count("spooled")
                item.settle()
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
            self._apply(claimed.request)
        except InvalidInput as exc:
            logger.warning("genstore: spooled record %s rejected by the store: %s", ulid, exc)
            self._count("rejected")
            self._retries.pop(ulid, None)
            claimed.done()
            return "rejected"
        except Exception as exc:
            self._note_failure(exc)
            attempts = self._retries.get(ulid, (0, 0.0))[0] + 1
            if not isinstance(exc, BackendUnavailable) and attempts >= QUARANTINE_AFTER:
                return self._quarantine(ulid, claimed, exc)
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

    def _quarantine(self, ulid: str, claimed: ClaimedRecord, exc: Exception) -> _Outcome:
        self._retries.pop(ulid, None)
        try:
            claimed.quarantine(f"{type(exc).__name__}: {exc}")
        except OSError as error:
            logger.error("genstore: cannot quarantine spooled record %s: %s", ulid, error)
            return "failed"
        logger.error("genstore: spooled record %s quarantined after %d tries: %s",
                     ulid, QUARANTINE_AFTER, exc)  # fmt: skip
        self._count("quarantined")
        return "quarantined"

    # -- timing and counting the store's work -----------------------------------------------------

    def _apply(self, request: Recordable) -> SaveResult:
        """``apply``, timed into the save-latency histogram (whatever its outcome)."""
        started = time.perf_counter()
        try:
            return apply(self._target, request)
        finally:
            self._observe_save(started)

    def _observe_save(self, started: float, records: int = 1) -> None:
        """Observe ``records`` saves done together since ``started``, each its equal share."""
        if records <= 0:
            return
        share = (time.perf_counter() - started) / records
        with self._lock:
            self._latency.observe(share, records)
        record_save_seconds(share, records)

    def _fetch(self, url: str, path: Path) -> str | None:
        """The store's ``fetch``, counting the downloads that failed."""
        try:
            error = self._target.fetch(url, path)
        except Exception:
            self._count("download_failures")
            raise
        if error is not None:
            self._count("download_failures")
        return error

    # -- backoff and bookkeeping ------------------------------------------------------------------

    def _backoff(self, attempts: int) -> float:
        ceiling = min(self._max_backoff, self._base_backoff * 2.0 ** min(attempts - 1, 30))
        return ceiling * random.uniform(0.5, 1.0)

    def _note_failure(self, exc: Exception) -> None:
        if not isinstance(exc, BackendUnavailable):
            # The record's own failure (a hook, its content): the store is not down, so the
            # records after it are not held back; this one goes to the spool and is retried,
            # then quarantined.
            logger.error("genstore: a record failed to save; spooled for retry", exc_info=exc)
            return
        self._failures += 1
        delay = self._backoff(self._failures)
        self._retry_at = time.monotonic() + delay
        if self._failures == 1:
            logger.warning("genstore: store unavailable (%s); spooling, retry in %.1fs", exc, delay)

    def _note_success(self) -> None:
        if self._failures:
            logger.info("genstore: store answers again after %d failures", self._failures)
        self._failures = 0
        self._retry_at = 0.0

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def _release_pending(self, count: int) -> None:
        with self._lock:
            self._pending -= count
            if self._pending <= 0:
                self._idle.notify_all()

    def _wake(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)

    def after_fork(self) -> None:
        # The parent keeps saving what it queued; the child starts empty with its own identity.
        self._spool.forget_lock_after_fork()
        self._spool = Spool(self._spool.path, fsync=self._spool.fsync)
        self._setup()
