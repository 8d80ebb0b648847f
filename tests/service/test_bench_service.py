"""B10 runs at its quick size and reports figures for both sections (no timing assertions)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_b10_runs_quick_and_reports_every_row() -> None:
    # The benchmarks import each other as ``bench.<module>`` from the repository root.
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    result = importlib.import_module("bench.bench_service").run(quick=True)
    sections = {s["name"]: s for s in result["benchmarks"]}
    assert set(sections) == {"B10 upload", "B10 list"}
    for s in sections.values():
        assert "error" not in s, s.get("traceback")
        for row in s["rows"]:
            assert row["value"] > 0 and row["baseline"] > 0 and row["ratio"] > 0
    assert sections["B10 upload"]["params"]["png_bytes"] > 1_000_000
