"""Benchmarks of the recording middleware, each against the bare app measured in the same run.

    B7 overhead  a small JSON route, bare vs wrapped: requests/s in-process (direct ASGI calls) and
                 through uvicorn on 127.0.0.1 (load from a separate process); the CPU the
                 middleware adds on the request path (the event-loop thread's CPU time), with a
                 recorder whose submit only enqueues, so the background save is excluded
    B8 latency   response latency p50/p99 with the store's backend slowed to 200 ms per save,
                 recording (real store, real recorder) vs the same app unwrapped
    B9 memory    peak RSS growth of a uvicorn server over 50 multipart uploads of 100 MB, each
                 recorded with its input into a real store, vs the same app unwrapped

Run ``uv run python bench/bench_asgi.py [--quick] [--only B7,B8,B9]`` (prints JSON), or through
``bench/run_all.py``. Servers and load generators run as subprocesses of this module:
``python -m bench.bench_asgi serve MODE PORT ROOT``, ``... rps PORT/PATH,... COUNT CONNECTIONS
ROUNDS`` and ``... latency PORT,PORT PATH COUNT``.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable from the repo root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._util import KiB, MiB, fresh_dir, percentile, section

__all__ = ["FULL", "QUICK", "Sizes", "bench_latency", "bench_memory", "bench_overhead", "run"]

_ROOT = Path(__file__).resolve().parents[1]
RECORDED = "/api/generate/text-to-image"
UNMATCHED = "/api/other"
UPLOAD = "/api/edit/image"
_BODY = json.dumps({"prompt": "un chat", "aspectRatio": "16:9", "guidance": 3.5}).encode()
_BOUNDARY = "genstorebenchboundary"
_CONNECTIONS = 8


@dataclass(frozen=True)
class Sizes:
    """How much work each part does."""

    inprocess_requests: int
    """B7: in-process requests per configuration (in blocks of 1000 taking turns)."""
    uvicorn_requests: int
    """B7: requests per uvicorn round and configuration."""
    rounds: int
    """B7 and B8: rounds, alternating the configurations."""
    latency_requests: int
    """B8: sequential requests per round and side."""
    uploads: int
    """B9: uploads per side."""
    upload_bytes: int
    """B9: size of each uploaded file."""


FULL = Sizes(60_000, 2000, 10, 300, 50, 100_000_000)
QUICK = Sizes(4000, 500, 2, 60, 5, 20_000_000)


# -- the apps (used in-process and by the server subprocesses) ----------------------------------


class EnqueueRecorder:
    """A recorder whose ``submit`` only enqueues: the request path without the background save."""

    def __init__(self) -> None:
        self.queue: deque[dict[str, Any]] = deque(maxlen=10_000)

    def submit(self, owned_paths: Sequence[str] = (), **kwargs: Any) -> None:
        self.queue.append(kwargs)

    def flush(self, timeout: float | None = None) -> bool:
        return True


class EnqueueStore:
    def __init__(self) -> None:
        self.recorder = EnqueueRecorder()


def make_app(mode: str, root: str | None = None) -> Any:
    """``bare``/``wrapped`` (enqueue recorder), ``slow-bare``/``slow-wrapped`` (200 ms saves),
    ``upload-bare``/``upload-wrapped`` (real store)."""
    from genstore_asgi import RecordingMiddleware
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def generate(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"success": True, "resultUrl": None, "prompt": body["prompt"]})

    async def upload(request: Request) -> JSONResponse:
        async with request.form() as form:
            return JSONResponse({"success": True, "files": len(form.getlist("images"))})

    wrapped: Any = None

    async def cpu(request: Request) -> JSONResponse:
        if wrapped is not None:  # the last load's background work must not leak into the next
            await asyncio.to_thread(wrapped.flush, 600)
        return JSONResponse({"thread_cpu": time.thread_time()})  # the event loop's thread

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
        return JSONResponse(
            {
                "inputs": [[ref.size for ref in record.inputs] for record in records],
                "counters": asdict(store.recorder.counters),
            }
        )

    routes = [
        Route("/_state", state),
        Route(RECORDED, generate, methods=["POST"]),
        Route(UNMATCHED, generate, methods=["POST"]),
        Route(UPLOAD, upload, methods=["POST"]),
        Route("/_cpu", cpu),
        Route("/_rss", rss),
    ]
    app: Any = Starlette(routes=routes)
    if mode.endswith("bare"):
        return app
    store = EnqueueStore() if mode == "wrapped" else _real_store(Path(str(root)), mode)
    routes_map = {"/api/generate/*": "text_to_image", "/api/edit/*": "image_edit_single"}
    wrapped = RecordingMiddleware(app, store=store, routes=routes_map)
    return wrapped


def _real_store(root: Path, mode: str) -> Any:
    import genstore

    store = genstore.open_store(root)
    if mode == "slow-wrapped":
        write = store.blobs.write

        def slow_write(key: str, *args: Any, **kwargs: Any) -> int:
            if key.startswith("operations/") and key.endswith(".json"):
                time.sleep(0.2)  # one sidecar per save: 200 ms per save
            return write(key, *args, **kwargs)

        store.blobs.write = slow_write  # type: ignore[method-assign]
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


def _inprocess(count: int, block: int) -> dict[str, list[tuple[float, float, float]]]:
    """``count`` requests per configuration, in blocks of ``block`` taking turns, so a burst of
    load from elsewhere on the machine hits every configuration alike."""
    bare, wrapped = make_app("bare"), make_app("wrapped")
    configs = {
        "bare unmatched": (bare, UNMATCHED),
        "wrapped unmatched": (wrapped, UNMATCHED),
        "bare recorded": (bare, RECORDED),
        "wrapped recorded": (wrapped, RECORDED),
    }
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in configs}

    async def all_blocks() -> None:
        for app, path in configs.values():  # warm-up: imports, caches, the worker thread
            await _drive(app, path, 200)
        for r in range(max(1, count // block)):
            order = list(configs.items()) if r % 2 == 0 else list(reversed(configs.items()))
            for name, (app, path) in order:
                runs[name].append(await _drive(app, path, block))
                wrapped.flush(60)  # the background parsing of this block is not the next's cost

    asyncio.run(all_blocks())
    return runs


# -- servers and load in subprocesses -------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _server(mode: str, root: Path | None = None) -> Iterator[str]:
    """A uvicorn subprocess serving ``make_app(mode)`` on 127.0.0.1; yields its base URL."""
    import httpx

    port = _free_port()
    args = ["-m", "bench.bench_asgi", "serve", mode, str(port), str(root or "")]
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


def _client(*args: str) -> Any:
    """Run a load generator of this module in its own process; its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_asgi", *args],
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


