"""S3 faults: the retry loop (backoff with jitter inside a deadline), real 5xx/throttling/403
answers from a loopback proxy in front of moto, and the moto server stopped in the middle of a run
(fails fast and typed, leaves nothing half-visible, works again once the server is back)."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import genstore
import pytest
from genstore import AuthError, BackendUnavailable, GenstoreError
from genstore_adapters._retry import RetryPolicy, retry_call_async
from genstore_adapters.s3.filesystem import with_attempts_note
from helpers import png_bytes
from hypothesis import given
from hypothesis import strategies as st

MIB = 1024 * 1024

# -- the retry loop, on a fake clock ---------------------------------------------------------


class _FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class _Flaky(Exception):
    pass


def _run(policy: RetryPolicy, outcomes: list[BaseException | str], fake: _FakeTime) -> Any:
    attempts = iter(outcomes)

    async def call() -> str:
        fake.now += 0.05  # each attempt takes a little time
        outcome = next(attempts)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return asyncio.run(
        retry_call_async(
            call,
            policy=policy,
            is_transient=lambda e: isinstance(e, _Flaky),
            translate=with_attempts_note,
            clock=fake.clock,
            sleep=fake.sleep,
        )
    )


def test_transient_failures_are_retried_until_success() -> None:
    fake = _FakeTime()
    assert _run(RetryPolicy(deadline=5), [_Flaky(), _Flaky(), "ok"], fake) == "ok"
    assert len(fake.slept) == 2


def test_other_failures_are_not_retried() -> None:
    fake = _FakeTime()
    with pytest.raises(KeyError):
        _run(RetryPolicy(deadline=5), [KeyError("x"), "never"], fake)
    assert fake.slept == []


def test_retries_stop_at_the_deadline_with_a_note() -> None:
    fake = _FakeTime()
    with pytest.raises(_Flaky) as info:
        _run(RetryPolicy(deadline=2.0, base=0.1, cap=0.5), [_Flaky()] * 10_000, fake)
    assert fake.now <= 2.0 + 0.05
    assert len(fake.slept) >= 3  # it did retry, with growing ceilings
    assert any("gave up after" in note for note in info.value.__notes__)


@given(
    deadline=st.floats(0, 5),
    base=st.floats(0.001, 2),
    cap=st.floats(0.001, 5),
    rolls=st.lists(st.floats(0, 1), min_size=1, max_size=2000),
)
def test_backoff_never_sleeps_past_the_deadline(
    deadline: float, base: float, cap: float, rolls: list[float]
) -> None:
    policy = RetryPolicy(deadline=deadline, base=base, cap=cap)
    for attempt, roll in enumerate(rolls, start=1):
        delay = policy.backoff(attempt, rng=lambda: roll)  # noqa: B023 - used at once
        assert 0 <= delay <= min(cap, base * 2.0 ** min(attempt - 1, 32))
    fake = _FakeTime()
    with pytest.raises(_Flaky):
        _run(policy, [_Flaky()] * 100_000, fake)
    assert sum(fake.slept) <= deadline


# -- real error answers, from a loopback proxy in front of moto ------------------------------


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 that answers the first ``failures`` requests itself with an S3
    error (``status``, ``code``) and forwards the rest to moto."""

    def __init__(self, upstream_port: int, *, status: int, code: str, failures: int) -> None:
        self.requests = 0
        self.injected = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.requests += 1
                if proxy.injected < failures:
                    proxy.injected += 1
                    payload = (
                        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
                        f"<Message>injected</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "expect"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in (
                        "connection",
                        "transfer-encoding",
                        "keep-alive",
                        "content-length",
                        "server",
                        "date",
                    ):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def proxy_store(s3_server: Any, s3_bucket: str) -> Iterator[Any]:
    """Open a store through a FaultProxy: ``proxy_store(status, code, failures)``."""
    opened: list[tuple[FaultProxy, genstore.Store]] = []

    def make(status: int, code: str, failures: int) -> tuple[FaultProxy, genstore.Store]:
        proxy = FaultProxy(s3_server.port, status=status, code=code, failures=failures)
        store = genstore.open_store(
            f"s3://{s3_bucket}/p?endpoint_url=http://127.0.0.1:{proxy.port}&retry_deadline=1"
        )
        opened.append((proxy, store))
        return proxy, store

    yield make
    for proxy, store in opened:
        store.close()
        proxy.close()


@pytest.mark.s3
@pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (500, "InternalError")])
def test_throttling_and_server_errors_are_retried(proxy_store: Any, status: int, code: str) -> None:
    proxy, store = proxy_store(status, code, failures=2)
    store.blobs.write("a/b.txt", [b"kept"])
    assert proxy.injected == 2
    assert store.blobs.read("a/b.txt") == b"kept"


