"""48 concurrent 10 MB uploads keep the server under 256 MB: the bytes-in-flight bound at work,
measured on a real uvicorn subprocess with psutil."""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
import psutil
import pytest
from helpers import free_port
from PIL import Image

from .service_harness import PYTHON, clean_env, subprocess_service

SECRET = "memory-secret-" + "x" * 32
UPLOADS = 48
RSS_LIMIT = 256 * 1024 * 1024


def ten_mb_png() -> bytes:
    """An incompressible PNG just under the store's 10 MiB limit."""
    side = 1860
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=0)
    data = out.getvalue()
    assert 10_000_000 < len(data) <= 10 * 1024 * 1024
    return data


class PeakRss:
    """Samples a process's RSS every few milliseconds until stopped; keeps the maximum."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.peak


def upload(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, int]:
    """POST until stored, honouring Retry-After (bounded); (final status, 503s seen)."""
    busy = 0
    with httpx.Client(timeout=120) as http:
        for _ in range(200):
            r = http.post(url, content=body, headers=headers)
            if r.status_code != 503:
                return r.status_code, busy
            busy += 1
            time.sleep(min(float(r.headers.get("retry-after", "1")), 1.0) / 4)
    return 503, busy


@pytest.mark.slow
def test_48_concurrent_10mb_uploads_keep_the_server_under_256mb(tmp_path: Path) -> None:
    png = ten_mb_png()
    body = b'{"prompt": "big", "imageData": "' + base64.b64encode(png) + b'", "metadata": {}}'
    token = jwt.encode({"sub": "user_big", "exp": int(time.time()) + 600}, SECRET, "HS256")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    port = free_port()
    env = clean_env(
        GENSTORE_URL=str(tmp_path), GENSTORE_JWT_SECRET=SECRET, PORT=str(port),
        GENSTORE_RATE_LIMIT="100000/minute", LOG_LEVEL="warning",
    )  # fmt: skip
    with subprocess_service([PYTHON, "-m", "genstore_asgi.service"], env, port) as proc:
        idle = psutil.Process(proc.pid).memory_info().rss
        sampler = PeakRss(proc.pid)
        url = f"http://127.0.0.1:{port}/api/images"
        with ThreadPoolExecutor(UPLOADS) as pool:
            results = list(pool.map(lambda _: upload(url, body, headers), range(UPLOADS)))
        peak = sampler.stop()
        listed = httpx.get(url, params={"limit": 100}, headers=headers).json()
    statuses = [status for status, _ in results]
    print(f"idle RSS {idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB, "
          f"503s {sum(b for _, b in results)}")  # fmt: skip
    assert statuses == [201] * UPLOADS
    assert listed["pagination"]["total"] == UPLOADS
    assert peak < RSS_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB"
