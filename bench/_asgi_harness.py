"""The apps, servers and load generators behind ``bench/bench_asgi.py`` (no ``run()`` here).

Every measurement that must not share a process with what it measures runs in a subprocess of
this module:

    python -m bench._asgi_harness serve MODE PORT ROOT          uvicorn serving make_app(MODE)
    python -m bench._asgi_harness rps PORT/PATH,... COUNT CONNECTIONS ROUNDS
    python -m bench._asgi_harness latency PORT,PORT PATH COUNT
    python -m bench._asgi_harness first-event PORT,PORT COUNT

The load generators speak keep-alive HTTP/1.1 on raw asyncio sockets: cheap enough that the
client is not what is measured.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genstore._recording.items import Recordable

from bench._util import KiB

__all__ = [
    "CONNECTIONS",
    "RECORDED",
    "UNMATCHED",
    "UPLOAD",
    "EnqueueRecorder",
    "EnqueueStore",
    "client",
    "inprocess",
    "make_app",
    "recorded_cpu",
    "server",
    "unmatched_cost",
    "upload_body",
    "uvicorn_rps",
]

_ROOT = Path(__file__).resolve().parents[1]
RECORDED = "/api/generate/text-to-image"
UNMATCHED = "/api/other"
UPLOAD = "/api/edit/image"
STREAM = "/api/stream/image"
STREAM_EVENTS = 64
"""Events after the first in each B10 stream (16 KiB each)."""
CONNECTIONS = 8
"""Keep-alive connections of the requests/s load."""
_BODY = json.dumps({"prompt": "un chat", "aspectRatio": "16:9", "guidance": 3.5}).encode()
_BOUNDARY = "genstorebenchboundary"


# -- the apps (used in-process and by the server subprocesses) ----------------------------------


class EnqueueRecorder:
    """A recorder whose ``submit`` only enqueues: the request path without the background save.

    With a ``spool_dir`` the middleware journals each exchange there (write-ahead, as with a real
    store), and each record counts as saved at once (its journal entry is settled).
    """

    def __init__(self, spool_dir: str | None = None) -> None:
        # Short: thousands of records kept alive would make every garbage collection (which
        # runs on whichever thread allocates, the event loop included) dearer than in life.
        self.queue: deque[Recordable] = deque(maxlen=64)
        self.spool_dir = spool_dir

    def submit_request(
        self,
        request: Recordable,
        owned_paths: Sequence[str | os.PathLike[str]] = (),
        *,
        settled: Callable[[], None] | None = None,
    ) -> None:
        self.queue.append(request)
        if settled is not None:
            settled()

    def reject(self, reason: Exception, owned_paths: Sequence[str | os.PathLike[str]] = ()) -> None:
        raise AssertionError(f"the bench app's records are valid: {reason}")

    def flush(self, timeout: float | None = None) -> bool:
        return True


class EnqueueStore:
    """A store whose recorder only enqueues; the middleware journals into a temporary folder."""

    def __init__(self) -> None:
        self.recorder = EnqueueRecorder(tempfile.mkdtemp(prefix="genstore-bench-spool-"))


def make_app(mode: str, root: str | None = None) -> Any:
    """``bare``/``wrapped`` (enqueue recorder), ``slow-bare``/``slow-wrapped`` (200 ms saves),
    ``upload-bare``/``upload-wrapped`` and ``store-wrapped`` (real store)."""
    from genstore_asgi import RecordingMiddleware
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, StreamingResponse
    from starlette.routing import Route

    async def generate(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"success": True, "resultUrl": None, "prompt": body["prompt"]})

    async def stream(request: Request) -> StreamingResponse:
        await request.body()
        return StreamingResponse(_sse_events(), media_type="text/event-stream")

    async def upload(request: Request) -> JSONResponse:
        async with request.form() as form:
            return JSONResponse({"success": True, "files": len(form.getlist("images"))})

    wrapped: Any = None

    async def cpu(request: Request) -> JSONResponse:
        if wrapped is not None:  # the last load's background work must not leak into the next
            await asyncio.to_thread(wrapped.flush, 600)
        # The event loop's thread, and the whole process (the recorder's threads included, its
        # queue flushed just above, so the background saves of the last load are counted).
        return JSONResponse({"thread_cpu": time.thread_time(), "process_cpu": time.process_time()})

    async def rss(request: Request) -> JSONResponse:
        import psutil

        if wrapped is not None:  # the peak must include the background recording
            await asyncio.to_thread(wrapped.flush, 600)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KiB
        return JSONResponse({"rss": psutil.Process().memory_info().rss, "peak": peak})

    store: Any = None

    async def state(request: Request) -> JSONResponse:
        """What the real store holds: input sizes per record, and the recorder's counters."""
        from dataclasses import asdict

        if store is None or isinstance(store, EnqueueStore):
            return JSONResponse({})
        records = await asyncio.to_thread(lambda: store.history(limit=1000).items)
        total = await asyncio.to_thread(lambda: store.catalog.stats().operations)
        return JSONResponse(
            {
                "inputs": [[ref.size for ref in record.inputs] for record in records],
                "counters": asdict(store.recorder.counters),
                "records": total,
            }
        )

    routes = [
        Route("/_state", state),
        Route(RECORDED, generate, methods=["POST"]),
        Route(UNMATCHED, generate, methods=["POST"]),
        Route(UPLOAD, upload, methods=["POST"]),
        Route(STREAM, stream, methods=["POST"]),
        Route("/_cpu", cpu),
        Route("/_rss", rss),
    ]
    app: Any = Starlette(routes=routes)
    if mode.endswith("bare"):
        return app
    enqueue = mode in ("wrapped", "wrapped-nowal")
    store = EnqueueStore() if enqueue else _real_store(Path(str(root)), mode)
    routes_map = {
        "/api/generate/*": "text_to_image",
        "/api/edit/*": "image_edit_single",
        STREAM: "text_to_image",
    }
    wrapped = RecordingMiddleware(
        app, store=store, routes=routes_map, write_ahead=mode != "wrapped-nowal"
    )
    return wrapped