async def _server_cpu(port: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /_cpu HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    body = await _exchange(reader, writer, request)
    writer.close()
    value: float = json.loads(body)["thread_cpu"]
    return value


async def _rps_main(
    targets: Sequence[tuple[int, str]], count: int, connections: int, rounds: int
) -> list[list[tuple[float, float]]]:
    """For each round and target (port, path), in turns: (requests/s over ``count`` requests on
    ``connections`` keep-alive connections, the server's event-loop CPU µs per request)."""

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
    results: list[list[tuple[float, float]]] = [[] for _ in targets]
    for r in range(rounds):
        indexes = list(range(len(targets)))
        for i in indexes if r % 2 == 0 else reversed(indexes):
            port, path = targets[i]
            before = await _server_cpu(port)
            rps = await load(port, path, count)
            cpu = (await _server_cpu(port) - before) / count * 1e6
            results[i].append((rps, cpu))
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


def _uvicorn(count: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(requests/s, server event-loop CPU µs per request) per configuration and round."""
    with _server("bare") as bare, _server("wrapped") as wrapped:
        configs = {
            "bare unmatched": (bare, UNMATCHED),
            "wrapped unmatched": (wrapped, UNMATCHED),
            "bare recorded": (bare, RECORDED),
            "wrapped recorded": (wrapped, RECORDED),
        }
        targets = ",".join(f"{url.rsplit(':', 1)[1]}{path}" for url, path in configs.values())
        answer = _client("rps", targets, str(count), str(_CONNECTIONS), str(rounds))
    return {
        name: [(float(rps), float(cpu)) for rps, cpu in runs]
        for name, runs in zip(configs, answer, strict=True)
    }


# -- B7 ------------------------------------------------------------------------------------------


def bench_overhead(inprocess_requests: int, uvicorn_requests: int, rounds: int) -> dict[str, Any]:
    """B7: requests/s bare vs wrapped (best block or round), request-path CPU added (median)."""
    block = 1000
    local = _inprocess(inprocess_requests, block)
    served = _uvicorn(uvicorn_requests, rounds)

    def best_rps(name: str) -> float:
        return max(block / wall for wall, _, _ in local[name])

    def cpu_us(name: str, which: int) -> float:
        return statistics.median(run[which] / block * 1e6 for run in local[name])

    def served_rps(name: str) -> float:
        return max(rps for rps, _ in served[name])

    def served_cpu(name: str) -> float:
        return statistics.median(cpu for _, cpu in served[name])

    added = cpu_us("wrapped recorded", 1) - cpu_us("bare recorded", 1)
    added_served = served_cpu("wrapped recorded") - served_cpu("bare recorded")
    background = (cpu_us("wrapped recorded", 2) - cpu_us("wrapped recorded", 1)) - (
        cpu_us("bare recorded", 2) - cpu_us("bare recorded", 1)
    )

    def ratio_row(metric: str, ours: float, base: float, goal: str | None) -> dict[str, Any]:
        ratio = ours / base
        return {
            "metric": metric,
            "value": round(ours, 1),
            "unit": "req/s",
            "baseline": round(base, 1),
            "baseline_label": "bare req/s",
            "ratio": round(ratio, 3),
            "ratio_label": "wrapped / bare",
            "goal": goal,
            "ok": None if goal is None else ratio >= 0.97,
        }

    def cpu_row(metric: str, ours: float, base: float) -> dict[str, Any]:
        return {
            "metric": metric,
            "value": round(ours, 1),
            "unit": "µs/request",
            "baseline": round(base, 1),
            "baseline_label": "bare CPU µs/request",
            "goal": "<= 60",
            "ok": ours <= 60,
        }

    rows = [
        ratio_row(
            "in-process, unmatched route",
            best_rps("wrapped unmatched"),
            best_rps("bare unmatched"),
            ">= 0.97",
        ),
        ratio_row(
            "uvicorn, unmatched route",
            served_rps("wrapped unmatched"),
            served_rps("bare unmatched"),
            ">= 0.97",
        ),
        ratio_row(
            "in-process, recorded route",
            best_rps("wrapped recorded"),
            best_rps("bare recorded"),
            None,
        ),
        ratio_row(
            "uvicorn, recorded route",
            served_rps("wrapped recorded"),
            served_rps("bare recorded"),
            None,
        ),
        cpu_row("request-path CPU added, in-process", added, cpu_us("bare recorded", 1)),
        cpu_row("request-path CPU added, uvicorn", added_served, served_cpu("bare recorded")),
        {
            "metric": "background CPU per recorded request (parse + build record, enqueue)",
            "value": round(background, 1),
            "unit": "µs/request",
            "goal": None,
            "ok": None,
        },
    ]
    return {
        "name": "B7 overhead",
        "description": "a small JSON route: bare vs RecordingMiddleware (recorder only enqueues)",
        "rows": rows,
        "params": {
            "inprocess_requests": inprocess_requests,
            "inprocess_block": block,
            "uvicorn_requests": uvicorn_requests,
            "rounds": rounds,
            "uvicorn_connections": _CONNECTIONS,
        },
        "notes": [
            "req/s: best block (in-process, 1000 requests) or round (uvicorn) of each "
            "configuration, the configurations taking turns in alternating order",
            "CPU: the event-loop thread's CPU time (time.thread_time), median round; in uvicorn "
            "read by the server itself before and after each load",
            "background CPU: the handoff thread (process CPU minus loop-thread CPU, minus the "
            "same difference for bare), off the request path",
            "load generator: a separate process, raw keep-alive HTTP/1.1, 8 connections",
        ],
    }


# -- B8 ------------------------------------------------------------------------------------------


def bench_latency(requests: int, rounds: int) -> dict[str, Any]:
    """B8: p50/p99 response latency recording into a 200 ms-per-save store vs not recording."""
    import httpx

    latencies: dict[str, list[float]] = {"slow-bare": [], "slow-wrapped": []}
    backlog: list[int] = []
    for r in range(rounds):
        with (
            fresh_dir("latency", sync=False) as root,
            _server("slow-bare") as bare,
            _server("slow-wrapped", root) as wrapped,
        ):
            urls = {"slow-bare": bare, "slow-wrapped": wrapped}
            order = list(urls) if r % 2 == 0 else list(reversed(urls))
            ports = [urls[mode].rsplit(":", 1)[1] for mode in order]
            _client("latency", ",".join(ports), RECORDED, "20")  # warm-up
            measured = _client("latency", ",".join(ports), RECORDED, str(requests))["latencies"]
            for mode, port in zip(order, ports, strict=True):
                latencies[mode].extend(measured[port])
            counters = httpx.get(f"{wrapped}/_state").json()["counters"]
            backlog.append(counters["pending"] + counters["spooled"])

    def ms(mode: str, q: float) -> float:
        return percentile(latencies[mode], q) * 1000

    rows = []
    for q in (50, 99):
        ours, base = ms("slow-wrapped", q), ms("slow-bare", q)
        rows.append(
            {
                "metric": f"p{q} latency",
                "value": round(ours, 3),
                "unit": "ms",
                "baseline": round(base, 3),
                "baseline_label": "not recording, ms",
                "ratio": round(ours / base, 3),
                "ratio_label": "recording / not",
                "goal": "<= 1.05",
                "ok": ours / base <= 1.05,
            }
        )
    return {
        "name": "B8 latency",
        "description": "a JSON route through uvicorn, its record saved to a store that takes "
        "200 ms per save, vs the same app unwrapped",
        "rows": rows,
        "params": {
            "requests_per_round": requests,
            "rounds": rounds,
            "records_unsaved_at_end_of_rounds": backlog,
        },
        "notes": [
            "one client process taking turns between the two servers (the order swapped "
            "every round), sequential requests, one keep-alive connection each",
            "the real store and recorder: the backlog of 200 ms saves grows during the run "
            "(records still queued or spooled when each round ended are listed in the params)",
        ],
    }


# -- B9 ------------------------------------------------------------------------------------------


def _upload_body(size: int) -> tuple[Iterator[bytes], str]:
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


def _uploads(mode: str, count: int, size: int) -> dict[str, float]:
    import httpx

    with (
        fresh_dir(f"memory-{mode}") as root,
        _server(mode, root) as url,
        httpx.Client(base_url=url, timeout=600) as client,
    ):

        def send(n: int) -> None:
            chunks, content_type = _upload_body(n)
            response = client.post(UPLOAD, content=chunks, headers={"Content-Type": content_type})
            response.raise_for_status()

        send(64 * KiB)  # warm-up: imports, the recorder, the catalog belong in the baseline
        baseline = client.get("/_rss").json()["rss"]
        started = time.perf_counter()
        for _ in range(count):
            send(size)
        peak = client.get("/_rss").json()["peak"]  # after the recordings finished
        seconds = time.perf_counter() - started
        held = client.get("/_state").json()
    if mode == "upload-wrapped":  # the figure means nothing unless every upload was stored
        stored = sorted(sizes for sizes in held["inputs"])
        if stored != sorted([[64 * KiB]] + [[size]] * count):
            raise RuntimeError(f"the store holds inputs of sizes {stored}, not the uploads")
    return {"growth": (peak - baseline) / MiB, "seconds": seconds}


def bench_memory(uploads: int, size: int) -> dict[str, Any]:
    """B9: peak RSS growth of the server over ``uploads`` multipart uploads of ``size`` bytes."""
    bare = _uploads("upload-bare", uploads, size)
    ours = _uploads("upload-wrapped", uploads, size)
    return {
        "name": "B9 memory",
        "description": f"{uploads} multipart uploads of {size / 1e6:.0f} MB through uvicorn, "
        "each recorded with its input image into a real store",
        "rows": [
            {
                "metric": "peak RSS growth, recording",
                "value": round(ours["growth"], 1),
                "unit": "MiB",
                "baseline": round(bare["growth"], 1),
                "baseline_label": "not recording, MiB",
                "goal": "<= 64",
                "ok": ours["growth"] <= 64,
                "seconds": round(ours["seconds"], 1),
                "baseline_seconds": round(bare["seconds"], 1),
            }
        ],
        "params": {"uploads": uploads, "bytes_each": size},
        "notes": [
            "growth: the server's ru_maxrss after the last record was saved, minus its RSS "
            "after one small warm-up upload",
            "the app reads the form as Starlette does (files spooled past 1 MB)",
        ],
    }


# -- entry points --------------------------------------------------------------------------------


def run(quick: bool = False, *, parts: Collection[str] | None = None) -> dict[str, Any]:
    """Run B7, B8 and B9 (or the named ``parts``); ``quick`` shrinks every size."""
    sizes = QUICK if quick else FULL
    wanted = {p.strip().upper() for p in parts} if parts else {"B7", "B8", "B9"}
    jobs: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
        (
            "B7",
            "B7 overhead",
            lambda: bench_overhead(sizes.inprocess_requests, sizes.uvicorn_requests, sizes.rounds),
        ),
        ("B8", "B8 latency", lambda: bench_latency(sizes.latency_requests, sizes.rounds)),
        ("B9", "B9 memory", lambda: bench_memory(sizes.uploads, sizes.upload_bytes)),
    ]
    sections = [section(name, job) for key, name, job in jobs if key in wanted]
    return {"name": "asgi", "benchmarks": sections, "params": {"quick": quick}}


def main(argv: Sequence[str]) -> int:
    if argv[:1] == ["serve"]:
        _serve(argv[1], int(argv[2]), argv[3] if len(argv) > 3 else "")
        return 0
    if argv[:1] == ["latency"]:
        ports = [int(port) for port in argv[1].split(",")]
        print(json.dumps(asyncio.run(_latency_main(ports, argv[2], int(argv[3])))))
        return 0
    if argv[:1] == ["rps"]:
        targets = []
        for target in argv[1].split(","):
            port, _, path = target.partition("/")
            targets.append((int(port), "/" + path))
        runs = asyncio.run(_rps_main(targets, int(argv[2]), int(argv[3]), int(argv[4])))
        print(json.dumps(runs))
        return 0
    quick = "--quick" in argv
    parts = argv[argv.index("--only") + 1].split(",") if "--only" in argv else None
    print(json.dumps(run(quick, parts=parts), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
