"""B5: history on the PostgreSQL catalog among 100,000 records, against the SQLite catalog.

    store.history(user_id=..., operation_type=..., limit=50): the newest 50 for one user and one
    type (10 users x 8 types), 200 timed queries after 10 warm-up ones, rotating over the pairs.
    Reported: median and p95 in ms (goal: median <= 5 ms), and the same queries on the SQLite
    catalog of a local store holding the same records, as a ratio.

Run ``uv run python bench/bench_postgres_history.py [--quick] [--dsn URL]``; it prints a markdown
table. ``run()`` returns ``{"benchmarks": [section]}`` like bench_core.py. The records go into a
schema of their own (``genstore_bench_<random>``), dropped afterwards; the DSN defaults to
``$GENSTORE_BENCH_PG`` or ``postgresql://postgres@127.0.0.1:5432/test``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import shutil
import statistics
import tempfile
import time
import traceback
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

DEFAULT_DSN = os.environ.get("GENSTORE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
GOAL_MS = 5.0

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TYPES = ["text_to_image", "image_edit_single", "image_edit_multiple", "img_to_img",
          "text_to_video", "image_to_video_single", "image_to_video_transition",
          "edit_then_video"]  # fmt: skip
_USERS = [f"user_{k:02d}" for k in range(10)]
_COLUMNS = "operation_id, created_at, user_id, operation_type, status, idempotency_key, record"


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def _operation_id(when: datetime, rng: random.Random) -> str:
    value = (int(when.timestamp() * 1000) << 80) | rng.getrandbits(80)
    ulid = "".join(_CROCKFORD[(value >> (5 * k)) & 31] for k in range(25, -1, -1))
    return f"{when:%Y%m%d}_{ulid}"


def _records(count: int) -> Iterator[Any]:
    """``count`` realistic operation records spread over 90 days (about 600 bytes of JSON each)."""
    from genstore import ArtifactRef, OperationRecord

    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=90)
    step = timedelta(days=90) / count
    for n in range(count):
        when = start + step * n
        op_id = _operation_id(when, rng)
        failed = rng.random() < 0.05
        yield OperationRecord(
            operation_id=op_id, operation_type=rng.choice(_TYPES),
            status="failed" if failed else "succeeded", user_id=rng.choice(_USERS),
            prompt=f"a watercolour fox number {n} in a snowy forest at dawn, soft light",
            parameters={"aspectRatio": "16:9", "guidance": 3.5, "steps": 28, "seed": n},
            created_at=when, duration_ms=rng.uniform(800, 9000),
            error="provider timeout" if failed else None,
            result_source_url=f"https://provider.example/out/{op_id}.png",
            results=[] if failed else [ArtifactRef(
                key=f"operations/{op_id[:8]}/{op_id}_out.png", sha256=f"{n:064x}",
                size=1 << 20, content_type="image/png", width=1024, height=1024)],
        )  # fmt: skip


def _copy_into_postgres(dsn: str, schema: str, records: list[Any]) -> None:
    """Bulk load through COPY into the catalog's own table (its schema must exist)."""
    import psycopg
    from psycopg import sql

    table = sql.Identifier(schema, "genstore_operations")
    with psycopg.connect(dsn, autocommit=True) as conn:
        with conn.cursor() as cur:
            copy_sql = sql.SQL(f"COPY {{}} ({_COLUMNS}) FROM STDIN").format(table)
            with cur.copy(copy_sql) as copy:
                for r in records:
                    copy.write_row(
                        (r.operation_id, r.created_at, r.user_id, r.operation_type,
                         r.status.value, None, r.model_dump_json())
                    )  # fmt: skip
        conn.execute(sql.SQL("ANALYZE {}").format(table))


def _fill_sqlite(store: Any, records: list[Any]) -> None:
    """Upsert every record through the SQLite catalog, in one transaction when it allows."""
    conn_of = getattr(store.catalog, "_conn", None)
    conn = conn_of() if callable(conn_of) else None
    if conn is not None:
        conn.execute("BEGIN")
    for r in records:
        store.catalog.upsert_operation(r)
    if conn is not None:
        conn.execute("COMMIT")


def _time_history(store: Any, queries: int) -> tuple[list[float], list[list[str]]]:
    pairs = [(u, t) for u in _USERS for t in _TYPES]
    random.Random(3).shuffle(pairs)
    for u, t in pairs[:10]:  # warm the pool, the prepared statements and the page cache
        store.history(user_id=u, operation_type=t, limit=50)
    times: list[float] = []
    first_pages: list[list[str]] = []
    for q in range(queries):
        u, t = pairs[q % len(pairs)]
        started = time.perf_counter()
        page = store.history(user_id=u, operation_type=t, limit=50)
        times.append(time.perf_counter() - started)
        if len(page.items) != 50:
            raise AssertionError(f"history for {u}/{t} gave {len(page.items)} records, not 50")
        if q < len(pairs):
            first_pages.append([r.operation_id for r in page.items])
    return times, first_pages


