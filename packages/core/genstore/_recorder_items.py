"""What the recorder queues: a record's save arguments, made safe to save later in another thread.

``_make_item`` fills in what a replay needs to stay the same record (an idempotency key, the
creation time) and copies what the caller may reuse once ``Recorder.submit`` returns.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ._ids import new_ulid


@dataclass(slots=True, eq=False)
class _Item:
    kwargs: dict[str, Any]
    owned: tuple[str, ...]
    spooled: bool = False
    """Set once a copy is in the spool (by the worker, or by ``close`` while a save hangs)."""
    done: bool = False
    copied: threading.Event = field(default_factory=threading.Event)


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
