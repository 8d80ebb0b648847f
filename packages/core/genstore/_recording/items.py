"""What the recorder queues: a request made safe to save later, and the files handed over with it."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .._save_request import JobCompletion, SaveRequest

Recordable = SaveRequest | JobCompletion
"""What the recorder saves: an operation, or a job's completion."""


@dataclass(slots=True, eq=False)
class Item:
    """One queued record."""

    request: Recordable
    owned: tuple[str, ...]
    """Files handed over with the record (spooled request bodies): removed once it is saved."""
    spooled: bool = False
    """Set once a copy is in the spool (by the worker, or by ``close`` while a save hangs)."""
    done: bool = False
    fetched: bool = False
    """Set once its result URLs were downloaded (or tried): it is not sent to download again."""
    copied: threading.Event = field(default_factory=threading.Event)
    settled: Callable[[], None] | None = None
    """Called once the record is saved, spooled or refused (a write-ahead journal's entry can go
    then); never when it is dropped, so the journal keeps what nothing else could."""

    @classmethod
    def of(
        cls,
        request: Recordable,
        owned_paths: Sequence[str | os.PathLike[str]],
        settled: Callable[[], None] | None = None,
    ) -> Item:
        """``request`` with its operation id and creation time chosen, so replays stay one record."""
        return cls(request.for_later(), tuple(os.fspath(p) for p in owned_paths), settled=settled)

    def settle(self) -> None:
        """Call ``settled`` (once)."""
        settled, self.settled = self.settled, None
        if settled is not None:
            settled()

    @property
    def key(self) -> str:
        """The idempotency key or operation id, for log lines."""
        return key_of(self.request)


def key_of(request: Recordable) -> str:
    """A request's idempotency key, else its operation id (a job completion's fallback's), for
    log lines."""
    if isinstance(request, JobCompletion):
        request = request.fallback
    return str(request.idempotency_key or request.operation_id)


def unlink_all(paths: Sequence[str]) -> None:
    """Delete ``paths``, ignoring those already gone."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
