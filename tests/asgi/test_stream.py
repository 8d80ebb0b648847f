"""Streamed answers (server-sent events, NDJSON): the results of the last event carrying any, in
bounded memory, the stream passed on untouched.

The memory test runs the server in a uvicorn subprocess and measures its resident set with psutil.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import genstore
import httpx
import psutil
import pytest
from fakes.providers import FakeProviders
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from genstore._recording.extract import extract_results
from genstore_asgi import RecordingMiddleware
from genstore_asgi._stream import StreamTee, last_outputs, may_carry_output, sse_data
from helpers import free_port
from hypothesis import given
from hypothesis import strategies as st

from asgi import stream_service
from asgi.support import cut, serving, wait_for

HERE = Path(__file__).resolve().parent
MiB = 1024 * 1024


# -- the tee, as a parser ----------------------------------------------------------------------------

EVENT_BODIES = st.one_of(
    st.builds(lambda n: {"type": "progress", "percent": n}, st.integers(0, 100)),
    st.builds(
        lambda n: {"type": "image_generation.partial_image", "b64_json": _png_b64(n)},
        st.integers(0, 50),
    ),
    st.builds(
        lambda n: {"type": "image_generation.completed", "b64_json": _png_b64(n)},
        st.integers(0, 50),
    ),
    st.builds(lambda n: {"output": [f"https://cdn.test/{n}.png"]}, st.integers(0, 99)),
    st.builds(lambda n: {"delta": f"text with / and http words {n}"}, st.integers(0, 9)),
)


def _png_b64(n: int) -> str:
    import base64

    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + n.to_bytes(4, "big") * 8).decode()


def _expected(bodies: list[dict[str, Any]]) -> list[Any]:
    for body in reversed(bodies):
        found = extract_results(body)
        if found:
            return [o.value for o in found]
    return []


@given(
    st.lists(EVENT_BODIES, max_size=12),
    st.sampled_from(["\n", "\r\n"]),
    st.lists(st.integers(1, 97), min_size=1, max_size=5),
)
def test_sse_results_are_those_of_the_last_event_carrying_any(
    bodies: list[dict[str, Any]], newline: str, sizes: list[int]
) -> None:
    stream = "".join(
        f": comment{newline}event: e{i}{newline}data: {json.dumps(b)}{newline}{newline}"
        for i, b in enumerate(bodies)
    ).encode()
    tee = StreamTee("text/event-stream", budget=MiB, max_event=MiB)
    chunks = cut(stream, sizes) or [b""]
    for i, chunk in enumerate(chunks):
        tee.feed(chunk, more=i < len(chunks) - 1)
    kept = tee.finish()
    assert kept.complete and kept.count == len(bodies)
    assert [o.value for o in last_outputs(kept)] == _expected(bodies)


@given(st.lists(EVENT_BODIES, max_size=12), st.lists(st.integers(1, 97), min_size=1, max_size=5))
def test_ndjson_results_are_those_of_the_last_line_carrying_any(
    bodies: list[dict[str, Any]], sizes: list[int]
) -> None:
    stream = "".join(json.dumps(b) + "\n" for b in bodies).encode()
    tee = StreamTee("application/x-ndjson", budget=MiB, max_event=MiB)
    chunks = cut(stream, sizes) or [b""]
    for i, chunk in enumerate(chunks):
        tee.feed(chunk, more=i < len(chunks) - 1)
    assert [o.value for o in last_outputs(tee.finish())] == _expected(bodies)


def test_the_tee_keeps_at_most_its_budget_and_skips_oversized_events() -> None:
    tee = StreamTee("text/event-stream", budget=10_000, max_event=50_000)
    event = b'data: {"b64_json": "' + b"A" * 4000 + b'"}\n\n'
    for _ in range(100):
        tee.feed(event, more=True)
    huge = b'data: {"url": "https://x.test/' + b"a" * 100_000 + b'"}\n\n'
    tee.feed(huge[:60_000], more=True)
    tee.feed(huge[60_000:], more=True)
    tee.feed(b'data: {"url": "https://x.test/last.png"}\n\n', more=False)
    kept = tee.finish()
    assert sum(len(e) for e in kept.events) <= 10_000 + len(event)  # the window + one older
    assert kept.count == 101  # the oversized event is skipped whole, not counted
    assert [o.value for o in last_outputs(kept)] == ["https://x.test/last.png"]


def test_a_result_followed_by_more_than_the_budget_of_text_events_is_kept() -> None:
    tee = StreamTee("text/event-stream", budget=10_000, max_event=50_000)
    tee.feed(b'data: {"url": "https://x.test/image.png"}\n\n', more=True)
    tee.feed(b'data: {"type": "ping"}\n\n', more=True)  # a later candidate-free event
    for n in range(500):
        tee.feed(b'data: {"delta": "token %d"}\n\n' % n, more=True)
    tee.feed(b"", more=False)
    kept = tee.finish()
    assert sum(len(e) for e in kept.events) < 11_000
    assert [o.value for o in last_outputs(kept)] == ["https://x.test/image.png"]


OUTPUT_VALUES = st.one_of(
    st.sampled_from(["https://cdn.test/a.png", "HTTP://CDN.TEST/A.PNG", "/files/a.png"]),
    st.builds(lambda n: "data:image/png;base64," + _png_b64(n), st.integers(0, 9)),
    st.builds(lambda n: "data:image/png," + "%89PNG" * n, st.integers(1, 3)),
    st.builds(_png_b64, st.integers(0, 9)),
    st.text(max_size=8),
)
KEYS = st.sampled_from(["url", "b64_json", "image", "output", "result", "images", "video", "x"])


@given(
    st.recursive(
        OUTPUT_VALUES,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
        max_leaves=6,
    ),
    st.booleans(),
)
def test_the_output_marker_scan_never_misses_an_output(value: Any, escape_slashes: bool) -> None:
    data = json.dumps(value)
    if escape_slashes:
        data = data.replace("/", "\\/")  # as PHP and some JSON encoders write it
    if extract_results(json.loads(data)):
        assert may_carry_output(f"event: x\ndata: {data}".encode())


def test_sse_data_joins_data_lines() -> None:
    assert sse_data(b"event: x\ndata: a\ndata:b\n: c\nid: 1") == "a\nb"
    assert sse_data(b"event: ping") is None


# -- through uvicorn -----------------------------------------------------------------------------


def test_an_openai_image_stream_keeps_the_final_image_never_a_preview(
    store: genstore.Store, fake: FakeProviders, openai_client: Any
) -> None:
    app = FastAPI()

    @app.post("/api/generate")
    def generate(body: dict[str, Any]) -> StreamingResponse:
        events = openai_client.images.generate(
            model="gpt-image-1", prompt=body["prompt"], stream=True, partial_images=3
        )

        def sse() -> Iterator[str]:
            for event in events:
                yield f"event: {event.type}\ndata: {event.model_dump_json()}\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    middleware = RecordingMiddleware(app, store=store, routes={"/api/generate": "text_to_image"})
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        answer = client.post("/api/generate", json={"prompt": "a fox"})
    assert answer.text.count("event: image_generation.partial_image") == 3
    assert middleware.flush(30)
    (record,) = store.history(limit=5).items
    (final,) = fake.served[-1]
    assert [store.read_artifact(ref) for ref in record.results] == [final]
    assert final not in fake.previews and len(fake.previews) == 3
    assert (record.status, record.prompt, record.result_error) == ("succeeded", "a fox", None)


def test_a_replicate_style_stream_of_bare_urls(store: genstore.Store, fake: FakeProviders) -> None:
    made = fake.generation("image", 2)
    app = FastAPI()

    @app.post("/api/generate")
    def generate() -> StreamingResponse:
        events = [f"event: output\ndata: {fake.file_url(name)}\n\n" for name, _, _ in made]
        events.append("event: done\ndata: {}\n\n")
        return StreamingResponse(iter(events), media_type="text/event-stream")

    middleware = RecordingMiddleware(app, store=store, routes={"/api/generate": "t"})
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        assert client.post("/api/generate", json={}).text.count("event: output") == 2
    assert middleware.flush(30)
    (record,) = store.history(limit=5).items
    assert [store.read_artifact(ref) for ref in record.results] == [made[-1][1]]


# -- memory ---------------------------------------------------------------------------------------


class StreamServer:
    """``asgi.stream_service`` in a uvicorn subprocess on 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "GENSTORE_TEST_ROOT": str(root),
            "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, "-m", "uvicorn", "--factory", "asgi.stream_service:app_from_env"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.process = subprocess.Popen(command, env=env, cwd=HERE.parent)
        self.url = f"http://127.0.0.1:{self.port}"
        if not wait_for(self._answers, timeout=60):
            self.stop()
            pytest.fail("the stream service did not start")
        self.ps = psutil.Process(self.process.pid)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"the stream service exited with {self.process.returncode}")
        try:
            return self.stream(1) > 0
        except httpx.TransportError:
            return False

    def stream(self, megabytes: int) -> int:
        """Read a stream of ``megabytes`` through; the bytes received."""
        received = 0
        with httpx.stream(
            "POST", f"{self.url}/api/stream", json={"prompt": "p", "mb": megabytes}, timeout=120
        ) as response:
            for chunk in response.iter_raw(1024 * 1024):
                received += len(chunk)
        return received

    def peak_rss(self) -> int:
        """The process's resident high-water mark (Linux ``VmHWM``)."""
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # lifespan shutdown drains the records
            self.process.wait(60)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/<pid>/status")
def test_a_200_mb_event_stream_grows_the_server_by_at_most_64_mib(tmp_path: Path) -> None:
    server = StreamServer(tmp_path / "store")
    try:
        server.stream(16)  # warm-up: buffers and allocator arenas a stream needs anyway
        before, high_before = server.ps.memory_info().rss, server.peak_rss()
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.005):
                samples.append(server.ps.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        received = server.stream(200)
        done.set()
        sampler.join(10)
        high_after = server.peak_rss()
    finally:
        server.stop()
    assert received > 200 * MiB
    peak = max([*samples, high_after if high_after > high_before else 0])
    growth = peak - before
    print(f"200 MB SSE stream: peak RSS growth {growth / MiB:.1f} MiB ({len(samples)} samples)")
    assert growth <= 64 * MiB
    with genstore.open_store(tmp_path / "store") as store:
        records = store.history(limit=10).items
        assert len(records) == 3  # the start-up probe, the warm-up and the measured stream
        results = [[store.read_artifact(ref) for ref in r.results] for r in records]
    assert results == [[stream_service.final_png()]] * 3
