"""A recorded service whose storage backend fails on command, for the reliability tests.

The backend is the real local-files backend behind a switch: while the file ``DOWN`` exists in the
flag folder every blob call raises ``BackendUnavailable``; while ``SLOW`` exists each call first
sleeps that many seconds (the file's text). Flag files work across processes, so the same switch
drives an in-process server and a uvicorn subprocess that the test kills with SIGKILL.

    GENSTORE_TEST_ROOT=/tmp/x GENSTORE_TEST_FLAGS=/tmp/flags \
        python -m uvicorn --factory asgi.flaky_service:app_from_env --host 127.0.0.1 --port 8765
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO

import genstore
import uvicorn
from genstore.plugin import BlobInfo, BlobStore
from genstore_adapters.local.blobs import LocalBlobStore
from genstore_adapters.sqlite.catalog import SQLiteCatalog
from genstore_asgi import RecordingMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp


class Switch:
    """Reads the ``DOWN`` and ``SLOW`` flag files of ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def set(self, flag: str, value: str = "") -> None:
        (self.folder / flag).write_text(value)

    def clear(self, flag: str) -> None:
        (self.folder / flag).unlink(missing_ok=True)

    def check(self) -> None:
        slow = self.folder / "SLOW"
        with contextlib.suppress(FileNotFoundError, ValueError):
            time.sleep(float(slow.read_text() or 0))
        if (self.folder / "DOWN").exists():
            raise genstore.BackendUnavailable("the storage backend is down (test switch)")


class FlakyBlobStore(BlobStore):
    """Local files that fail or slow down on command (see ``Switch``)."""

    def __init__(self, inner: BlobStore, switch: Switch) -> None:
        self.inner = inner
        self.switch = switch
        self.url = inner.url
        self.default_catalog = inner.default_catalog

    def local_root(self) -> Path | None:
        return self.inner.local_root()

    def _write(
        self, key: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        self.switch.check()
        return self.inner.write(key, chunks, content_type=content_type, exclusive=exclusive)

    def _open(self, key: str) -> IO[bytes]:
        self.switch.check()
        return self.inner.open(key)

    def _read(self, key: str) -> bytes:
        self.switch.check()
        return self.inner.read(key)

    def _url_for(self, key: str, *, expires: int) -> str | None:
        return self.inner.url_for(key, expires=expires)

    def _exists(self, key: str) -> bool:
        self.switch.check()
        return self.inner.exists(key)

    def _delete(self, key: str) -> None:
        self.switch.check()
        self.inner.delete(key)

    def _list(self, prefix: str) -> Iterator[BlobInfo]:
        self.switch.check()
        return self.inner.list(prefix)

    def close(self) -> None:
        self.inner.close()


def open_flaky_store(root: Path | str, switch: Switch) -> genstore.Store:
    """A store on ``root`` (local files + SQLite; or a store URL: ``s3://...``) whose blobs go
    through ``switch``."""
    if isinstance(root, str):
        opened = genstore.open_store(root)
        return genstore.Store(FlakyBlobStore(opened.blobs, switch), opened.catalog)
    blobs = FlakyBlobStore(LocalBlobStore(root), switch)
    return genstore.Store(blobs, SQLiteCatalog(root / "catalog.sqlite3"))


def create_app(store: genstore.Store, *, write_ahead: bool = True) -> ASGIApp:
    """One recorded JSON route; ``GET /_status``: the recorder's counters and spool; ``/_ping``."""

    async def generate(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"success": True, "prompt": body.get("prompt")})

    async def status(request: Request) -> JSONResponse:
        recorder = store.recorder
        spool = recorder.spool_status()
        return JSONResponse(
            {
                **asdict(recorder.counters),
                "spool_count": spool.count,
                "spool_claimed": spool.claimed,
            }
        )

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})  # touches nothing: the recorder starts by itself

    app = Starlette(
        routes=[
            Route("/api/generate/text-to-image", generate, methods=["POST"]),
            Route("/_status", status),
            Route("/_ping", ping),
        ]
    )
    return RecordingMiddleware(
        app,
        store=store,
        routes={"/api/generate/text-to-image": "text_to_image"},
        write_ahead=write_ahead,
    )


def app_from_env() -> ASGIApp:
    """The app on ``$GENSTORE_TEST_URL`` or ``$GENSTORE_TEST_ROOT`` with flags in
    ``$GENSTORE_TEST_FLAGS`` (uvicorn factory);
    ``$GENSTORE_TEST_WRITE_AHEAD=0`` turns the middleware's journal off."""
    url = os.environ.get("GENSTORE_TEST_URL")  # a store URL (S3 + PostgreSQL), else local files
    root = url if url else Path(os.environ["GENSTORE_TEST_ROOT"])
    store = open_flaky_store(root, Switch(Path(os.environ["GENSTORE_TEST_FLAGS"])))
    return create_app(store, write_ahead=os.environ.get("GENSTORE_TEST_WRITE_AHEAD") != "0")


class ThreadServer:
    """uvicorn serving an app on 127.0.0.1 (a free port) in a thread; ``url`` once started."""

    def __init__(self, app: ASGIApp) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = ""

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        (sock,) = self.server.servers[0].sockets
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def store_app_from_env() -> ASGIApp:
    """The app on a plain local store at ``$GENSTORE_TEST_ROOT`` (no switch: the disk itself
    fails), its recorder spooling where it does by default; retries at most 1 s apart so a
    test does not wait out the default 60 s backoff (uvicorn factory)."""
    store = genstore.open_store(os.environ["GENSTORE_TEST_ROOT"])
    store._recorder = genstore.Recorder(store, max_backoff=1.0, poll_interval=0.5)
    return create_app(store)
