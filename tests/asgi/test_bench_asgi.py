"""Smoke tests of bench/bench_asgi.py: each benchmark runs at tiny sizes and reports its rows.

No timing assertions (speed goals live in bench/RESULTS.md): these pin that the benchmark code
works and that B9 really recorded every upload into the store.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[2]
_DIFFERENCES = (
    "background",
    "request-path",
    "unmatched request, the middleware's own cost",
    "write-ahead journal",
)


@pytest.fixture(scope="module")
def bench_asgi() -> ModuleType:
    if str(_ROOT) not in sys.path:  # the benchmarks import each other as ``bench.<module>``
        sys.path.insert(0, str(_ROOT))
    return importlib.import_module("bench.bench_asgi")


def check(section: dict[str, Any], name: str, metrics: set[str]) -> dict[str, dict[str, Any]]:
    assert section["name"] == name
    assert "error" not in section, section.get("traceback")
    rows = {row["metric"]: row for row in section["rows"]}
    assert metrics <= rows.keys()
    for row in rows.values():
        # Differences of two timings may come out at or below 0 on a busy machine: only ask
        # that they are numbers. Everything else is a rate, a ratio or a time: positive.
        if row["metric"].startswith(_DIFFERENCES):
            assert math.isfinite(row["value"])
        else:
            assert row["value"] > 0
        assert row["ok"] in (True, False, None)
    return rows


@pytest.mark.slow
def test_b7_overhead_runs(bench_asgi: ModuleType) -> None:
    section = bench_asgi.bench_overhead(inprocess_requests=2000, uvicorn_requests=50, rounds=1)
    rows = check(
        section,
        "B7 overhead",
        {
            "in-process, unmatched route",
            "uvicorn, unmatched route",
            "request-path CPU added, in-process",
            "request-path CPU added, uvicorn",
        },
    )
    assert rows["uvicorn, unmatched route"]["baseline"] > 0


@pytest.mark.slow
def test_b8_latency_runs(bench_asgi: ModuleType) -> None:
    section = bench_asgi.bench_latency(requests=10, rounds=1)
    rows = check(section, "B8 latency", {"p50 latency", "p99 latency"})
    assert rows["p99 latency"]["value"] >= rows["p50 latency"]["value"]
    # 30 recorded requests against 200 ms saves: a backlog must exist, or nothing was slowed.
    assert section["params"]["records_unsaved_at_end_of_rounds"][0] > 0


@pytest.mark.slow
def test_b9_memory_runs_and_stores_every_upload(bench_asgi: ModuleType) -> None:
    # bench_memory raises if the store does not hold one input per upload, of the right size.
    section = bench_asgi.bench_memory(uploads=2, size=3_000_000)
    check(section, "B9 memory", {"peak RSS growth, recording"})


@pytest.mark.slow
def test_b10_first_event_runs(bench_asgi: ModuleType) -> None:
    section = bench_asgi.bench_first_event(streams=5)
    rows = check(section, "B12 stream", {"p50 time to first event", "p90 time to first event"})
    assert rows["p50 time to first event"]["baseline"] > 0
