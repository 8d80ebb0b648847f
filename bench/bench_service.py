"""B10: the images service (``genstore serve``) against plain Python doing the same work.

    B10 upload  POST /api/images with a 1 MiB PNG (base64 JSON, the seed's body) through uvicorn
                on 127.0.0.1, one connection, vs the same write by plain Python in the same run
                (decode the base64, check the PNG signature, write the PNG and a JSON record),
                and vs genstore's own ``store.images.create`` in-process: requests/s, p50, p99
    B10 list    GET /api/images page 1 for one user holding 100,000 images (catalog rows),
                through uvicorn vs ``store.images.list`` in-process: median latency

Run ``uv run python bench/bench_service.py [--quick]`` (prints JSON), or through
``bench/run_all.py --only service``.
"""

from __future__ import annotations

import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import fresh_dir, percentile, section

__all__ = ["run"]

SECRET = "bench-secret-" + "x" * 32
USER = "user_bench"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_1mib() -> bytes:
    """An incompressible PNG of about 1 MiB (random pixels, no compression)."""
    from PIL import Image

    side = 591  # 591 * 591 * 3 bytes of pixels + a filter byte per row: ~1 MiB
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=0)
    return out.getvalue()


def _token() -> str:
    import jwt

    return jwt.encode({"sub": USER, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")


@contextmanager
def service(root: Path) -> Iterator[str]:
    """``python -m genstore_asgi.service`` over ``root`` on a free loopback port; its URL."""
    import httpx

    from bench._asgi_harness import _free_port

    port = _free_port()
    env = {
        **os.environ,
        "GENSTORE_URL": str(root),
        "GENSTORE_JWT_SECRET": SECRET,
        "GENSTORE_RATE_LIMIT": "1000000/minute",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
    }
    cmd = [sys.executable, "-m", "genstore_asgi.service"]
    with subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL) as process:
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{url}/api/health", timeout=2)
                    break
                except httpx.TransportError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the service did not start") from None
                    time.sleep(0.05)
            yield url
        finally:
            process.terminate()
            process.wait(30)


def _timed(count: int, fn: Callable[[int], object]) -> list[float]:
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        fn(i)
        latencies.append(time.perf_counter() - started)
    return latencies


def _row(metric: str, lat: list[float], base: list[float], base_label: str) -> dict[str, Any]:
    rps, base_rps = len(lat) / sum(lat), len(base) / sum(base)
    return {
        "metric": metric,
        "value": round(rps, 1),
        "unit": "req/s",
        "baseline": round(base_rps, 1),
        "baseline_label": base_label,
        "ratio": round(rps / base_rps, 3),
        "ratio_label": "service / baseline",
        "p50_ms": round(percentile(lat, 50) * 1000, 2),
        "p99_ms": round(percentile(lat, 99) * 1000, 2),
        "baseline_p99_ms": round(percentile(base, 99) * 1000, 2),
    }


def _plain_write(root: Path, body: bytes) -> Callable[[int], None]:
    """What the service does for one upload, by hand: parse, decode, check, write PNG + JSON."""
    folder = root / "images" / USER
    folder.mkdir(parents=True, exist_ok=True)

    def write(i: int) -> None:
        payload = json.loads(body)
        data = base64.b64decode(payload["imageData"], validate=True)
        if not data.startswith(_PNG_SIGNATURE):
            raise ValueError("not a PNG")
        stamp = f"{time.time_ns()}_{i}"
        (folder / f"{stamp}.png").write_bytes(data)
        record = {"user_id": USER, "prompt": payload["prompt"], "size": len(data)}
        (folder / f"{stamp}.json").write_text(json.dumps(record))

    return write


def bench_upload(count: int) -> dict[str, Any]:
    import genstore
    import httpx

    png = png_1mib()
    body = json.dumps({"prompt": "bench", "imageData": base64.b64encode(png).decode()}).encode()
    headers = {"Authorization": f"Bearer {_token()}", "Content-Type": "application/json"}
    with fresh_dir("b10-plain") as plain_root:
        plain = _timed(count, _plain_write(plain_root, body))
    with fresh_dir("b10-direct") as root, genstore.open_store(root) as store:
        b64 = base64.b64encode(png).decode()
        direct = _timed(
            count, lambda _: store.images.create(user_id=USER, prompt="bench", image_data=b64)
        )
    with fresh_dir("b10-service") as root, service(root) as url, httpx.Client() as http:

        def post(_: int) -> None:
            r = http.post(f"{url}/api/images", content=body, headers=headers)
            if r.status_code != 201:
                raise RuntimeError(f"upload answered {r.status_code}: {r.text[:200]}")

        post(0)  # connection and first-import costs out of the timed loop
        served = _timed(count, post)
    return {
        "name": "B10 upload",
        "description": "POST /api/images, a 1 MiB PNG as base64 JSON, one connection, sequential",
        "rows": [
            _row("service via uvicorn vs plain Python write", served, plain, "plain Python req/s"),
            _row("service via uvicorn vs store.images.create", served, direct, "in-process req/s"),
        ],
        "params": {"uploads": count, "png_bytes": len(png), "body_bytes": len(body)},
        "notes": [
            "plain Python: json.loads, b64decode, PNG signature, write PNG + a small JSON record",
            "the service adds HTTP, auth, rate limit, validation, PNG dimensions, the sidecar "
            "record and the catalog row",
        ],
    }


def _fill_catalog(store: Any, images: int) -> None:
    """One real image, then ``images`` - 1 more catalog rows for the same user (the listing
    reads only the catalog), newest last."""
    template = store.images.create(user_id=USER, prompt="bench", image_data=_tiny_png())
    start = datetime.now(UTC) - timedelta(days=1)
    for i in range(images - 1):
        when = start + timedelta(milliseconds=i)
        store.catalog.upsert_image(
            template.model_copy(update={"image_id": f"img_bench{i:09d}", "created_at": when})
        )


def _tiny_png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(out, "PNG")
    return out.getvalue()


def bench_list(images: int, requests: int) -> dict[str, Any]:
    import genstore
    import httpx

    headers = {"Authorization": f"Bearer {_token()}"}
    with fresh_dir("b10-list") as root:
        with genstore.open_store(root) as store:
            started = time.perf_counter()
            _fill_catalog(store, images)
            fill_seconds = time.perf_counter() - started
            store.images.list(user_id=USER, page=1, limit=10)  # warm, as the service's first GET
            direct = _timed(requests, lambda _: store.images.list(user_id=USER, page=1, limit=10))
        with service(root) as url, httpx.Client() as http:

            def get(_: int) -> None:
                r = http.get(f"{url}/api/images?page=1&limit=10", headers=headers)
                if r.status_code != 200 or r.json()["pagination"]["total"] != images:
                    raise RuntimeError(f"list answered {r.status_code}: {r.text[:200]}")

            get(0)
            served = _timed(requests, get)
    median, base = statistics.median(served), statistics.median(direct)
    return {
        "name": "B10 list",
        "description": f"GET /api/images page 1 (limit 10), one user holding {images:,} images",
        "rows": [
            {
                "metric": "median latency via uvicorn",
                "value": round(median * 1000, 2),
                "unit": "ms",
                "baseline": round(base * 1000, 2),
                "baseline_label": "store.images.list in-process, ms",
                "ratio": round(median / base, 2),
                "ratio_label": "service / in-process",
                "p99_ms": round(percentile(served, 99) * 1000, 2),
            }
        ],
        "params": {"images": images, "requests": requests, "fill_seconds": round(fill_seconds, 1)},
        "notes": ["SQLite catalog (the default); rows made with catalog.upsert_image"],
    }


def run(quick: bool = False) -> dict[str, Any]:
    uploads, images, requests = (20, 2_000, 30) if quick else (200, 100_000, 200)
    return {
        "name": "service",
        "benchmarks": [
            section("B10 upload", lambda: bench_upload(uploads)),
            section("B10 list", lambda: bench_list(images, requests)),
        ],
        "params": {"quick": quick},
    }


def main(argv: Sequence[str]) -> int:
    print(json.dumps(run(quick="--quick" in argv), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
