"""Where B1's time goes: wall ms per operation of each step of a save, genstore vs the floor.

    uv run python bench/profile_save.py [OPS] [ROUNDS]

Wraps genstore's steps (hash + sniff, blob writes by kind, existence check, image header,
catalog upsert) with timers, runs genstore and the raw floor interleaved as B1 does, and prints a
table. It patches private names of ``genstore._saving``: a diagnostic for developers, not part of
the benchmark suite (run_all.py only runs ``bench_*.py``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _core_save
from bench._util import KiB, MiB, fresh_dir


class _Timers:
    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    @contextmanager
    def timing(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] += time.perf_counter() - start

    def wrap(self, name: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            label = name(*args, **kwargs) if callable(name) else name
            with self.timing(label):
                return fn(*args, **kwargs)

        return timed


def _kind(key: str, *args: Any, **kwargs: Any) -> str:
    if key.startswith("inputs/"):
        return "write input blob"
    return "write record JSON" if key.endswith(".json") else "write result blob"


def _floor_kind(tmp_dir: str, dest: str, *args: Any) -> str:
    return _kind("inputs/" if f"{os.sep}inputs{os.sep}" in dest else dest)


def _instrument(store: Any, timers: _Timers) -> None:
    import genstore._saving as core
    import genstore._sources as sources

    # _saving imported prepare by name: patch it there. Payload is the class _sources defines.
    core.prepare = timers.wrap("hash + sniff (prepare)", sources.prepare)  # type: ignore[attr-defined]
    dimensions = timers.wrap("image header (Pillow)", sources.Payload.dimensions)
    sources.Payload.dimensions = dimensions  # type: ignore[method-assign]
    store.blobs.write = timers.wrap(_kind, store.blobs.write)
    store.blobs.exists = timers.wrap("input exists check", store.blobs.exists)
    store.catalog.upsert_operation = timers.wrap("SQLite upsert", store.catalog.upsert_operation)


def profile(ops: int = 300, rounds: int = 3) -> dict[str, dict[str, float]]:
    """Median over rounds of wall ms/op for each step, for genstore and the floor."""
    import genstore

    in_base = _core_save._noise_png(256 * KiB, seed=1)
    result = _core_save._padded(_core_save._noise_png(MiB, seed=2), MiB, 0)
    inputs = [_core_save._padded(in_base, 256 * KiB, i) for i in range(ops)]
    per_round: dict[str, dict[str, list[float]]] = {
        "genstore": defaultdict(list),
        "floor": defaultdict(list),
    }
    for _ in range(rounds):
        ours, floor_timers = _Timers(), _Timers()
        with fresh_dir("profile") as root, genstore.open_store(str(root / "g")) as store:
            _instrument(store, ours)
            floor = _core_save._Floor(root / "f", fsync=False)
            atomic = _core_save._atomic_write
            _core_save._atomic_write = floor_timers.wrap(_floor_kind, atomic)
            try:
                for first in range(0, ops, 5):
                    for i in range(first, min(ops, first + 5)):
                        with ours.timing("total"):
                            store.save_complete_operation(
                                operation_type="image_edit_single",
                                prompt="a cat in a hat",
                                parameters={**_core_save._PARAMS, "seed": i},
                                input_images=[inputs[i]],
                                result=result,
                                user_id="user_1",
                            )
                    for i in range(first, min(ops, first + 5)):
                        with floor_timers.timing("total"):
                            floor.save(i, inputs[i], result, {**_core_save._PARAMS, "seed": i})
            finally:
                _core_save._atomic_write = atomic
        for side, timers in (("genstore", ours), ("floor", floor_timers)):
            known = sum(v for k, v in timers.spent.items() if k != "total")
            timers.spent["everything else"] = timers.spent["total"] - known
            for step, seconds in timers.spent.items():
                per_round[side][step].append(seconds / ops * 1000)
    return {
        side: {step: statistics.median(v) for step, v in steps.items()}
        for side, steps in per_round.items()
    }


def main(argv: list[str]) -> int:
    ops = int(argv[0]) if argv else 300
    rounds = int(argv[1]) if len(argv) > 1 else 3
    figures = profile(ops, rounds)
    steps = list(dict.fromkeys([*figures["genstore"], *figures["floor"]]))
    steps.sort(key=lambda s: (s == "total", s == "everything else"))
    print(f"{'step (wall ms per operation, median of rounds)':50s} {'genstore':>9s} {'floor':>9s}")
    for step in steps:
        g, f = figures["genstore"].get(step, 0.0), figures["floor"].get(step, 0.0)
        print(f"{step:50s} {g:9.3f} {f:9.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
