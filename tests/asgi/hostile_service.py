"""A recorded service with every kind of answer the journal must carry through a SIGKILL.

The flaky store of ``flaky_service`` (``DOWN``/``SLOW`` flag files) behind one route per kind of
exchange; ``max_body_in_memory`` is ``$GENSTORE_TEST_MEMORY`` bytes (default 1024) so that any
body past it is spooled by the tee to a file the journal references by path:

- ``POST /gen`` ``{"prompt"}``: a small JSON answer;
- ``POST /big`` ``{"prompt", "pad"}``: the same, the request body padded past the memory limit;
- ``POST /png`` ``{"prompt"}``: an ``image/png`` answer (``png_for(prompt)``, past the limit);
- ``POST /fail`` ``{"prompt"}``: the app raises (a 500 answer, journaled before the exception);
- ``POST /sse`` ``{"prompt"}``: server-sent events whose last one carries ``png_for(prompt)``;
- ``POST /job`` ``{"prompt"}``: a ``202`` with a job id (``job-<prompt>``), recorded pending.

    GENSTORE_TEST_ROOT=/tmp/x GENSTORE_TEST_FLAGS=/tmp/flags \
        python -m uvicorn --factory asgi.hostile_service:app_from_env --host 127.0.0.1 --port 8765
"""

from __future__ import annotations

import base64
import io
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import genstore
from genstore_asgi import JobStart, RecordingMiddleware
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from asgi.flaky_service import Switch, open_flaky_store

KINDS = ("gen", "big", "png", "fail", "sse", "job")


def png_for(prompt: str) -> bytes:
    """A PNG of 64x64 noise seeded by ``prompt`` (about 12 KiB: past the memory limit)."""
    seed = zlib.crc32(prompt.encode())
    pixels = bytes((seed * 2654435761 + i * 40503) >> 7 & 0xFF for i in range(64 * 64 * 3))
    buf = io.BytesIO()
    Image.frombytes("RGB", (64, 64), pixels).save(buf, "PNG")
    return buf.getvalue()


def create_app(store: genstore.Store, max_body_in_memory: int) -> ASGIApp:
    async def gen(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"success": True, "prompt": body["prompt"]})

    async def png(request: Request) -> Response:
        body = await request.json()
        return Response(png_for(body["prompt"]), media_type="image/png")

    async def fail(request: Request) -> Response:
        body = await request.json()
        raise RuntimeError(f"boom {body['prompt']}")

    async def sse(request: Request) -> StreamingResponse:
        prompt = (await request.json())["prompt"]

        def events() -> Iterator[bytes]:
            yield b'data: {"type": "progress", "percent": 50}\n\n'
            final = {"type": "completed", "b64_json": base64.b64encode(png_for(prompt)).decode()}
            yield f"data: {json.dumps(final)}\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def job(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"id": f"job-{body['prompt']}", "status": "queued"}, status_code=202)

    async def ping(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    async def status(request: Request) -> JSONResponse:
        counters = store.recorder.counters
        return JSONResponse({"recorded": counters.recorded, "spooled": counters.spooled})

    app = Starlette(
        routes=[
            Route("/gen", gen, methods=["POST"]),
            Route("/big", gen, methods=["POST"]),
            Route("/png", png, methods=["POST"]),
            Route("/fail", fail, methods=["POST"]),
            Route("/sse", sse, methods=["POST"]),
            Route("/job", job, methods=["POST"]),
            Route("/_ping", ping),
            Route("/_status", status),
        ]
    )
    routes = {f"/{kind}": "text_to_image" for kind in KINDS if kind != "job"}
    return RecordingMiddleware(
        app,
        store=store,
        routes={**routes, "/job": JobStart("text_to_video")},
        max_body_in_memory=max_body_in_memory,
    )


def app_from_env() -> ASGIApp:
    """The app on ``$GENSTORE_TEST_ROOT``, flags in ``$GENSTORE_TEST_FLAGS`` (uvicorn factory)."""
    root = Path(os.environ["GENSTORE_TEST_ROOT"])
    store = open_flaky_store(root, Switch(Path(os.environ["GENSTORE_TEST_FLAGS"])))
    return create_app(store, int(os.environ.get("GENSTORE_TEST_MEMORY", "1024")))
