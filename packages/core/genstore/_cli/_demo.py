"""``genstore demo``: record a few operations and user images, offline, then show them.

Results are fetched from a tiny HTTP server on 127.0.0.1 (random port) that serves Pillow-drawn
PNGs, so the demo goes through the same download path as a real provider's ``result_url``.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import typer
from PIL import Image, ImageDraw

from .._records import OperationType
from .._store import Store
from ._app import CatalogOption, UrlOption, app, get_state
from ._render import history_table, images_table

__all__ = ["DEMO_USER", "draw_png", "record_demo", "serve_pngs"]

DEMO_USER = "demo_user"


def draw_png(text: str, colour: tuple[int, int, int], size: tuple[int, int] = (320, 200)) -> bytes:
    """A small PNG: a coloured card with a few shapes and ``text`` written on it."""
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    width, height = size
    light = tuple(min(255, c + 90) for c in colour)
    draw.ellipse((width // 2, height // 5, width - 20, height - 20), fill=light)
    draw.rectangle((16, height - 60, width // 2, height - 16), outline=(255, 255, 255), width=3)
    draw.text((16, 16), text, fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


class _Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the demo's output is the tables."""


@contextmanager
def serve_pngs(files: dict[str, bytes]) -> Iterator[str]:
    """Serve ``{path: png}`` on 127.0.0.1 at a free port; yields the base URL (no trailing ``/``)."""
    handler = type("DemoHandler", (_Handler,), {"files": dict(files)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="genstore-demo-http", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def record_demo(store: Store) -> tuple[list[str], list[str]]:
    """Record the demo's operations and user images; return their ids."""
    results = {
        "/results/cat.png": draw_png("un chat dans l'espace", (40, 60, 140)),
        "/results/edit.png": draw_png("le même chat, à l'aquarelle", (140, 70, 40)),
    }
    sketch = draw_png("croquis", (90, 90, 90), (160, 100))
    photo = draw_png("photo", (30, 110, 60), (160, 100))
    operations: list[str] = []
    with serve_pngs(results) as base:
        saved = store.save_complete_operation(
            operation_type=OperationType.TEXT_TO_IMAGE,
            prompt="un chat dans l'espace, style photo",
            parameters={"aspectRatio": "16:9", "model": "demo"},
            result_url=f"{base}/results/cat.png",
            user_id=DEMO_USER,
            duration_ms=1840.0,
        )
        operations.append(saved.operation_id)
        saved = store.save_complete_operation(
            operation_type=OperationType.IMAGE_EDIT_SINGLE,
            prompt="le même chat, à l'aquarelle",
            parameters={"strength": 0.6},
            input_images=[sketch, photo],
            result_url=f"{base}/results/edit.png",
            user_id=DEMO_USER,
            duration_ms=2630.0,
        )
        operations.append(saved.operation_id)
    saved = store.save_complete_operation(
        operation_type=OperationType.TEXT_TO_VIDEO,
        prompt="un chat qui danse",
        parameters={"duration": 5},
        error="provider error: 503 Service Unavailable (the demo's failed generation)",
        user_id=DEMO_USER,
        duration_ms=30000.0,
    )
    operations.append(saved.operation_id)
    images = []
    for n, (prompt, colour) in enumerate(
        [
            ("un phare sous la pluie", (20, 40, 80)),
            ("un renard roux", (170, 80, 20)),
            ("une forêt de pins", (20, 90, 40)),
        ],
        start=1,
    ):
        image = store.images.create(
            user_id=DEMO_USER,
            prompt=prompt,
            image_data=draw_png(prompt, colour, (256, 256)),
            metadata={"generated_by": "genstore demo", "steps": 20 + n, "model": "pillow"},
        )
        images.append(image.image_id)
    return operations, images


@app.command()
def demo(ctx: typer.Context, url: UrlOption = None, catalog: CatalogOption = None) -> None:
    """Record a few operations and user images (offline), then show the history and images."""
    state = get_state(ctx, url, catalog)
    store = state.store()
    operations, images = record_demo(store)
    state.out.print(
        f"recorded {len(operations)} operations and {len(images)} images into {store.blobs.url}",
        soft_wrap=True,
    )
    state.out.print(history_table(store.history(limit=10).items, width=state.out.width))
    state.out.print(images_table(store.images.list(user_id=DEMO_USER, limit=10).items))