@contextmanager
def _postgres_schema(dsn: str) -> Iterator[str]:
    import psycopg

    schema = f"genstore_bench_{uuid.uuid4().hex[:10]}"
    try:
        yield schema
    finally:
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        except psycopg.OperationalError:
            pass  # the server is unreachable: the error that matters is already on its way


def bench_postgres_history(
    records: int = 100_000, queries: int = 200, dsn: str = DEFAULT_DSN
) -> dict[str, Any]:
    """B5: ``store.history`` latency with a PostgreSQL catalog, and the ratio to SQLite."""
    import genstore

    made = time.perf_counter()
    data = list(_records(records))
    build_s = time.perf_counter() - made
    tmp = Path(tempfile.mkdtemp(prefix="genstore-bench-b5-"))
    try:
        with _postgres_schema(dsn) as schema:
            catalog_url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
            with genstore.open_store(str(tmp / "pg"), catalog=catalog_url) as store:
                store.catalog.stats()  # creates the schema, tables and indexes
                loaded = time.perf_counter()
                _copy_into_postgres(dsn, schema, data)
                load_s = time.perf_counter() - loaded
                pg_times, pg_pages = _time_history(store, queries)
        sqlite_times: list[float] | None = None
        same_pages: bool | None = None
        if importlib.util.find_spec("genstore_adapters.sqlite.catalog") is not None:
            with genstore.open_store(str(tmp / "sqlite")) as store:
                _fill_sqlite(store, data)
                sqlite_times, sqlite_pages = _time_history(store, queries)
                same_pages = sqlite_pages == pg_pages
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    median_ms = statistics.median(pg_times) * 1000
    rows: list[dict[str, Any]] = [
        {"metric": "history median", "value": round(median_ms, 3), "unit": "ms",
         "goal": f"<= {GOAL_MS:g} ms", "ok": median_ms <= GOAL_MS},
        {"metric": "history p95", "value": round(_percentile(pg_times, 95) * 1000, 3),
         "unit": "ms"},
        {"metric": "COPY of the records", "value": round(load_s, 1), "unit": "s"},
    ]  # fmt: skip
    notes = [f"Building {records:,} records took {build_s:.1f} s (not timed below)."]
    if sqlite_times is None:
        notes.append("genstore_adapters.sqlite.catalog is not installed: no SQLite comparison.")
    else:
        sqlite_ms = statistics.median(sqlite_times) * 1000
        rows[0].update(baseline=round(sqlite_ms, 3), baseline_label="SQLite catalog ms (median)",
                       ratio=round(median_ms / sqlite_ms, 2),
                       ratio_label="PostgreSQL time / SQLite time")  # fmt: skip
        rows.insert(2, {"metric": "SQLite p95", "value":
                        round(_percentile(sqlite_times, 95) * 1000, 3), "unit": "ms"})  # fmt: skip
        notes.append(f"Both catalogs returned the same pages: {same_pages}.")
    notes.append("PostgreSQL on 127.0.0.1 over TCP (one round trip per query, prepared after 5).")
    return {
        "name": "B5 history on PostgreSQL",
        "description": f"newest 50 for one user and one type among {records:,} records "
        "(10 users x 8 types), store.history with a PostgreSQL catalog",
        "rows": rows,
        "params": {"records": records, "queries": queries},
        "notes": notes,
    }


def run(quick: bool = False, dsn: str = DEFAULT_DSN) -> dict[str, Any]:
    """``{"benchmarks": [B5 section]}``; a failure becomes a section holding the error."""
    records, queries = (10_000, 50) if quick else (100_000, 200)
    try:
        section = bench_postgres_history(records, queries, dsn)
    except Exception as exc:
        section = {"name": "B5 history on PostgreSQL", "error": f"{type(exc).__name__}: {exc}",
                   "traceback": traceback.format_exc(limit=8)}  # fmt: skip
    return {"benchmarks": [section]}


def markdown(result: dict[str, Any]) -> str:
    """The sections as a markdown table (one row per metric) followed by their notes."""
    lines = ["| benchmark | metric | value | baseline | ratio | goal | ok |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    notes: list[str] = []
    for section in result["benchmarks"]:
        if "error" in section:
            lines.append(f"| {section['name']} | error | {section['error']} | | | | |")
            continue
        for row in section["rows"]:
            baseline = f"{row['baseline']} ({row['baseline_label']})" if "baseline" in row else ""
            ratio = f"{row['ratio']} ({row['ratio_label']})" if "ratio" in row else ""
            ok = {True: "yes", False: "no"}.get(row.get("ok"), "")
            lines.append(f"| {section['name']} | {row['metric']} | {row['value']} {row['unit']} "
                         f"| {baseline} | {ratio} | {row.get('goal', '')} | {ok} |")  # fmt: skip
        notes += [f"- {section['description']}.", *(f"- {n}" for n in section["notes"])]
    return "\n".join([*lines, "", *notes])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10,000 records, 50 queries")
    parser.add_argument("--dsn", default=DEFAULT_DSN, help="PostgreSQL URL (database to use)")
    args = parser.parse_args()
    print(markdown(run(quick=args.quick, dsn=args.dsn)))


if __name__ == "__main__":
    main()
