"""A recorded route answering a long server-sent event stream, for memory tests in a subprocess.

    GENSTORE_TEST_ROOT=/tmp/store python -m uvicorn --factory asgi.stream_service:app_from_env \\
        --host 127.0.0.1 --port 8765

``POST /api/stream`` ``{"prompt", "mb"}``: about ``mb`` MiB of OpenAI-style
``image_generation.partial_image`` events (each a 1 MiB base64 preview), then one
``image_generation.completed`` event carrying ``final_png()``. The previews are one string reused,
so the app itself allocates nothing per event: what the server's memory grows by is the
middleware's doing. ``GENSTORE_TEST_BARE=1`` serves the same app unwrapped.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import genstore
from genstore_asgi import RecordingMiddleware
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

EVENT_PAYLOAD = 1024 * 1024


def final_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def _preview_b64() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 10, 10)).save(buf, "PNG")
    head = base64.b64encode(buf.getvalue()).decode()
    return head + "A" * (EVENT_PAYLOAD - len(head))  # a PNG-looking string of 1 MiB


_PREVIEW = _preview_b64()


def sse_events(megabytes: int) -> Iterator[bytes]:
    """The stream ``/api/stream`` answers."""
    common = '"size": "1024x1024", "output_format": "png"'
    partial = (
        'event: image_generation.partial_image\ndata: {"type": '
        f'"image_generation.partial_image", {common}, "b64_json": "{_PREVIEW}"}}\n\n'
    ).encode()
    for _ in range(megabytes):
        yield partial
    final = {
        "type": "image_generation.completed",
        "b64_json": base64.b64encode(final_png()).decode(),
    }
    yield f"event: image_generation.completed\ndata: {json.dumps(final)}\n\n".encode()


def create_app(store: genstore.Store | None) -> ASGIApp:
    async def stream(request: Request) -> StreamingResponse:
        body: dict[str, Any] = await request.json()
        return StreamingResponse(sse_events(int(body["mb"])), media_type="text/event-stream")

    app = Starlette(routes=[Route("/api/stream", stream, methods=["POST"])])
    if store is None:
        return app
    return RecordingMiddleware(app, store=store, routes={"/api/stream": "text_to_image"})


def app_from_env() -> ASGIApp:
    """The app on ``$GENSTORE_TEST_ROOT`` (uvicorn factory); unwrapped if ``$GENSTORE_TEST_BARE``."""
    if os.environ.get("GENSTORE_TEST_BARE"):
        return create_app(None)
    return create_app(genstore.open_store(Path(os.environ["GENSTORE_TEST_ROOT"])))
