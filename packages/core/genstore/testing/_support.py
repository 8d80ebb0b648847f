"""What the contract suites share: the ``store`` fixture, a loopback file server, PNG bytes."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from genstore import Store, open_store

__all__ = ["FileServer", "StoreFixtures", "png_bytes"]


def png_bytes(width: int = 8, height: int = 8, color: str = "red") -> bytes:
    """A small valid PNG of one colour."""
    buf = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buf, "PNG")
    return buf.getvalue()


class FileServer:
    """An HTTP server on 127.0.0.1 answering ``GET /<name>`` (any query string ignored) with what
    ``add`` gave (else 404): stands in for a provider's result URLs. A name in ``stalls`` sends
    half its body, then waits that many seconds: a provider that hangs."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.stalls: dict[str, float] = {}
        files, stalls = self.files, self.stalls

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/").partition("?")[0]
                found = files.get(name)
                body, content_type = found or (b"", "text/plain")
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if found and name in stalls:
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
        """The URL of ``name`` on this server."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def add(self, name: str, body: bytes, content_type: str = "image/png") -> str:
        """Serve ``body`` at ``name``; return its URL."""
        self.files[name] = (body, content_type)
        return self.url(name)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class StoreFixtures:
    """The fixtures every suite uses; a subclass provides ``store_url``."""

    @pytest.fixture
    def store_url(self) -> str:
        """The URL of a fresh, empty store (with ``?catalog=`` when not the default)."""
        raise NotImplementedError("a contract test class must define the store_url fixture")

    @pytest.fixture
    def store(self, store_url: str) -> Iterator[Store]:
        """The store under test, opened from ``store_url`` and closed afterwards."""
        s = open_store(store_url)
        try:
            yield s
        finally:
            s.close()

    @pytest.fixture
    def file_server(self) -> Iterator[FileServer]:
        """A loopback HTTP server serving provider result URLs."""
        server = FileServer()
        try:
            yield server
        finally:
            server.close()
