"""FAKE generation providers (OpenAI images, Replicate, fal) on 127.0.0.1, for the real clients.

Each answers only the calls genstore's tests make, in the shapes of the provider's public API
reference; it is not the provider. Every output it makes is a distinct small file, kept in
``served`` (one list per generation, in the order the answer lists them) and downloadable from
``/files/<name>`` on the same server, so a test can compare what was extracted with what was served.

OpenAI images (``OpenAI(base_url=fake.url + "/v1")``), ``POST /v1/images/generations``:
``{"created", "data": [...], "output_format", "size", "quality", "background", "usage"}``; each
item is ``{"b64_json"}`` by default (GPT image models) or ``{"url"}`` with ``response_format="url"``
(retired DALL·E models, and many OpenAI-compatible servers). ``stream=true`` answers
``text/event-stream``: per image, ``partial_images`` ``image_generation.partial_image`` events (each
a different preview, never in ``served``) then one ``image_generation.completed``.

Replicate (``replicate.Client(base_url=fake.url)``), ``POST /v1/models/{owner}/{name}/predictions``
``{"input"}``: with ``Prefer: wait`` the prediction comes back ``processing`` with its ``output``
already set, as ``data:`` URIs (the sync API's documented behaviour, which ``run()`` takes as done);
without it, ``starting``, and ``GET /v1/predictions/{id}`` answers ``processing`` once, then
``succeeded`` with HTTP URLs. ``input.num_outputs`` outputs (default 1); ``input.fail`` makes it
``failed`` with an ``error``. Prediction objects carry ``id, model, version, input, logs, output,
data_removed, error, status, created_at, started_at, completed_at, urls, metrics``.

fal (``fal_client.SyncClient`` with its run and queue URL prefixes pointed here): ``POST /{app}``
answers the result (``run``); ``POST /queue/{app}`` enqueues and answers ``{"request_id",
"response_url", "status_url", "cancel_url", "queue_position"}``; the status URL answers
``IN_QUEUE`` once, then ``COMPLETED`` (with ``logs``, ``metrics``); the response URL answers the
result. Results: an app whose id names ``video`` gives ``{"video": File}``, ``audio`` or
``speech`` gives ``{"audio": File}``, any other ``{"images": [File] * num_images, "seed",
"has_nsfw_concepts", "prompt", "timings"}``, where ``File`` is ``{"url", "content_type",
"file_name", "file_size"}`` (plus ``width``/``height`` for images).

Auth is checked for presence only (``Authorization: Bearer`` for OpenAI and Replicate, ``Key`` for
fal): a missing header gets 401. Left out: everything else these APIs do.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

__all__ = ["FakeProviders", "running_fake_providers"]

_MP4_HEAD = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
_WAV_HEAD = b"RIFF\x24\x00\x00\x00WAVEfmt "


class FakeProviders:
    """The fake server; ``url`` is its ``http://127.0.0.1:<port>`` base."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.served: list[list[bytes]] = []
        self.previews: list[bytes] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.predictions: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}
        self.fal_jobs: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- outputs ----------------------------------------------------------------------------

    def make_file(self, kind: str, preview: bool = False) -> tuple[str, bytes, str]:
        """A new distinct file of ``kind`` (image, video, audio): its name, bytes and type."""
        n = next(self._counter)
        if kind == "video":
            data, content_type, ext = _MP4_HEAD + n.to_bytes(8, "big") * 4, "video/mp4", "mp4"
        elif kind == "audio":
            data, content_type, ext = _WAV_HEAD + n.to_bytes(8, "big") * 4, "audio/wav", "wav"
        else:
            data, content_type, ext = _png(n, 4 if preview else 8), "image/png", "png"
        name = f"{'preview' if preview else 'out'}-{n}.{ext}"
        with self._lock:
            self.files[name] = (data, content_type)
        return name, data, content_type

    def file_url(self, name: str) -> str:
        return f"{self.url}/files/{name}"

    def generation(self, kind: str, count: int) -> list[tuple[str, bytes, str]]:
        """``count`` new files, recorded in ``served`` as one generation."""
        made = [self.make_file(kind) for _ in range(count)]
        with self._lock:
            self.served.append([data for _, data, _ in made])
        return made


