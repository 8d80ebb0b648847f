"""Running the service for tests: in a thread (uvicorn.Server) or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx
import uvicorn
from helpers import free_port
from starlette.types import ASGIApp

# Variables that would configure auth or the store from the developer's own environment.
SERVICE_VARIABLES = (
    "GENSTORE_URL",
    "GENSTORE_CATALOG",
    "GENSTORE_JWT_SECRET",
    "GENSTORE_JWT_PUBLIC_KEY",
    "GENSTORE_JWKS_URL",
    "GENSTORE_JWT_ISSUER",
    "GENSTORE_JWT_AUDIENCE",
    "GENSTORE_DEV_SECRET",
    "CLERK_SECRET_KEY",
    "CLERK_PUBLISHABLE_KEY",
    "CLERK_JWT_KEY",
    "CLERK_AUTHORIZED_PARTIES",
    "CLERK_API_URL",
    "GENSTORE_RATE_LIMIT_STORAGE",
    "HOST",
    "PORT",
)


@contextmanager
def running(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """``app`` in a real uvicorn on 127.0.0.1 (``port``, else a free one); yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline and thread.is_alive():
            time.sleep(0.01)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def serve(app: ASGIApp, port: int) -> Iterator[httpx.Client]:
    """``app`` in a real uvicorn on 127.0.0.1:``port``, and an httpx client for it."""
    with running(app, port) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without any service setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    env.update(extra)
    return env


@contextmanager
def subprocess_service(
    args: list[str], env: Mapping[str, str], port: int
) -> Iterator[subprocess.Popen[str]]:
    """``args`` (a command starting the service on ``port``) running until the block ends.

    Waits (bounded) until /api/health answers; stops the process with SIGTERM afterwards.
    """
    # stdout (the JSON request logs) is dropped so a full pipe can never block the server.
    with subprocess.Popen(
        args, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            wait_until_up(proc, port)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def wait_until_up(proc: subprocess.Popen[str], port: int, timeout: float = 30.0) -> None:
    """Poll /api/health (bounded in time) until it answers; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(f"service exited with {proc.returncode}: {err[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("service did not start in time")


PYTHON = sys.executable
