"""Core benchmarks of genstore on the local backend (files + SQLite), each against a baseline.

    B1 save     save_complete_operation (1 MiB result + 256 KiB input + params) vs the raw floor:
                the same bytes written by plain Python, temp file + os.replace (and both with fsync)
    B2 history  newest 50 for one user and type among 100,000 records vs scanning the JSON sidecars
    B3 memory   a 1 GiB result_url streamed from 127.0.0.1 into the store: peak RSS growth, MB/s

Run ``uv run python bench/bench_core.py [--quick] [--only B1,B2,B3]`` (prints JSON), or through
``bench/run_all.py``. ``run()`` returns ``{"name": "core", "benchmarks": [section, ...]}`` in the
convention run_all.py documents. Scratch stores go under ``$GENSTORE_BENCH_DIR`` (default: the
system temp folder); give one on the filesystem you care about.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._core_history import bench_history
from bench._core_memory import bench_memory
from bench._core_save import bench_save
from bench._util import GiB, MiB, section

__all__ = ["FULL", "QUICK", "Sizes", "bench_history", "bench_memory", "bench_save", "run"]


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    save_ops: int
    """B1: operations per round (no fsync)."""
    fsync_ops: int
    """B1: operations per round with fsync (each costs several disk flushes)."""
    save_rounds: int
    """B1: rounds; each compares both sides in fresh folders."""
    history_records: int
    """B2: records in the catalog and on disk."""
    history_queries: int
    """B2: timed history queries."""
    scan_runs: int
    """B2: timed sidecar scans (each reads every record)."""
    memory_bytes: int
    """B3: size of the result downloaded."""
    memory_rounds: int
    """B3: subprocess runs per side."""


FULL = Sizes(1000, 300, 3, 100_000, 300, 3, GiB, 2)
QUICK = Sizes(100, 30, 1, 10_000, 50, 1, 64 * MiB, 1)


def run(quick: bool = False, *, parts: Collection[str] | None = None) -> dict[str, Any]:
    """Run B1, B2 and B3 (or the named ``parts``); ``quick`` shrinks every size for a smoke run."""
    sizes = QUICK if quick else FULL
    wanted = {p.strip().upper() for p in parts} if parts else {"B1", "B2", "B3"}
    sections = []
    if "B1" in wanted:
        sections.append(
            section(
                "B1 save",
                lambda: bench_save(sizes.save_ops, sizes.fsync_ops, sizes.save_rounds),
            )
        )
    if "B2" in wanted:
        sections.append(
            section(
                "B2 history",
                lambda: bench_history(
                    sizes.history_records, sizes.history_queries, sizes.scan_runs
                ),
            )
        )
    if "B3" in wanted:
        sections.append(
            section("B3 memory", lambda: bench_memory(sizes.memory_bytes, sizes.memory_rounds))
        )
    return {"name": "core", "benchmarks": sections, "params": {"quick": quick}}


def main(argv: Sequence[str]) -> int:
    quick = "--quick" in argv
    parts = None
    if "--only" in argv:
        parts = argv[argv.index("--only") + 1].split(",")
    print(json.dumps(run(quick, parts=parts), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
