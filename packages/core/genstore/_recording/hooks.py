"""Process-wide hooks for every open recorder: drain at interpreter exit, start afresh after fork.

Registered when ``genstore._recording.recorder`` is first imported (it imports this module).
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from typing import Protocol

# The recorder's messages keep the one logger name they had before its modules were split.
logger = logging.getLogger("genstore._recorder")


class Drainable(Protocol):
    """A recorder, as these hooks see it."""

    def close(self, timeout: float | None = None) -> None: ...

    def after_fork(self) -> None: ...


_live: weakref.WeakSet[Drainable] = weakref.WeakSet()
"""Recorders made and not yet closed (``Recorder.__init__`` adds, ``Recorder.close`` discards)."""


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
        recorder.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
