"""Providers' result URLs that fail the recorder, through a real uvicorn on 127.0.0.1.

- A URL that expires (HTTP 410) while the storage is down: its result was fetched when the record
  was taken, into the spool, so the record replayed after the outage has the result's bytes (once
  the spool kept only the URL, and the replay met the 410). On local files with SQLite, and on
  S3 (moto) with PostgreSQL.
- A provider answering 1 byte every 2 s: 50 other users' records are saved while its download
  runs (downloads run in a bounded pool, each ending at its own total deadline), and it is saved
  too once the deadline ends it (once one worker with a per-read timeout held them all back).

The provider is a loopback HTTP server of this module; every wait and every loop is bounded.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import genstore
import httpx
import pytest
from genstore import OperationRecord
from genstore_asgi import RecordingMiddleware
from helpers import png_bytes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Scope
from switchable import SwitchableBlobs

from asgi.support import serving, wait_for

ROUTE = "/api/generate/text-to-image"
WAIT = 60.0
TRICKLE_GAP = 2.0
"""Seconds between two bytes of a trickled body."""


class Provider:
    """A provider's file host on 127.0.0.1: ``GET /<name>`` answers the bytes given to ``add``;
    410 Gone once ``expire()`` was called; a name in ``trickle`` is sent one byte every
    ``TRICKLE_GAP`` seconds (at most 60 of them). ``gets`` counts the requests per name;
    ``trickled`` the bytes trickled so far."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.trickle: set[str] = set()
        self.gets: Counter[str] = Counter()
        self.trickled = 0
        self.expired = threading.Event()
        self.closed = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.lstrip("/")
                provider.gets[name] += 1
                body = provider.files.get(name)
                if body is None or provider.expired.is_set():
                    self.send_error(404 if body is None else 410)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    if name in provider.trickle:
                        provider.send_slowly(self.wfile, body)
                    else:
                        self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (its deadline): what this server is for

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def send_slowly(self, out: Any, body: bytes) -> None:
        for byte in body[:60]:
            out.write(bytes([byte]))
            out.flush()
            self.trickled += 1
            if self.closed.wait(TRICKLE_GAP):
                return

    def add(self, name: str, body: bytes) -> str:
        self.files[name] = body
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def close(self) -> None:
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider() -> Iterator[Provider]:
    host = Provider()
    yield host
    host.close()


async def generate(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"success": True, "resultUrl": body["resultUrl"]})


def user_of(scope: Scope) -> str | None:
    headers = dict(scope["headers"])
    return headers.get(b"x-user", b"").decode() or None


def serve_recorded(store: genstore.Store) -> AbstractContextManager[str]:
    """uvicorn serving the recorded app on ``store``; the context gives its base URL."""
    app = RecordingMiddleware(
        Starlette(routes=[Route(ROUTE, generate, methods=["POST"])]),
        store=store,
        routes={ROUTE: "text_to_image"},
        user_id=user_of,
    )
    return serving(app)


def only(store: genstore.Store, prompt: str) -> OperationRecord:
    (record,) = [r for r in store.iter_operations() if r.prompt == prompt]
    return record


def test_a_result_url_that_expires_during_an_outage_is_kept(
    backend_url: str, provider: Provider
) -> None:
    image = png_bytes(24, 24, "teal")
    url = provider.add("out.png", image)
    opened = genstore.open_store(backend_url)
    blobs = SwitchableBlobs(opened.blobs)
    store = genstore.Store(blobs, opened.catalog, opened.options)
    store._recorder = genstore.Recorder(store, base_backoff=0.01, max_backoff=0.05, fsync=False)
    recorder = store.recorder
    blobs.down.set()
    try:
        with serve_recorded(store) as base, httpx.Client(base_url=base, timeout=WAIT) as http:
            answer = http.post(ROUTE, json={"prompt": "expiring", "resultUrl": url})
            assert answer.status_code == 200
            assert wait_for(lambda: recorder.counters.spooled == 1, WAIT), recorder.counters
            assert recorder.flush(WAIT)
            provider.expired.set()  # the provider's URL lifetime is over: 410 from now on
            assert httpx.get(url).status_code == 410
            blobs.down.clear()
            assert wait_for(lambda: recorder.spool_status().count == 0, WAIT)
        record = only(store, "expiring")
        assert record.result is not None and record.result_error is None
        assert store.read_artifact(record.result) == image
        assert provider.gets["out.png"] == 2  # the recorder's one fetch, and ours above
        assert (recorder.counters.replayed, recorder.counters.dropped) == (1, 0)
    finally:
        blobs.down.clear()
        store.close()


@pytest.mark.slow
def test_a_provider_sending_1_byte_every_2_s_holds_back_none_of_50_other_users(
    tmp_path: Path, provider: Provider
) -> None:
    slow = provider.add("slow.png", png_bytes(40, 40))
    provider.trickle.add("slow.png")
    fast = [provider.add(f"fast-{i}.png", png_bytes(4, 4, f"#{i:02x}8040")) for i in range(50)]
    deadline = 4 * TRICKLE_GAP  # the whole body would take over 100 s
    with genstore.open_store(tmp_path / "store", download_deadline=deadline) as store:
        with serve_recorded(store) as base, httpx.Client(base_url=base, timeout=WAIT) as http:
            first = {"prompt": "slow", "resultUrl": slow}
            assert http.post(ROUTE, json=first, headers={"x-user": "slow"}).status_code == 200
            for i, url in enumerate(fast):
                body = {"prompt": f"user-{i}", "resultUrl": url}
                assert http.post(ROUTE, json=body, headers={"x-user": f"u{i}"}).status_code == 200

            def others_saved() -> bool:
                return sum(1 for r in store.iter_operations() if r.prompt != "slow") == 50

            assert wait_for(others_saved, WAIT), store.recorder.counters
            # Saved while the slow download still ran: not held back by it.
            assert [r.prompt for r in store.iter_operations() if r.prompt == "slow"] == []
            assert provider.gets["slow.png"] == 1 and provider.trickled >= 1
            assert wait_for(lambda: store.recorder.counters.recorded == 51, WAIT)
        late = only(store, "slow")
        assert late.result is None and "deadline" in (late.result_error or "")
        others = [r for r in store.iter_operations() if r.prompt != "slow"]
        assert all(r.result is not None for r in others)
        assert sorted(r.user_id or "" for r in others) == sorted(f"u{i}" for i in range(50))
        assert store.recorder.counters.spooled == 0
