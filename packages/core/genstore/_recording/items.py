"""What the recorder queues: a request made safe to save later, and the files handed over with it."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from .._save_request import SaveRequest


@dataclass(slots=True, eq=False)
class Item:
    """One queued record."""

    request: SaveRequest
    owned: tuple[str, ...]
    """Files handed over with the record (spooled request bodies): removed once it is saved."""
    spooled: bool = False
    """Set once a copy is in the spool (by the worker, or by ``close`` while a save hangs)."""
    done: bool = False
    copied: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def of(cls, request: SaveRequest, owned_paths: Sequence[str | os.PathLike[str]]) -> Item:
        """``request`` with an idempotency key and a creation time, so replays stay one record."""
        return cls(request.for_later(), tuple(os.fspath(p) for p in owned_paths))

    @property
    def key(self) -> str:
        """The idempotency key, for log lines."""
        return str(self.request.idempotency_key)


def unlink_all(paths: Sequence[str]) -> None:
    """Delete ``paths``, ignoring those already gone."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.unlink(path)
