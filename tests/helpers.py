"""Helpers shared by the test tree (importable as ``helpers``: tests/ is on pythonpath)."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_server(available: bool, what: str) -> None:
    """Skip when a server nobody started is missing locally; under CI=true, fail instead."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is not reachable, and CI must run these tests")
    pytest.skip(f"{what} is not reachable")


def png_bytes(width: int = 8, height: int = 8, color: str = "red") -> bytes:
    """A small valid PNG."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FileServer:
    """A loopback HTTP server answering GET /<name> with what ``files`` holds (404 otherwise)."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.stalls: dict[str, float] = {}
        files, stalls = self.files, self.stalls

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/").partition("?")[0]
                if name not in files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body, content_type = files[name]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in stalls:  # half the body, then silence: a provider that hangs
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    time.sleep(stalls[name])
                    return
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def add(self, name: str, body: bytes, content_type: str = "image/png") -> str:
        self.files[name] = (body, content_type)
        return self.url(name)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