@pytest.mark.s3
def test_a_server_that_keeps_failing_gives_backend_unavailable(proxy_store: Any) -> None:
    proxy, store = proxy_store(503, "ServiceUnavailable", failures=10_000)
    with pytest.raises(BackendUnavailable) as info:
        store.blobs.write("a/b.txt", [b"x"])
    assert type(info.value) is BackendUnavailable
    assert proxy.requests > 1
    assert "gave up after" in str(info.value)


@pytest.mark.s3
def test_access_denied_is_an_auth_error_at_once(proxy_store: Any) -> None:
    proxy, store = proxy_store(403, "AccessDenied", failures=10_000)
    with pytest.raises(AuthError):
        store.blobs.write("a/b.txt", [b"x"])
    assert proxy.requests == 1


# -- the server stopped in the middle of a run -----------------------------------------------


def _store_on(server: Any, prefix: str, extra: str = "") -> genstore.Store:
    bucket = f"faults-{prefix}"
    server.client().create_bucket(Bucket=bucket)
    return genstore.open_store(
        f"s3://{bucket}/{prefix}?endpoint_url={server.endpoint_url}"
        f"&retry_deadline=0.5&connect_timeout=1&read_timeout=10{extra}"
    )


def _assert_whole(store: genstore.Store) -> set[str]:
    """Every visible record has its artefacts, with the checksums it names; return the ids."""
    report = store.verify(grace=timedelta(0))
    assert report.corrupt == [] and report.unindexed == [] and report.stale_index == []
    ids = set()
    for record in store.iter_operations():
        ids.add(record.operation_id)
        for ref in [*record.inputs, *([record.result] if record.result else [])]:
            assert hashlib.sha256(store.read_artifact(ref)).hexdigest() == ref.sha256
    return ids


@pytest.mark.s3
def test_server_stopped_mid_run_fails_typed_then_recovers(restartable_s3: Any) -> None:
    server = restartable_s3
    store = _store_on(server, "run")
    saved: list[str] = []
    errors: list[BaseException] = []
    progressed = threading.Event()

    def run() -> None:
        for i in range(500):  # bounded: the stop comes long before
            try:
                r = store.save_complete_operation(
                    operation_type="text_to_image",
                    prompt=f"p{i}",
                    input_images=[png_bytes(3, 3, "red")],
                    result=png_bytes(8, 8, "blue") + i.to_bytes(4, "big"),
                )
            except BaseException as exc:
                errors.append(exc)
                return
            saved.append(r.operation_id)
            if len(saved) >= 5:
                progressed.set()

    worker = threading.Thread(target=run)
    worker.start()
    assert progressed.wait(timeout=120)
    server.stop()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], BackendUnavailable), repr(errors[0])
    assert type(errors[0]).__module__ == "genstore.exceptions"
    assert "did not answer" in str(errors[0])  # refused connections, not some other failure
    with pytest.raises(BackendUnavailable):
        store.history()

    server.start()
    ids = _assert_whole(store)
    assert set(saved) <= ids and len(ids - set(saved)) <= 1
    again = store.save_complete_operation(operation_type="text_to_image", result=b"back")
    assert again.operation_id in {r.operation_id for r in store.history(limit=1000).items}
    store.verify(fix=True, grace=timedelta(0))
    assert store.verify(grace=timedelta(0)).ok
    store.close()


@pytest.mark.s3
def test_server_stopped_mid_multipart_upload_leaves_nothing_visible(
    restartable_s3: Any,
) -> None:
    server = restartable_s3
    store = _store_on(server, "mpu", extra=f"&block_size={5 * MIB}")
    fs: Any = store.blobs.fs  # type: ignore[attr-defined]
    original = fs._call_s3
    parts: list[int] = []

    async def stop_after_first_part(method: str, *args: Any, **kwargs: Any) -> Any:
        out = await original(method, *args, **kwargs)
        if method == "upload_part":
            parts.append(1)
            if len(parts) == 1:
                server.stop()
        return out

    fs._call_s3 = stop_after_first_part
    with pytest.raises(BackendUnavailable, match="did not answer"):
        store.save_complete_operation(operation_type="text_to_video", result=b"v" * (12 * MIB))
    assert parts == [1]
    fs._call_s3 = original

    server.start()
    assert list(store.blobs.list("")) == []  # no record, no result: nothing half-visible
    assert _assert_whole(store) == set()
    saved = store.save_complete_operation(operation_type="text_to_video", result=b"v" * MIB)
    assert [r.operation_id for r in store.history().items] == [saved.operation_id]
    store.close()


def test_genstore_errors_are_never_retried() -> None:
    from genstore_adapters.s3.errors import is_transient

    assert not is_transient(BackendUnavailable("already translated"))
    assert not is_transient(GenstoreError("x"))