_PREVIEW = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(16 * KiB)).decode()


def _sse_events() -> Iterator[bytes]:
    """An OpenAI-style image stream: a small first event, previews, then the final image."""
    yield b'event: image_generation.started\ndata: {"type": "image_generation.started"}\n\n'
    partial = (
        'event: image_generation.partial_image\ndata: {"type": '
        f'"image_generation.partial_image", "b64_json": "{_PREVIEW}"}}\n\n'
    ).encode()
    for _ in range(STREAM_EVENTS):
        yield partial
    final = f'{{"type": "image_generation.completed", "b64_json": "{_PREVIEW}"}}'
    yield f"event: image_generation.completed\ndata: {final}\n\n".encode()


def _real_store(root: Path, mode: str) -> Any:
    import genstore

    store = genstore.open_store(root)
    if mode == "slow-wrapped":
        write = store.blobs._write

        def slow_write(key: str, *args: Any, **kwargs: Any) -> int:
            if key.startswith("operations/") and key.endswith(".json"):
                time.sleep(0.2)  # one sidecar per save: 200 ms per save
            return write(key, *args, **kwargs)

        store.blobs._write = slow_write  # type: ignore[method-assign]
    return store


# -- B7 in-process --------------------------------------------------------------------------------


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }


async def _drive(app: Any, path: str, count: int) -> tuple[float, float, float]:
    """Wall seconds, this thread's CPU seconds, process CPU seconds for ``count`` requests."""
    message = {"type": "http.request", "body": _BODY, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(message: dict[str, Any]) -> None:
        pass

    wall, cpu, proc = time.perf_counter(), time.thread_time(), time.process_time()
    for _ in range(count):
        await app(_scope(path), receive, send)
    return time.perf_counter() - wall, time.thread_time() - cpu, time.process_time() - proc


def inprocess(count: int, block: int) -> dict[str, list[tuple[float, float, float]]]:
    """``count`` requests per configuration, in blocks of ``block`` taking turns, so a burst of
    load from elsewhere on the machine hits every configuration alike. Per block: wall seconds,
    event-loop thread CPU seconds, process CPU seconds until its records were handed over."""
    bare, wrapped, nowal = make_app("bare"), make_app("wrapped"), make_app("wrapped-nowal")
    configs = {
        "bare unmatched": (bare, UNMATCHED),
        "wrapped unmatched": (wrapped, UNMATCHED),
        "bare recorded": (bare, RECORDED),
        "wrapped recorded": (wrapped, RECORDED),
        "wrapped recorded, no write-ahead": (nowal, RECORDED),
    }
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in configs}

    async def all_blocks() -> None:
        for app, path in configs.values():  # warm-up: imports, caches, the worker thread
            await _drive(app, path, 200)
        for r in range(max(1, count // block)):
            order = list(configs.items()) if r % 2 == 0 else list(reversed(configs.items()))
            for name, (app, path) in order:
                started = time.process_time()
                wall, loop_cpu, _ = await _drive(app, path, block)
                for recorder in (wrapped, nowal):  # the block's background work, in its CPU
                    recorder.flush(60)
                runs[name].append((wall, loop_cpu, time.process_time() - started))

    asyncio.run(all_blocks())
    return runs


def unmatched_cost(count: int, block: int) -> tuple[float, float]:
    """Nanoseconds per call of a no-op app, bare and wrapped, on an unmatched path (best block):
    the middleware's own cost on a request it does not record, free of any app's noise."""
    from genstore_asgi import RecordingMiddleware

    async def noop(scope: Any, receive: Any, send: Any) -> None:
        pass

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        pass

    wrapped = RecordingMiddleware(noop, store=EnqueueStore(), routes={"/api/generate/*": "t"})
    scope = _scope(UNMATCHED)
    best = {"bare": float("inf"), "wrapped": float("inf")}

    async def blocks() -> None:
        for _ in range(max(1, count // block)):
            for name, app in (("bare", noop), ("wrapped", wrapped)):
                started = time.perf_counter()
                for _ in range(block):
                    await app(scope, receive, send)
                best[name] = min(best[name], (time.perf_counter() - started) / block * 1e9)

    asyncio.run(blocks())
    return best["bare"], best["wrapped"]


# -- servers and load in subprocesses -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def server(mode: str, root: Path | None = None) -> Iterator[str]:
    """A uvicorn subprocess serving ``make_app(mode)`` on 127.0.0.1; yields its base URL."""
    import httpx

    port = _free_port()
    args = ["-m", "bench._asgi_harness", "serve", mode, str(port), str(root or "")]
    process = subprocess.Popen([sys.executable, *args], cwd=_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/_cpu", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {mode} server did not start")
            time.sleep(0.1)
        yield url
    finally:
        # SIGKILL: a backlog of slowed saves must not stretch the run (nothing here is kept).
        process.send_signal(signal.SIGKILL)
        process.wait(30)


def _serve(mode: str, port: int, root: str) -> None:
    import uvicorn

    app = make_app(mode, root or None)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def client(*args: str) -> Any:
    """Run a load generator of this module in its own process; its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "bench._asgi_harness", *args],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=True,
    )
    return json.loads(done.stdout)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> bytes:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"unexpected response {head[:60]!r}")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    return await reader.readexactly(length)


def _post(port: int, path: str) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(_BODY)}\r\n\r\n"
    ).encode() + _BODY


async def _server_cpu(port: int) -> tuple[float, float]:
    """The server's event-loop thread CPU and process CPU seconds (after flushing its recorder)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /_cpu HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    body = await _exchange(reader, writer, request)
    writer.close()
    answer = json.loads(body)
    return float(answer["thread_cpu"]), float(answer["process_cpu"])


async def _rps_main(
    targets: Sequence[tuple[int, str]], count: int, connections: int, rounds: int
) -> list[list[tuple[float, float, float]]]:
    """For each round and target (port, path), in turns: (requests/s over ``count`` requests on
    ``connections`` keep-alive connections, the server's event-loop CPU µs per request, its
    process CPU µs per request with the recorder's queue flushed)."""

    async def load(port: int, path: str, total: int) -> float:
        request = _post(port, path)
        remaining = total

        async def connection() -> None:
            nonlocal remaining
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            while remaining > 0:
                remaining -= 1
                await _exchange(reader, writer, request)
            writer.close()

        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(connections)))
        return total / (time.perf_counter() - started)

    for port, path in targets:
        await load(port, path, 200)  # warm-up
    results: list[list[tuple[float, float, float]]] = [[] for _ in targets]
    for r in range(rounds):
        indexes = list(range(len(targets)))
        for i in indexes if r % 2 == 0 else reversed(indexes):
            port, path = targets[i]
            loop_before, process_before = await _server_cpu(port)
            rps = await load(port, path, count)
            loop_after, process_after = await _server_cpu(port)
            loop_cpu = (loop_after - loop_before) / count * 1e6
            results[i].append((rps, loop_cpu, (process_after - process_before) / count * 1e6))
    return results


async def _latency_main(ports: Sequence[int], path: str, count: int) -> dict[str, Any]:
    """Sequential requests taking turns between servers (one connection each): every server
    sees the same machine state, so their latencies compare fairly."""
    connections = [await asyncio.open_connection("127.0.0.1", port) for port in ports]
    latencies: dict[str, list[float]] = {str(port): [] for port in ports}
    for _ in range(count):
        for port, (reader, writer) in zip(ports, connections, strict=True):
            request = _post(port, path)
            start = time.perf_counter()
            await _exchange(reader, writer, request)
            latencies[str(port)].append(time.perf_counter() - start)
    for _, writer in connections:
        writer.close()
    return {"latencies": latencies}


async def _first_event_main(ports: Sequence[int], count: int) -> dict[str, list[float]]:
    """Seconds from sending a request to receiving its stream's first event, per server: the
    servers take turns (the order swapped each time), one fresh connection per request, set up
    before the clock starts; each stream is read to its end."""
    body = b'{"prompt": "un chat"}'
    firsts: dict[str, list[float]] = {str(port): [] for port in ports}
    for i in range(count):
        for port in ports if i % 2 == 0 else list(reversed(ports)):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            request = (
                f"POST {STREAM} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected response {head[:60]!r}")
            await reader.readuntil(b"\n\n")  # the first event (inside the first chunk)
            firsts[str(port)].append(time.perf_counter() - started)
            while await reader.read(256 * KiB):
                pass
            writer.close()
    return firsts


def first_event_times(count: int) -> dict[str, list[float]]:
    """B10: time to the first event of a recorded SSE route, bare and wrapped (seconds)."""
    with server("bare") as bare, server("wrapped") as wrapped:
        ports = [url.rsplit(":", 1)[1] for url in (bare, wrapped)]
        client("first-event", ",".join(ports), "20")  # warm-up
        answer = client("first-event", ",".join(ports), str(count))
    return {"bare": answer[ports[0]], "wrapped": answer[ports[1]]}


def uvicorn_rps(count: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(requests/s, server event-loop CPU µs per request) per configuration and round."""
    with (
        server("bare") as bare,
        server("wrapped") as wrapped,
        server("bare") as control,
        server("wrapped-nowal") as nowal,
    ):
        configs = {
            "bare unmatched": (bare, UNMATCHED),
            "wrapped unmatched": (wrapped, UNMATCHED),
            # A second bare server: how far two identical servers differ here (the noise floor).
            "control unmatched": (control, UNMATCHED),
            "bare recorded": (bare, RECORDED),
            "wrapped recorded": (wrapped, RECORDED),
            "wrapped recorded, no write-ahead": (nowal, RECORDED),
        }
        targets = ",".join(f"{url.rsplit(':', 1)[1]}{path}" for url, path in configs.values())
        answer = client("rps", targets, str(count), str(CONNECTIONS), str(rounds))
    return {
        name: [(float(rps), float(cpu)) for rps, cpu, _ in runs]
        for name, runs in zip(configs, answer, strict=True)
    }


def recorded_cpu(root: Path, count: int, rounds: int) -> dict[str, Any]:
    """B10: process CPU µs per request of the bare app and of the app recording into a real
    store (event loop + background save), per round, and the recorder's counters at the end."""
    import httpx

    with server("bare") as bare, server("store-wrapped", root) as wrapped:
        targets = f"{bare.rsplit(':', 1)[1]}{RECORDED},{wrapped.rsplit(':', 1)[1]}{RECORDED}"
        answer = client("rps", targets, str(count), str(CONNECTIONS), str(rounds))
        state = httpx.get(f"{wrapped}/_state", timeout=60).json()
    return {
        "bare": [float(process) for _, _, process in answer[0]],
        "recording": [float(process) for _, _, process in answer[1]],
        "counters": state["counters"],
        "records": state["records"],
    }


def upload_body(size: int) -> tuple[Iterator[bytes], str]:
    head = (
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nbig\r\n'
        f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="images"; filename="big.png"'
        "\r\nContent-Type: image/png\r\n\r\n"
    ).encode()
    block = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4096

    def chunks() -> Iterator[bytes]:
        yield head
        sent = 0
        while sent < size:
            chunk = block[: min(len(block), size - sent)]
            sent += len(chunk)
            yield chunk
        yield f"\r\n--{_BOUNDARY}--\r\n".encode()

    return chunks(), f"multipart/form-data; boundary={_BOUNDARY}"


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["serve"]:
        _serve(argv[1], int(argv[2]), argv[3] if len(argv) > 3 else "")
        return 0
    if argv[:1] == ["latency"]:
        ports = [int(port) for port in argv[1].split(",")]
        print(json.dumps(asyncio.run(_latency_main(ports, argv[2], int(argv[3])))))
        return 0
    if argv[:1] == ["first-event"]:
        ports = [int(port) for port in argv[1].split(",")]
        print(json.dumps(asyncio.run(_first_event_main(ports, int(argv[2])))))
        return 0
    if argv[:1] == ["rps"]:
        targets = []
        for target in argv[1].split(","):
            port, _, path = target.partition("/")
            targets.append((int(port), "/" + path))
        runs = asyncio.run(_rps_main(targets, int(argv[2]), int(argv[3]), int(argv[4])))
        print(json.dumps(runs))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
