"""Smoke tests of the benchmark code itself: it runs and reports what run_all.py renders.

No timing assertions: speed goals live in bench/RESULTS.md, not in the test suite.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    # The benchmarks import each other as ``bench.<module>`` from the repository root.
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    return importlib.import_module(f"bench.{name}")


def test_history_benchmark_runs_and_the_scan_agrees_with_history() -> None:
    bench_core = _load("bench_core")
    section = bench_core.bench_history(records=1000, queries=10, scan_runs=2)
    assert section["name"] == "B2 history"
    assert "error" not in section
    rows = {row["metric"]: row for row in section["rows"]}
    assert {"history median", "history p95"} <= rows.keys()
    median = rows["history median"]
    assert median["unit"] == "ms"
    assert median["value"] > 0
    assert median["baseline"] > 0
    assert median["ratio"] > 0
    assert isinstance(median["ok"], bool)
    # The sidecar scan (the baseline) must answer the same query as store.history.
    assert section["params"]["scan_matches"] == 2


def _outcome(result: Any, **extra: Any) -> dict[str, Any]:
    return {"name": "demo", "started": "now", "seconds": 1.0, "result": result, **extra}


def test_run_all_renders_conventional_and_odd_results(tmp_path: Path) -> None:
    run_all = _load("run_all")
    conventional = {
        "benchmarks": [
            {
                "name": "D1 thing",
                "description": "a demo",
                "rows": [
                    {
                        "metric": "speed",
                        "value": 12.5,
                        "unit": "ops/s",
                        "baseline": 25.0,
                        "baseline_label": "floor",
                        "ratio": 0.5,
                        "ratio_label": "ours / floor",
                        "goal": "ratio >= 0.7",
                        "ok": False,
                        "runs": [1, 2],
                    },
                    {"latency": 3},
                    {"metric": "no goal here", "value": 1, "goal": None},
                    "a bare string row",
                ],
                "notes": ["one note"],
                "surprise": {"k": 1},
            },
            {"name": "D2 broken", "error": "ValueError: boom", "traceback": "Traceback ..."},
            ["not", "a", "dict"],
        ]
    }
    text = run_all.render_module(_outcome(conventional))
    for expected in (
        "### D1 thing",
        "12.5 ops/s",
        "25 (floor)",
        "0.5 (ours / floor)",
        "❌",
        "runs=[1,2]",
        "latency=3",
        "a bare string row",
        "- one note",
        "**surprise**",
        "**Failed:** `ValueError: boom`",
        "['not', 'a', 'dict']",
    ):
        assert expected in text, expected
    assert "None" not in text  # a goal of None is no goal, neither shown nor summarised
    odd = run_all.render_module(_outcome(42))
    assert "42" in odd
    failed = run_all.render_module({"name": "demo", "error": "ImportError: x", "traceback": "tb"})
    assert "ImportError: x" in failed


def test_only_rewrites_its_own_block_and_keeps_the_others(tmp_path: Path) -> None:
    run_all = _load("run_all")
    out = tmp_path / "RESULTS.md"
    row = {"metric": "m", "value": 1, "goal": "<= 2", "ok": True}
    first = {
        "a": run_all.render_module({"name": "a", "result": {"name": "A", "rows": [row]}}),
        "b": run_all.render_module({"name": "b", "result": {"name": "B", "rows": [row]}}),
    }
    run_all.write_results(out, first, {"date": "d1"}, ["a", "b"])
    again = {"b": run_all.render_module({"name": "b", "result": {"name": "B2", "rows": [row]}})}
    text = run_all.write_results(out, again, {"date": "d2"}, ["a", "b"])
    assert "### A" in text
    assert "### B2" in text
    assert "### B\n" not in text
    assert text.count("| A | m |") == 1  # the glance table lists kept blocks too
    assert "d2" in text


def test_save_benchmark_reports_both_goals_of_the_distinct_variant() -> None:
    core_save = _load("_core_save")
    section = core_save.bench_save(ops=10, fsync_ops=5, rounds=1)
    rows = {row["metric"]: row for row in section["rows"]}
    ops = rows["save ops/s, distinct inputs, no fsync"]
    cpu = rows["CPU per save, distinct inputs, no fsync"]
    assert ops["goal"] == "ratio >= 0.9" and isinstance(ops["ok"], bool)
    assert cpu["goal"] == "ratio <= 1.3" and isinstance(cpu["ok"], bool)
    # The CPU ratio is genstore's CPU over the floor's, as the goal reads.
    assert cpu["ratio"] == pytest.approx(cpu["round ratios"][0])
    assert cpu["value"] > 0 and cpu["baseline"] > 0


def test_recorder_cpu_benchmark_counts_only_complete_runs() -> None:
    bench_asgi = _load("bench_asgi")
    section = bench_asgi.bench_recorder_cpu(requests=30, rounds=1)
    first = section["rows"][0]
    assert first["goal"] == "<= 500 µs" and isinstance(first["ok"], bool)
    assert first["value"] > 0 and first["baseline"] > 0
    # Every request of the run (the warm-up's too) was saved as a record, none spooled.
    assert section["params"]["records_saved"] == 30 + 200
    assert section["params"]["recorder_counters"]["spooled"] == 0
