"""S3 benchmarks against moto's ThreadedMotoServer on 127.0.0.1, each against a baseline.

    B4 S3 save   200 ``save_complete_operation`` (a 1 MiB PNG result, one small input image that
                 is the same for every operation, prompt and parameters; sidecar catalog) vs plain
                 boto3 ``put_object`` of the same bytes to the same server: the result and the
                 record JSON per operation, the input once. Goal: >= 0.8 of boto3's ops/s (moto
                 itself is the ceiling: it runs in this process, on the same 2 cores).
    B6 migrate   ``migrate`` of 2,000 small operations (record, 2 KiB result, a shared input) from
                 a local store to S3 vs s3fs ``put`` of the same files to the same server.

Run ``uv run python bench/bench_s3.py [--quick] [--only B4,B6]`` (prints JSON), or through
``bench/run_all.py``. Timed rounds alternate between the two sides so that a machine busy with
something else slows both alike.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import KiB, MiB, fresh_dir, section

__all__ = ["FULL", "QUICK", "Sizes", "bench_migrate", "bench_save", "run"]

B4_GOAL = 0.8


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    save_ops: int
    """B4: operations per side (split over the rounds)."""
    save_rounds: int
    """B4: alternating rounds."""
    migrate_ops: int
    """B6: operations in the local store migrated."""


FULL = Sizes(save_ops=200, save_rounds=10, migrate_ops=2000)
QUICK = Sizes(save_ops=40, save_rounds=2, migrate_ops=200)

_ENV = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
}


_SERVER = """
import logging, sys
logging.getLogger("werkzeug").setLevel(logging.ERROR)
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
server.stop()
"""


@contextmanager
def moto_s3() -> Iterator[str]:
    """A moto ThreadedMotoServer on 127.0.0.1 in a process of its own (as S3 would be: not
    competing with the client for its interpreter lock), with dummy credentials set for the
    duration; yields its endpoint URL."""
    saved = {k: os.environ.get(k) for k in [*_ENV, "AWS_ENDPOINT_URL", "AWS_PROFILE"]}
    os.environ.update(_ENV)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _png(width: int, height: int, *, noise: bool) -> bytes:
    from PIL import Image

    if noise:
        image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    else:
        image = Image.new("RGB", (width, height), "red")
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=0)
    return buf.getvalue()


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


# -- B4 ----------------------------------------------------------------------------------------


def bench_save(ops: int, rounds: int) -> dict[str, Any]:
    """B4: genstore saves to S3 vs boto3 put_object of the same bytes."""
    import genstore

    result = _png(590, 590, noise=True)  # about 1 MiB, stored without compression
    result = result[: MiB - 16] if len(result) > MiB else result
    source = _png(32, 32, noise=False)
    parameters: dict[str, Any] = {"aspectRatio": "1:1", "steps": 28, "guidance": 3.5, "seed": 1234}
    per_round = max(1, ops // rounds)
    with moto_s3() as endpoint:
        client = _client(endpoint)
        for bucket in ("bench-b4-genstore", "bench-b4-boto3"):
            client.create_bucket(Bucket=bucket)
        store = genstore.open_store(f"s3://bench-b4-genstore/gs?endpoint_url={endpoint}")
        counter = iter(range(10**9))

        def genstore_round(n: int) -> None:
            for _ in range(n):
                i = next(counter)
                store.save_complete_operation(
                    operation_type="text_to_image",
                    prompt=f"un chat numéro {i}",
                    parameters=parameters,
                    input_images=[source],
                    result=result + i.to_bytes(8, "big"),  # after IEND: still the same PNG
                    user_id="user_bench",
                )

        record = (
            store.save_complete_operation(
                operation_type="text_to_image",
                prompt="un chat numéro 0",
                parameters=parameters,
                input_images=[source],
                result=result,
                user_id="user_bench",
            )
            .record.model_dump_json()
            .encode()
        )
        client.put_object(
            Bucket="bench-b4-boto3", Key="inputs/in.png", Body=source, ContentType="image/png"
        )

        def boto3_round(n: int) -> None:
            for _ in range(n):
                i = next(counter)
                client.put_object(
                    Bucket="bench-b4-boto3",
                    Key=f"operations/{i}_out.png",
                    Body=result + i.to_bytes(8, "big"),
                    ContentType="image/png",
                )
                client.put_object(
                    Bucket="bench-b4-boto3",
                    Key=f"operations/{i}.json",
                    Body=record,
                    ContentType="application/json",
                )

        genstore_round(3)  # warm-up: connections, botocore models, moto's first requests
        boto3_round(3)
        ours, theirs = _alternate(genstore_round, boto3_round, per_round, rounds)
        store.close()
    done = per_round * rounds
    ours_rate, theirs_rate = done / ours, done / theirs
    ratio = ours_rate / theirs_rate
    return {
        "name": "B4 S3 save",
        "description": "save_complete_operation to moto vs boto3 put_object of the same bytes",
        "rows": [
            {
                "metric": "ops/s (1 MiB result + record, shared input)",
                "value": round(ours_rate, 1),
                "unit": "ops/s",
                "baseline": round(theirs_rate, 1),
                "baseline_label": "boto3 put_object ops/s",
                "ratio": round(ratio, 3),
                "ratio_label": "genstore / boto3",
                "goal": f">= {B4_GOAL}",
                "ok": ratio >= B4_GOAL,
            }
        ],
        "params": {"ops": done, "rounds": rounds, "result_bytes": len(result) + 8},
        "notes": [
            "moto (ThreadedMotoServer) runs in a process of its own on 127.0.0.1, sharing the 2 "
            "cores with the client",
            "genstore per operation: PUT result, PUT record (the shared input: one HEAD and one PUT the first time, then remembered by the store for known_inputs_ttl)",
        ],
    }


def _alternate(
    a: Callable[[int], None], b: Callable[[int], None], n: int, rounds: int
) -> tuple[float, float]:
    """Seconds spent in ``a`` and in ``b``, run alternately ``rounds`` times (order swapped)."""
    spent = [0.0, 0.0]
    for r in range(rounds):
        order = [(0, a), (1, b)] if r % 2 == 0 else [(1, b), (0, a)]
        for slot, fn in order:
            start = time.perf_counter()
            fn(n)
            spent[slot] += time.perf_counter() - start
    return spent[0], spent[1]


# -- B6 ----------------------------------------------------------------------------------------


def bench_migrate(ops: int) -> dict[str, Any]:
    """B6: migrate local -> S3 vs s3fs put of the same files."""
    import genstore
    import s3fs
    from genstore._migrate import migrate

    with fresh_dir("b6", sync=False) as root, moto_s3() as endpoint:
        src_path = root / "src"
        shared = _png(16, 16, noise=False)
        with genstore.open_store(src_path) as src:
            for i in range(ops):
                src.save_complete_operation(
                    operation_type="img_to_img",
                    prompt=f"prompt {i}",
                    parameters={"i": i},
                    input_images=[shared],
                    result=_png(24, 24, noise=True)[: 2 * KiB] + i.to_bytes(8, "big"),
                    user_id=f"user_{i % 10}",
                )
            files = sorted(
                p
                for p in src_path.rglob("*")
                if p.is_file() and p.relative_to(src_path).parts[0] in ("operations", "inputs")
            )
            total_bytes = sum(p.stat().st_size for p in files)
            client = _client(endpoint)
            client.create_bucket(Bucket="bench-b6-genstore")
            client.create_bucket(Bucket="bench-b6-s3fs")

            fs = s3fs.S3FileSystem(
                endpoint_url=endpoint, skip_instance_cache=True, use_listings_cache=False
            )
            start = time.perf_counter()
            fs.put(
                [str(p) for p in files],
                [f"bench-b6-s3fs/{p.relative_to(src_path).as_posix()}" for p in files],
            )
            theirs = time.perf_counter() - start

            with genstore.open_store(f"s3://bench-b6-genstore/gs?endpoint_url={endpoint}") as dst:
                start = time.perf_counter()
                report = migrate(src, dst)
                ours = time.perf_counter() - start
                start = time.perf_counter()
                again = migrate(src, dst)
                resume = time.perf_counter() - start
    if not report.ok or report.records != ops:
        raise RuntimeError(f"migrate did not copy everything: {report.as_dict()}")
    blobs = len(files)
    ratio = (blobs / ours) / (blobs / theirs)
    return {
        "name": "B6 migrate local -> S3",
        "description": "genstore migrate of small operations vs s3fs put of the same files",
        "rows": [
            {
                "metric": f"blobs/s ({blobs} files, {total_bytes / MiB:.1f} MiB)",
                "value": round(blobs / ours, 1),
                "unit": "blobs/s",
                "baseline": round(blobs / theirs, 1),
                "baseline_label": "s3fs put blobs/s",
                "ratio": round(ratio, 3),
                "ratio_label": "genstore / s3fs",
                "goal": None,
                "ok": None,
                "seconds": round(ours, 2),
                "baseline_seconds": round(theirs, 2),
            },
            {
                "metric": "second run (nothing to copy), s",
                "value": round(resume, 2),
                "unit": "s",
                "copied": again.records + again.images + again.artefacts,
                "skipped": again.skipped,
            },
        ],
        "params": {"operations": ops, "workers": 8},
        "notes": [
            "migrate also lists both stores, reads every record first, and copies each record "
            "only after its artefacts; s3fs put copies the files in whatever order",
        ],
    }


def run(quick: bool = False, *, parts: Collection[str] | None = None) -> dict[str, Any]:
    """Run B4 and B6 (or the named ``parts``); ``quick`` shrinks the sizes for a smoke run."""
    sizes = QUICK if quick else FULL
    wanted = {p.strip().upper() for p in parts} if parts else {"B4", "B6"}
    sections = []
    if "B4" in wanted:
        sections.append(
            section("B4 S3 save", lambda: bench_save(sizes.save_ops, sizes.save_rounds))
        )
    if "B6" in wanted:
        sections.append(section("B6 migrate", lambda: bench_migrate(sizes.migrate_ops)))
    return {"name": "s3", "benchmarks": sections, "params": {"quick": quick}}


def main(argv: Sequence[str]) -> int:
    quick = "--quick" in argv
    parts = argv[argv.index("--only") + 1].split(",") if "--only" in argv else None
    print(json.dumps(run(quick, parts=parts), indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
