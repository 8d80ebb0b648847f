"""The handoff from the request path to the recorder: fallbacks, ownership of files, draining."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from genstore_asgi import RecordingMiddleware, _handoff
from genstore_asgi._exchange import idempotency_key

from asgi.support import SpyStore, app_reading_everything, call, http_scope, request_messages

ROUTES = {"/api/generate/*": "text_to_image"}


def test_idempotency_keys_of_failed_attempts_and_long_headers() -> None:
    assert idempotency_key("abc", failed=False) == "abc"
    assert idempotency_key(" abc ", failed=True) == "abc#failed"
    assert idempotency_key("", failed=False) is None
    assert idempotency_key(None, failed=True) is None
    long = idempotency_key("k" * 600, failed=False)
    assert long is not None and long.startswith("sha256:") and len(long) == 71


def record_one(middleware: RecordingMiddleware, body: bytes = b'{"prompt": "p"}') -> None:
    scope = http_scope("/api/generate/x", headers=[("content-type", "application/json")])
    asyncio.run(call(middleware, scope, request_messages([body])))


def test_a_record_that_cannot_be_built_is_submitted_with_the_bare_facts(
    spy: SpyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug while parsing")

    monkeypatch.setattr(_handoff, "to_record", broken)
    middleware = RecordingMiddleware(app_reading_everything, store=spy, routes=ROUTES)
    record_one(middleware)
    assert middleware.flush(5)
    (record,) = spy.recorder.submitted
    assert record.kwargs["operation_type"] == "text_to_image"
    assert record.kwargs["request"].status_code == 200
    assert "error" not in record.kwargs and "prompt" not in record.kwargs


class RaisingRecorder:
    """A recorder breaking its never-raise contract."""

    def __init__(self) -> None:
        self.owned: list[str] = []

    def submit_request(self, request: Any, owned_paths: Any = (), *, settled: Any = None) -> None:
        self.owned.extend(os.fspath(p) for p in owned_paths)
        raise RuntimeError("recorder bug")

    def reject(self, reason: Exception, owned_paths: Any = ()) -> None:
        raise AssertionError("a valid record was rejected")

    def flush(self, timeout: float | None = None) -> bool:
        return True


class RaisingStore:
    def __init__(self) -> None:
        self.recorder = RaisingRecorder()


def test_files_handed_to_a_failing_recorder_are_deleted(tmp_path: Path) -> None:
    store = RaisingStore()
    middleware = RecordingMiddleware(
        app_reading_everything,
        store=store,
        routes=ROUTES,
        max_body_in_memory=16,
        spool_dir=str(tmp_path),
    )
    scope = http_scope("/api/generate/x", headers=[("content-type", "image/png")])
    asyncio.run(call(middleware, scope, request_messages([b"\x89PNG\r\n\x1a\n" + b"x" * 64])))
    assert middleware.flush(5)
    assert len(store.recorder.owned) == 1  # the spooled body, handed over as the input
    assert os.listdir(tmp_path) == []


def test_flush_reports_a_timeout_while_a_record_is_being_built(spy: SpyStore) -> None:
    release = threading.Event()

    def stuck(body: Any) -> str | None:
        release.wait(30)
        return None

    middleware = RecordingMiddleware(
        app_reading_everything, store=spy, routes=ROUTES, result_extractor=stuck
    )
    record_one(middleware)
    try:
        assert middleware.flush(0.2) is False
    finally:
        release.set()
    assert middleware.flush(10) is True
    assert len(spy.recorder.submitted) == 1