def _png(n: int, side: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (n * 37 % 256, n * 91 % 256, n * 53 % 256)).save(buf, "PNG")
    return buf.getvalue()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _handler(fake: FakeProviders) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _route(self, method: str) -> None:
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            fake.requests.append((method, path, headers))
            length = int(headers.get("content-length") or 0)
            body: Any = json.loads(self.rfile.read(length) or b"{}") if length else {}
            if path.startswith("/files/"):
                self._file(path.removeprefix("/files/"))
            elif not headers.get("authorization"):
                self._json(401, {"detail": "Unauthenticated"})
            elif path == "/v1/images/generations" and method == "POST":
                self._openai_images(body)
            elif path.startswith("/v1/models/") and path.endswith("/predictions"):
                self._replicate_create(path, body, headers.get("prefer", ""))
            elif path.startswith("/v1/predictions/") and method == "GET":
                self._replicate_get(path.removeprefix("/v1/predictions/"))
            elif path.startswith("/queue/"):
                self._fal_queue(method, path.removeprefix("/queue/"), body)
            elif method == "POST":
                self._json(200, _fal_result(fake, path.strip("/"), body))
            else:
                self._json(404, {"detail": "Not Found"})

        # -- plumbing ---------------------------------------------------------------------

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: Any) -> None:
            self._send(status, json.dumps(value).encode(), "application/json")

        def _file(self, name: str) -> None:
            found = fake.files.get(name)
            if found is None:
                self._send(404, b"not found", "text/plain")
            else:
                self._send(200, *found)

        # -- OpenAI -----------------------------------------------------------------------

        def _openai_images(self, body: dict[str, Any]) -> None:
            n = int(body.get("n") or 1)
            made = fake.generation("image", n)
            if body.get("stream"):
                self._openai_stream(made, int(body.get("partial_images") or 0))
                return
            as_url = body.get("response_format") == "url"
            data = [
                {"url": fake.file_url(name)} if as_url else {"b64_json": _b64(raw)}
                for name, raw, _ in made
            ]
            answer = {"created": int(time.time()), "data": data, "size": "1024x1024"}
            if not as_url:
                answer.update(output_format="png", quality="low", background="opaque", usage=_USAGE)
            self._json(200, answer)

        def _openai_stream(self, made: list[tuple[str, bytes, str]], partials: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            common = {"created_at": int(time.time()), "size": "1024x1024", "quality": "low"}
            common |= {"background": "opaque", "output_format": "png"}
            for _, raw, _ in made:
                for index in range(partials):
                    _, preview, _ = fake.make_file("image", preview=True)
                    fake.previews.append(preview)
                    event = {"type": "image_generation.partial_image", "b64_json": _b64(preview)}
                    self._event(event | common | {"partial_image_index": index})
                event = {"type": "image_generation.completed", "b64_json": _b64(raw)}
                self._event(event | common | {"usage": _USAGE})
            self.close_connection = True

        def _event(self, event: dict[str, Any]) -> None:
            self.wfile.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()

        # -- Replicate --------------------------------------------------------------------

        def _replicate_create(self, path: str, body: dict[str, Any], prefer: str) -> None:
            model = path.removeprefix("/v1/models/").removesuffix("/predictions")
            inputs = body.get("input") or {}
            pid = uuid.uuid4().hex[:26]
            prediction: dict[str, Any] = {
                "id": pid,
                "model": model,
                "version": "hidden",
                "input": inputs,
                "logs": "",
                "output": None,
                "data_removed": False,
                "error": None,
                "status": "starting",
                "created_at": "2026-11-29T12:00:00.000Z",
                "started_at": None,
                "completed_at": None,
                "urls": {
                    "get": f"{fake.url}/v1/predictions/{pid}",
                    "cancel": f"{fake.url}/v1/predictions/{pid}/cancel",
                    "web": f"{fake.url}/p/{pid}",
                },
            }
            made = (
                []
                if inputs.get("fail")
                else fake.generation("image", int(inputs.get("num_outputs") or 1))
            )
            prediction["_made"] = made
            with fake._lock:
                fake.predictions[pid] = prediction
            if prefer.startswith("wait"):
                _finish(fake, prediction, data_uris=True)
                prediction["status"] = "processing" if not inputs.get("fail") else "failed"
            self._json(201, _public(prediction))

        def _replicate_get(self, pid: str) -> None:
            prediction = fake.predictions.get(pid)
            if prediction is None:
                self._json(404, {"detail": "Not found."})
                return
            with fake._lock:
                fake.polls[pid] = fake.polls.get(pid, 0) + 1
                if fake.polls[pid] == 1 and prediction["status"] == "starting":
                    prediction["status"] = "processing"
                elif prediction["status"] in ("starting", "processing"):
                    _finish(fake, prediction, data_uris=False)
            self._json(200, _public(prediction))

        # -- fal --------------------------------------------------------------------------

        def _fal_queue(self, method: str, rest: str, body: dict[str, Any]) -> None:
            if method == "POST":
                rid = str(uuid.uuid4())
                owner, alias = rest.strip("/").split("/")[:2]
                base = f"{fake.url}/queue/{owner}/{alias}/requests/{rid}"
                with fake._lock:
                    fake.fal_jobs[rid] = {"app": rest.strip("/"), "input": body, "polls": 0}
                self._json(
                    200,
                    {
                        "request_id": rid,
                        "response_url": base,
                        "status_url": base + "/status",
                        "cancel_url": base + "/cancel",
                        "queue_position": 0,
                    },
                )
                return
            parts = rest.strip("/").split("/")
            job = fake.fal_jobs.get(parts[3]) if len(parts) >= 4 else None
            if job is None:
                self._json(404, {"detail": "Request not found"})
            elif parts[-1] == "status":
                job["polls"] += 1
                if job["polls"] == 1:
                    self._json(
                        200,
                        {
                            "status": "IN_QUEUE",
                            "queue_position": 0,
                            "response_url": f"{fake.url}/queue/{'/'.join(parts[:4])}",
                        },
                    )
                else:
                    self._json(
                        200,
                        {
                            "status": "COMPLETED",
                            "logs": None,
                            "metrics": {"inference_time": 0.01},
                            "response_url": f"{fake.url}/queue/{'/'.join(parts[:4])}",
                        },
                    )
            else:
                if "result" not in job:
                    job["result"] = _fal_result(fake, job["app"], job["input"])
                self._json(200, job["result"])

    return Handler


_USAGE = {
    "input_tokens": 10,
    "input_tokens_details": {"image_tokens": 0, "text_tokens": 10},
    "output_tokens": 272,
    "total_tokens": 282,
}


def _finish(fake: FakeProviders, prediction: dict[str, Any], *, data_uris: bool) -> None:
    made: list[tuple[str, bytes, str]] = prediction["_made"]
    if prediction["input"].get("fail"):
        prediction |= {"status": "failed", "error": "CUDA out of memory", "output": None}
        return
    if data_uris:
        output = [f"data:{ctype};base64,{_b64(raw)}" for _, raw, ctype in made]
    else:
        output = [fake.file_url(name) for name, _, _ in made]
    prediction |= {
        "status": "succeeded",
        "output": output,
        "completed_at": "2026-11-29T12:00:01.000Z",
        "metrics": {"predict_time": 0.01},
    }


def _public(prediction: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prediction.items() if not k.startswith("_")}


def _fal_file(fake: FakeProviders, made: tuple[str, bytes, str]) -> dict[str, Any]:
    name, raw, ctype = made
    return {
        "url": fake.file_url(name),
        "content_type": ctype,
        "file_name": name,
        "file_size": len(raw),
    }


def _fal_result(fake: FakeProviders, app: str, body: dict[str, Any]) -> dict[str, Any]:
    if "video" in app:
        return {"video": _fal_file(fake, fake.generation("video", 1)[0])}
    if "audio" in app or "speech" in app:
        return {"audio": _fal_file(fake, fake.generation("audio", 1)[0]), "duration_ms": 1200}
    n = int(body.get("num_images") or 1)
    images = [
        _fal_file(fake, made) | {"width": 8, "height": 8} for made in fake.generation("image", n)
    ]
    return {
        "images": images,
        "timings": {"inference": 0.01},
        "seed": 42,
        "has_nsfw_concepts": [False] * n,
        "prompt": body.get("prompt", ""),
    }


@contextmanager
def running_fake_providers() -> Iterator[FakeProviders]:
    """A started fake, closed afterwards."""
    fake = FakeProviders()
    try:
        yield fake
    finally:
        fake.close()
