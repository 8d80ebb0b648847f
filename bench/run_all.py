"""Run every ``bench/bench_*.py`` that exposes ``run()`` and write ``bench/RESULTS.md``.

    uv run python bench/run_all.py                 # everything, full sizes -> bench/RESULTS.md
    uv run python bench/run_all.py --only core     # one module (repeat or comma-separate NAMEs)
    uv run python bench/run_all.py --quick         # shrunk sizes; prints, writes only with --output

NAME is the module name without ``bench_`` (``core``, ``asgi``, ``s3``, ``postgres_history``, ``service``).
With ``--only``, the other modules' sections already in the output file are kept as they were.
One benchmark failing (import error, exception) is reported in its section and the others still
run; the exit status is 1 if any failed. Missed goals are reported, not failures.

The convention for ``run(quick: bool = False) -> dict``
--------------------------------------------------------

::

    {
      "name": "core",                        # optional; defaults to the module's NAME
      "benchmarks": [section, ...],          # optional; without it the dict is one section
      "params": {...},                       # optional; shown under the module heading
    }

    section = {
      "name": "B1 save",                     # heading
      "description": "what is measured",     # one sentence
      "rows": [                              # one table row each
        {
          "metric": "save ops/s, distinct inputs",
          "value": 812.5, "unit": "ops/s",   # the figure measured (number or text) and its unit
          "baseline": 1004.2,                # the baseline measured in the same run
          "baseline_label": "raw floor ops/s",
          "ratio": 0.809,                    # the benchmark decides what it divides...
          "ratio_label": "genstore / floor", # ...and says so here
          "goal": ">= 0.7",                  # the goal, as text
          "ok": True,                        # whether this run met the goal (None: no goal)
          # any other key is shown as key=value in a "details" column
        },
      ],
      "params": {"ops": 1000},               # sizes used
      "notes": ["method, caveats"],
      "error": "ValueError: ...",            # when the benchmark failed (then rows may be absent)
      "traceback": "...",
    }

Everything is optional and rendered tolerantly: unknown keys become key/value lines, rows with
other keys get columns of their own, and a return value that is not a dict is shown as text.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import inspect
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

_BENCH = Path(__file__).resolve().parent
_ROOT = _BENCH.parent
# The modules import each other as ``bench.<module>``; tolerate ``import <sibling>`` too.
for _path in (str(_ROOT), str(_BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

__all__ = ["discover", "machine_info", "main", "render_module", "run_module", "write_results"]

_KNOWN_ROW_KEYS = (
    "metric",
    "value",
    "unit",
    "baseline",
    "baseline_label",
    "ratio",
    "ratio_label",
    "goal",
    "ok",
)
_KNOWN_SECTION_KEYS = {
    "name",
    "description",
    "rows",
    "params",
    "notes",
    "error",
    "traceback",
    "benchmarks",
}
_BLOCK = re.compile(
    r"<!-- bench:(?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->\n?", re.S
)
_SUMMARY = re.compile(r"<!-- summary: (?P<json>.*?) -->")


def discover(bench_dir: Path = _BENCH) -> dict[str, str]:
    """NAME -> module path (``bench.bench_<NAME>``) of every ``bench_*.py``, sorted by NAME."""
    return {
        path.stem.removeprefix("bench_"): f"bench.{path.stem}"
        for path in sorted(bench_dir.glob("bench_*.py"))
    }


def run_module(name: str, module_path: str, *, quick: bool) -> dict[str, Any]:
    """Import and run one benchmark module; failures become a result saying what went wrong."""
    started = time.perf_counter()
    outcome: dict[str, Any] = {"name": name, "started": _now()}
    try:
        module = importlib.import_module(module_path)
        run = getattr(module, "run", None)
        if not callable(run):
            outcome["skipped"] = "the module has no run()"
            return outcome
        accepts_quick = "quick" in inspect.signature(run).parameters
        outcome["result"] = run(quick=quick) if accepts_quick else run()
    except BaseException as exc:  # report everything, even SystemExit from a script-style module
        if isinstance(exc, KeyboardInterrupt):
            raise
        outcome["error"] = f"{type(exc).__name__}: {exc}"
        outcome["traceback"] = traceback.format_exc(limit=12)
    finally:
        outcome["seconds"] = round(time.perf_counter() - started, 1)
    return outcome


def _sections(result: Any) -> list[Any]:
    if isinstance(result, Mapping) and isinstance(result.get("benchmarks"), list):
        return list(result["benchmarks"])
    return [result]


def _failed(outcome: Mapping[str, Any]) -> bool:
    if "error" in outcome:
        return True
    return any(isinstance(s, Mapping) and "error" in s for s in _sections(outcome.get("result")))


# ----------------------------------------------------------------------------- rendering


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str, separators=(",", ":"))
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _with(value: Any, label: Any) -> str:
    if value is None:
        return ""
    return f"{_fmt(value)} ({label})" if label else _fmt(value)


def _met(ok: Any) -> str:
    if ok is True:
        return "✅"
    if ok is False:
        return "❌"
    return "" if ok is None else str(ok)


def _row_cells(row: Any) -> dict[str, str]:
    if not isinstance(row, Mapping):
        return {"metric": "", "value": _fmt(row)}
    value = _fmt(row.get("value", ""))
    if row.get("unit"):
        value += f" {row['unit']}"
    extra = {k: v for k, v in row.items() if k not in _KNOWN_ROW_KEYS}
    return {
        "metric": _fmt(row.get("metric", "")),
        "value": value,
        "goal": "" if row.get("goal") is None else _fmt(row["goal"]),
        "met": _met(row.get("ok")),
        "baseline (same run)": _with(row.get("baseline"), row.get("baseline_label")),
        "ratio": _with(row.get("ratio"), row.get("ratio_label")),
        "details": ", ".join(f"{k}={_fmt(v)}" for k, v in extra.items()),
    }


def _table(rows: Sequence[Any]) -> list[str]:
    cells = [_row_cells(r) for r in rows]
    columns = [c for c in cells[0] if any(row.get(c) for row in cells)] if cells else []
    if "metric" not in columns:
        columns.insert(0, "metric")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in cells]
    return lines


def _render_section(section: Any, level: str = "###") -> tuple[list[str], list[dict[str, Any]]]:
    """Markdown of one section, and its goal rows for the summary."""
    if not isinstance(section, Mapping):
        return [f"{level} (unnamed result)", "", "```", repr(section)[:4000], "```", ""], []
    name = _fmt(section.get("name", "(unnamed)"))
    out = [f"{level} {name}", ""]
    if section.get("description"):
        out += [str(section["description"]), ""]
    if section.get("error"):
        out += [f"**Failed:** `{_cell(str(section['error']))}`", ""]
        if section.get("traceback"):
            tb = str(section["traceback"])
            out += [
                "<details><summary>traceback</summary>",
                "",
                "```",
                tb.rstrip(),
                "```",
                "",
                "</details>",
                "",
            ]
    rows = section.get("rows")
    summary: list[dict[str, Any]] = []
    if isinstance(rows, list) and rows:
        out += [*_table(rows), ""]
        for row in rows:
            if isinstance(row, Mapping) and row.get("goal") is not None:
                summary.append(
                    {
                        "benchmark": name,
                        "metric": _fmt(row.get("metric", "")),
                        "value": _row_cells(row)["value"],
                        "ratio": _row_cells(row)["ratio"],
                        "goal": _fmt(row["goal"]),
                        "met": _met(row.get("ok")),
                    }
                )
    elif rows is not None:
        out += ["Rows: `" + _cell(_fmt(rows)) + "`", ""]
    if isinstance(section.get("params"), Mapping) and section["params"]:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in section["params"].items())
        out += [f"Parameters: {params}", ""]
    notes = section.get("notes")
    if notes:
        out += [f"- {n}" for n in (notes if isinstance(notes, list) else [notes])] + [""]
    extra = {k: v for k, v in section.items() if k not in _KNOWN_SECTION_KEYS}
    if extra:
        out += [f"- **{k}**: {_cell(_fmt(v))}" for k, v in extra.items()] + [""]
    return out, summary


def render_module(outcome: Mapping[str, Any], *, quick: bool = False) -> str:
    """One module's block for RESULTS.md (markers included, so later runs can replace it)."""
    name = str(outcome.get("name", "?"))
    result = outcome.get("result")
    heading = f"## {name}"
    if isinstance(result, Mapping) and result.get("name") and result["name"] != name:
        heading += f" ({result['name']})"
    lines = [f"<!-- bench:{name} -->", heading, ""]
    mode = "quick (shrunk sizes, figures not comparable with the goals)" if quick else "full"
    lines += [
        f"Run {outcome.get('started', '?')}, {mode}, took {outcome.get('seconds', '?')} s.",
        "",
    ]
    summary: list[dict[str, Any]] = []
    if outcome.get("skipped"):
        lines += [f"Skipped: {outcome['skipped']}.", ""]
    elif outcome.get("error"):
        lines += [
            f"**Failed:** `{_cell(str(outcome['error']))}`",
            "",
            "```",
            str(outcome.get("traceback", "")).rstrip(),
            "```",
            "",
        ]
    else:
        if isinstance(result, Mapping) and "benchmarks" in result:
            extra = {k: v for k, v in result.items() if k not in ("name", "benchmarks")}
            if extra:
                lines += [", ".join(f"{k}={_fmt(v)}" for k, v in extra.items()), ""]
        for section in _sections(result):
            text, goals = _render_section(section)
            lines += text
            summary += goals
    lines.append(f"<!-- summary: {json.dumps(summary, ensure_ascii=False)} -->")
    lines.append(f"<!-- /bench:{name} -->")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the file


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def machine_info() -> dict[str, str]:
    """What the figures were measured on (the load average matters: the machine may be shared)."""
    info = {
        "date": _now(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cores": f"{os.cpu_count()} logical",
        "SQLite": sqlite3.sqlite_version,
        "load average": " / ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    with contextlib.suppress(OSError, StopIteration), open("/proc/cpuinfo") as f:
        info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    with contextlib.suppress(ImportError):
        import psutil

        info["cores"] += f", {psutil.cpu_count(logical=False)} physical"
        info["memory"] = f"{psutil.virtual_memory().total / 2**30:.1f} GiB"
        scratch = os.environ.get("GENSTORE_BENCH_DIR") or tempfile.gettempdir()
        mounts = [p for p in psutil.disk_partitions(all=True) if scratch.startswith(p.mountpoint)]
        if mounts:
            mount = max(mounts, key=lambda p: len(p.mountpoint))
            info["scratch folder"] = f"{scratch} ({mount.fstype} on {mount.device})"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        info["commit"] = commit.stdout.strip()
    return info


def _blocks(text: str) -> dict[str, str]:
    return {m["name"]: m.group(0) for m in _BLOCK.finditer(text)}


def write_results(
    path: Path, blocks: Mapping[str, str], info: Mapping[str, str], order: Sequence[str]
) -> str:
    """Write the results file: machine info, the goals at a glance, then one block per module.

    Blocks of modules not run this time are kept from the existing file (``--only``).
    """
    kept = _blocks(path.read_text()) if path.exists() else {}
    merged = {name: blocks.get(name) or kept.get(name) for name in order}
    merged.update({n: b for n, b in blocks.items() if n not in merged})
    parts = [b for b in merged.values() if b]
    goals: list[dict[str, Any]] = []
    for block in parts:
        match = _SUMMARY.search(block)
        if match:
            with contextlib.suppress(ValueError):
                goals += json.loads(match["json"])
    lines = [
        "# genstore benchmark results",
        "",
        "Generated by `bench/run_all.py`; every ratio compares figures measured in the same "
        "run. Sections of modules not run this time keep the date of their own run.",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_cell(v)} |" for k, v in info.items()] + [""]
    if goals:
        lines += [
            "## Goals at a glance",
            "",
            "| benchmark | metric | value | ratio | goal | met |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            "| "
            + " | ".join(
                _cell(str(g.get(k, "")))
                for k in ("benchmark", "metric", "value", "ratio", "goal", "met")
            )
            + " |"
            for g in goals
        ] + [""]
    text = "\n".join(lines) + "\n" + "\n".join(parts)
    path.write_text(text)
    return text


def _parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shrink every size (smoke run)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these modules (repeatable, or comma-separated)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="results file (default bench/RESULTS.md; --quick: none)",
    )
    return parser.parse_args(argv)


@contextlib.contextmanager
def _announce(name: str) -> Iterator[None]:
    print(f"[run_all] {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    yield
    print(
        f"[run_all] {name} done in {time.perf_counter() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    available = discover()
    wanted = [n.strip().removeprefix("bench_") for arg in args.only for n in arg.split(",")]
    unknown = [n for n in wanted if n not in available]
    if unknown:
        print(
            f"unknown benchmark {', '.join(unknown)}; have: {', '.join(available)}", file=sys.stderr
        )
        return 2
    info = machine_info()
    blocks: dict[str, str] = {}
    failed = []
    for name, module_path in available.items():
        if wanted and name not in wanted:
            continue
        with _announce(name):
            outcome = run_module(name, module_path, quick=args.quick)
        blocks[name] = render_module(outcome, quick=args.quick)
        if _failed(outcome):
            failed.append(name)
    info["load average"] += " at start; " + " / ".join(f"{x:.2f}" for x in os.getloadavg())
    info["load average"] += " at end"
    output = args.output or (None if args.quick else _BENCH / "RESULTS.md")
    if output is None:
        print("\n".join(blocks.values()))
    else:
        write_results(output, blocks, info, list(available))
        print(f"[run_all] wrote {output}", file=sys.stderr)
    if failed:
        print(f"[run_all] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
