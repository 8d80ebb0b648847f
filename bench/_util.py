"""Helpers shared by the benchmark modules: scratch folders, percentiles, failure-proof sections.

Import as ``from bench import _util`` (run_all.py and the scripts put the repository root on
``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = ["GiB", "KiB", "MiB", "fresh_dir", "percentile", "section"]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@contextlib.contextmanager
def fresh_dir(tag: str, *, sync: bool = True, base: str | None = None) -> Iterator[Path]:
    """A new empty folder under ``base``, else ``$GENSTORE_BENCH_DIR`` (default: the temp
    folder), removed after.

    With ``sync``, dirty pages are flushed after removal (``os.sync``, machine-wide) so the next
    timed write run starts from the same state.
    """
    base = base or os.environ.get("GENSTORE_BENCH_DIR") or None
    path = Path(tempfile.mkdtemp(prefix=f"genstore-bench-{tag}-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        if sync:
            os.sync()


def section(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run one benchmark; a failure becomes a section saying so, so the others still report."""
    try:
        return fn()
    except Exception as exc:
        return {
            "name": name,
            "error": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(limit=8),
        }
