"""B2 history: newest 50 for one user and type among many records, vs scanning the JSON sidecars.

The records go into the SQLite catalog in one transaction (through the catalog's own
``upsert_operation``) and onto disk as sidecar JSON files written with plain file writes, so the
seed's approach (list the folder, read and parse every JSON, filter, sort) can answer too.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench._util import MiB, fresh_dir, percentile

__all__ = ["bench_history"]

_PARAMS: dict[str, Any] = {"aspectRatio": "16:9", "guidance": 3.5, "steps": 28, "model": "flux-dev"}
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TYPES = [
    "text_to_image",
    "image_edit_single",
    "image_edit_multiple",
    "img_to_img",
    "text_to_video",
    "image_to_video_single",
    "image_to_video_transition",
    "edit_then_video",
]
_USERS = [f"user_{k:02d}" for k in range(10)]


def _operation_id(when: datetime, rng: random.Random) -> str:
    value = (int(when.timestamp() * 1000) << 80) | rng.getrandbits(80)
    ulid = "".join(_CROCKFORD[(value >> (5 * k)) & 31] for k in range(25, -1, -1))
    return f"{when:%Y%m%d}_{ulid}"


def _seed_history(store: Any, records: int) -> None:
    """``records`` operations in the catalog (one transaction) and as JSON sidecars on disk."""
    from genstore import ArtifactRef, OperationRecord

    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=90)
    step = timedelta(days=90) / records
    conn = store.catalog._conn()  # the catalog's own connection: one transaction for the lot
    root = os.fspath(store.blobs.path)
    made: set[str] = set()
    conn.execute("BEGIN")
    try:
        for n in range(records):
            when = start + step * n
            op_id = _operation_id(when, rng)
            failed = rng.random() < 0.05
            out_key = f"operations/{op_id[:8]}/{op_id}_out.png"
            record = OperationRecord(
                operation_id=op_id,
                operation_type=rng.choice(_TYPES),
                status="failed" if failed else "succeeded",
                user_id=rng.choice(_USERS),
                prompt=f"a watercolour fox number {n} in a snowy forest at dawn, soft light",
                parameters={**_PARAMS, "seed": n},
                created_at=when,
                duration_ms=rng.uniform(800, 9000),
                error="provider timeout" if failed else None,
                result_source_url=f"https://provider.example/out/{op_id}.png",
                results=[]
                if failed
                else [
                    ArtifactRef(
                        key=out_key,
                        sha256=f"{n:064x}",
                        size=MiB,
                        content_type="image/png",
                        width=1024,
                        height=1024,
                    )
                ],
            )
            store.catalog.upsert_operation(record)
            folder = f"{root}/operations/{op_id[:8]}"
            if folder not in made:
                os.makedirs(folder, exist_ok=True)
                made.add(folder)
            with open(f"{folder}/{op_id}.json", "wb") as f:
                f.write(record.model_dump_json().encode())
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _scan_history(root: Path, user_id: str, operation_type: str, limit: int) -> list[str]:
    """The seed's way: list the folder, read and parse every JSON, filter, sort, cut."""
    found: list[dict[str, Any]] = []
    operations = root / "operations"
    for day in os.listdir(operations):
        folder = operations / day
        for name in os.listdir(folder):
            if not name.endswith(".json"):
                continue
            with open(folder / name, "rb") as f:
                record = json.loads(f.read())
            if record.get("user_id") == user_id and record.get("operation_type") == operation_type:
                found.append(record)
    found.sort(key=lambda r: (r["created_at"], r["operation_id"]), reverse=True)
    return [r["operation_id"] for r in found[:limit]]


def bench_history(records: int = 100_000, queries: int = 300, scan_runs: int = 3) -> dict[str, Any]:
    """B2: ``store.history(user_id, operation_type, limit=50)`` latency vs the sidecar scan."""
    import genstore

    pairs = [(u, t) for u in _USERS for t in _TYPES]
    random.Random(3).shuffle(pairs)
    with fresh_dir("history", sync=False) as root, genstore.open_store(str(root)) as store:
        t0 = time.perf_counter()
        _seed_history(store, records)
        setup_s = time.perf_counter() - t0
        for u, t in pairs[:10]:  # warm the connection and the page cache
            store.history(user_id=u, operation_type=t, limit=50)
        times: list[float] = []
        for q in range(queries):
            u, t = pairs[q % len(pairs)]
            t1 = time.perf_counter()
            page = store.history(user_id=u, operation_type=t, limit=50)
            times.append(time.perf_counter() - t1)
            if not page.items:
                raise AssertionError(f"history for {u}/{t} came back empty")
        scans: list[float] = []
        mismatches = 0
        for s in range(scan_runs):
            u, t = pairs[s % len(pairs)]
            t1 = time.perf_counter()
            ids = _scan_history(root, u, t, 50)
            scans.append(time.perf_counter() - t1)
            expected = [
                r.operation_id for r in store.history(user_id=u, operation_type=t, limit=50).items
            ]
            mismatches += ids != expected
    median_ms = statistics.median(times) * 1000
    p95_ms = percentile(times, 95) * 1000
    scan_ms = statistics.median(scans) * 1000
    return {
        "name": "B2 history",
        "description": f"newest 50 for one user and one type among {records:,} records "
        "(10 users x 8 types), SQLite catalog",
        "rows": [
            {
                "metric": "history median",
                "value": round(median_ms, 3),
                "unit": "ms",
                "baseline": round(scan_ms, 1),
                "baseline_label": "sidecar scan ms (median)",
                "ratio": round(scan_ms / median_ms, 1),
                "ratio_label": "scan time / history time",
                "goal": "<= 2 ms",
                "ok": median_ms <= 2.0,
            },
            {"metric": "history p95", "value": round(p95_ms, 3), "unit": "ms"},
            {"metric": "catalog + sidecar setup", "value": round(setup_s, 1), "unit": "s"},
        ],
        "params": {
            "records": records,
            "queries": queries,
            "scan_runs": scan_runs,
            "scan_matches": scan_runs - mismatches,
        },
        "notes": [
            "The scan reads every sidecar with json.loads (no model validation): a lower bound "
            "of the seed's approach. Sidecars were just written, so they are in the page cache.",
            f"Scan results matched history in {scan_runs - mismatches} of {scan_runs} runs.",
        ],
    }
