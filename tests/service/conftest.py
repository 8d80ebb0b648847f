"""Fixtures of the service tests: a Redis on 127.0.0.1 (the running one, or one started here)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from helpers import free_port, need_server


def _ping(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """``redis://127.0.0.1:P/15``: the server on 6379 if it answers, else a redis-server started
    on a free port for the session (stopped afterwards)."""
    if _ping(6379):
        yield "redis://127.0.0.1:6379/15"
        return
    binary = shutil.which("redis-server")
    need_server(binary is not None, "redis-server (apt-get install redis-server)")
    assert binary is not None
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        try:
            deadline = time.monotonic() + 10
            while not _ping(port) and time.monotonic() < deadline:
                time.sleep(0.05)
            need_server(_ping(port), f"redis-server started on {port}")
            yield f"redis://127.0.0.1:{port}/15"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
