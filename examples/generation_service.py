"""The integration guide's 10 generation routes, every one recorded by one ``add_middleware`` line.

    python examples/generation_service.py            # serve on http://127.0.0.1:8000
    python examples/generation_service.py --demo     # start, call all 10 routes, print the history

The generator is a local stand-in: Pillow draws the prompt into a PNG, and "videos" are small
animated GIFs. Results are returned as URLs served by this app (``/files/<name>``), the way a
provider returns expiring URLs, so genstore downloads each result into the store. Edit routes take
multipart uploads (up to 5 images), as the guide's ``upload.array('images', 5)`` does. None of the
routes contains a line of recording code: ``RecordingMiddleware`` does it all.

The store is ``$GENSTORE_URL`` (else ``./genstore-data``); ``--demo`` uses a temporary one unless
``--store`` names one.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any

import genstore
import httpx
import uvicorn
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse
from genstore_asgi import RecordingMiddleware
from PIL import Image, ImageDraw, ImageOps
from pydantic import BaseModel
from starlette.types import Scope

ROUTES = {
    "/api/generate/text-to-image": "text_to_image",
    "/api/generate/img-to-img": "img_to_img",
    "/api/edit/image": "image_edit_single",
    "/api/edit/*": "image_edit_multiple",  # pose and style transfer: a subject and a reference
    "/api/video/text-to-video": "text_to_video",
    "/api/video/img-to-video": "image_to_video_single",
    "/api/video-image/animate-image": "image_to_video_single",
    "/api/video-image/transition": "image_to_video_transition",
    "/api/workflow/execute": "edit_then_video",
}
"""The guide's routes and operation types (``/api/edit/*`` covers /pose and /style)."""

MAX_IMAGES = 5
_SIZES = {"1:1": (512, 512), "16:9": (640, 360), "9:16": (360, 640), "4:3": (512, 384)}


def user_of(scope: Scope) -> str | None:
    """The user a request is for: the ``X-User-Id`` header (a real service reads its auth)."""
    for name, value in scope["headers"]:
        if name == b"x-user-id":
            user: str = value.decode("latin-1")
            return user
    return None


# -- the stand-in generator ---------------------------------------------------------------------


class Generator:
    """Draws results into ``files_dir`` and names them; stands in for a real provider."""

    def __init__(self, files_dir: Path) -> None:
        self.files_dir = files_dir
        files_dir.mkdir(parents=True, exist_ok=True)

    def _save(self, frames: list[Image.Image], suffix: str) -> str:
        name = f"{uuid.uuid4().hex}.{suffix}"
        path = self.files_dir / name
        if suffix == "gif":
            frames[0].save(path, save_all=True, append_images=frames[1:], duration=120, loop=0)
        else:
            frames[0].save(path, "PNG")
        return name

    def image(self, prompt: str, size: tuple[int, int], base: Image.Image | None = None) -> str:
        return self._save([_draw(prompt, size, base)], "png")

    def video(self, prompt: str, sources: list[Image.Image], frames: int = 6) -> str:
        size = (320, 180)
        if len(sources) >= 2:  # a transition: cross-fade from the first image to the second
            a, b = (ImageOps.fit(s.convert("RGB"), size) for s in sources[:2])
            shots = [Image.blend(a, b, i / (frames - 1)) for i in range(frames)]
        else:
            base = sources[0] if sources else None
            shots = [
                _draw(f"{prompt} [{i + 1}/{frames}]", size, base, shift=i * 8)
                for i in range(frames)
            ]
        return self._save(shots, "gif")


def _draw(
    prompt: str, size: tuple[int, int], base: Image.Image | None = None, shift: int = 0
) -> Image.Image:
    if base is not None:
        canvas = ImageOps.fit(base.convert("RGB"), size)
    else:
        canvas = Image.new("RGB", size, (40 + len(prompt) * 7 % 200, 90, 160))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((0, size[1] - 70, size[0], size[1]), fill=(0, 0, 0))
    text = "\n".join(textwrap.wrap(prompt, 40)[:3]) or "(no prompt)"
    draw.multiline_text((10 + shift, size[1] - 64), text, fill=(255, 255, 255))
    return canvas


async def _images(files: list[UploadFile], *, at_least: int = 1) -> list[Image.Image]:
    if not at_least <= len(files) <= MAX_IMAGES:
        raise HTTPException(400, f"send {at_least} to {MAX_IMAGES} images")
    images: list[Image.Image] = []
    for upload in files:
        try:
            image = Image.open(io.BytesIO(await upload.read()))
            image.load()
        except OSError as exc:
            raise HTTPException(400, f"{upload.filename}: not an image") from exc
        images.append(image)
    return images


# -- the app ------------------------------------------------------------------------------------


class TextRequest(BaseModel):
    prompt: str
    aspectRatio: str = "1:1"
    guidance: float = 3.5
    duration: int = 5


def create_app(store: genstore.Store, files_dir: Path | None = None) -> FastAPI:
    """The service: the 10 routes, ``/files/<name>`` for results and ``/api/history``."""
    files = Path(files_dir or tempfile.mkdtemp(prefix="generation-files-"))
    gen = Generator(files)
    app = FastAPI(title="generation service (genstore example)")
    app.add_middleware(RecordingMiddleware, store=store, routes=ROUTES, user_id=user_of)

    def answer(request: Request, name: str, **extra: Any) -> dict[str, Any]:
        url = str(request.url_for("result_file", name=name))
        return {"success": True, "resultUrl": url, **extra}

    @app.post("/api/generate/text-to-image")
    def text_to_image(body: TextRequest, request: Request) -> dict[str, Any]:
        size = _SIZES.get(body.aspectRatio, _SIZES["1:1"])
        return answer(request, gen.image(body.prompt, size))

    @app.post("/api/generate/img-to-img")
    async def img_to_img(
        request: Request,
        prompt: Annotated[str, Form()],
        image: Annotated[UploadFile, File()],
        strength: Annotated[float, Form()] = 0.6,
    ) -> dict[str, Any]:
        (source,) = await _images([image])
        return answer(request, gen.image(f"{prompt} (strength {strength})", (512, 512), source))

    async def edit(request: Request, prompt: str, images: list[UploadFile], kind: str) -> Any:
        sources = await _images(images, at_least=1 if kind == "edit" else 2)
        return answer(request, gen.image(f"{kind}: {prompt}", (512, 512), sources[-1]))

    @app.post("/api/edit/image")
    async def edit_image(
        request: Request,
        prompt: Annotated[str, Form()],
        images: Annotated[list[UploadFile], File()],
    ) -> dict[str, Any]:
        result: dict[str, Any] = await edit(request, prompt, images, "edit")
        return result

    @app.post("/api/edit/pose")
    async def edit_pose(
        request: Request,
        prompt: Annotated[str, Form()],
        images: Annotated[list[UploadFile], File()],
    ) -> dict[str, Any]:
        result: dict[str, Any] = await edit(request, prompt, images, "pose")
        return result

    @app.post("/api/edit/style")
    async def edit_style(
        request: Request,
        prompt: Annotated[str, Form()],
        images: Annotated[list[UploadFile], File()],
    ) -> dict[str, Any]:
        result: dict[str, Any] = await edit(request, prompt, images, "style")
        return result

    @app.post("/api/video/text-to-video")
    def text_to_video(body: TextRequest, request: Request) -> dict[str, Any]:
        return answer(request, gen.video(body.prompt, []), duration=body.duration)

    @app.post("/api/video/img-to-video")
    async def img_to_video(
        request: Request, prompt: Annotated[str, Form()], image: Annotated[UploadFile, File()]
    ) -> dict[str, Any]:
        return answer(request, gen.video(prompt, await _images([image])))

    @app.post("/api/video-image/animate-image")
    async def animate_image(
        request: Request, prompt: Annotated[str, Form()], image: Annotated[UploadFile, File()]
    ) -> dict[str, Any]:
        return answer(request, gen.video(prompt, await _images([image])))

    @app.post("/api/video-image/transition")
    async def transition(
        request: Request,
        prompt: Annotated[str, Form()],
        images: Annotated[list[UploadFile], File()],
    ) -> dict[str, Any]:
        return answer(request, gen.video(prompt, await _images(images, at_least=2)))

    @app.post("/api/workflow/execute")
    async def workflow(
        request: Request,
        prompt: Annotated[str, Form()],
        images: Annotated[list[UploadFile], File()],
        steps: Annotated[str, Form()] = '["edit", "video"]',
    ) -> dict[str, Any]:
        sources = await _images(images)
        edited = _draw(f"edit: {prompt}", (320, 180), sources[0])
        analysis = {"detected": "edit_then_video", "steps": json.loads(steps)}
        return answer(request, gen.video(prompt, [edited]), workflowAnalysis=analysis)

    @app.get("/files/{name}", name="result_file")
    def result_file(name: str) -> FileResponse:
        path = files / Path(name).name
        if not path.is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(path)

    @app.get("/api/history")
    def history(
        limit: int = 50, user_id: str | None = None, operation_type: str | None = None
    ) -> dict[str, Any]:
        page = store.history(user_id=user_id, operation_type=operation_type, limit=limit)
        return {
            "operations": [record.model_dump(mode="json") for record in page.items],
            "next_cursor": page.next_cursor,
        }

    return app


# -- the demo -----------------------------------------------------------------------------------


def _png(color: str, size: tuple[int, int] = (96, 96)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def demo_calls() -> list[tuple[str, dict[str, Any]]]:
    """The 10 requests the demo (and the test) make: ``(path, httpx request arguments)``."""
    cat, dog, pose, style = (_png(c) for c in ("orange", "brown", "white", "purple"))

    def upload(name: str, *blobs: bytes) -> list[tuple[str, tuple[str, bytes, str]]]:
        return [(name, (f"{name}-{i}.png", blob, "image/png")) for i, blob in enumerate(blobs)]

    return [
        ("/api/generate/text-to-image", {"json": {"prompt": "un chat", "aspectRatio": "16:9"}}),
        (
            "/api/generate/img-to-img",
            {
                "data": {"prompt": "un chat en aquarelle", "strength": "0.7"},
                "files": upload("image", cat),
            },
        ),
        (
            "/api/edit/image",
            {"data": {"prompt": "ajoute un chapeau"}, "files": upload("images", cat)},
        ),
        ("/api/edit/pose", {"data": {"prompt": "même pose"}, "files": upload("images", dog, pose)}),
        (
            "/api/edit/style",
            {"data": {"prompt": "style pop art"}, "files": upload("images", cat, style)},
        ),
        ("/api/video/text-to-video", {"json": {"prompt": "un chat qui court", "duration": 4}}),
        (
            "/api/video/img-to-video",
            {"data": {"prompt": "le chat saute"}, "files": upload("image", cat)},
        ),
        (
            "/api/video-image/animate-image",
            {"data": {"prompt": "le chien remue la queue"}, "files": upload("image", dog)},
        ),
        (
            "/api/video-image/transition",
            {"data": {"prompt": "du chat au chien"}, "files": upload("images", cat, dog)},
        ),
        (
            "/api/workflow/execute",
            {"data": {"prompt": "chapeau puis danse"}, "files": upload("images", cat)},
        ),
    ]


class BackgroundServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread (the demo downloads results from it)."""

    def __init__(self, app: FastAPI, port: int = 0) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        (sock,) = self.server.servers[0].sockets
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def wait_for_history(client: httpx.Client, count: int, timeout: float = 30.0) -> list[Any]:
    """Poll ``/api/history`` until ``count`` operations are recorded (or ``timeout`` passes)."""
    deadline = time.monotonic() + timeout
    while True:
        operations: list[Any] = client.get("/api/history", params={"limit": 100}).json()[
            "operations"
        ]
        if len(operations) >= count or time.monotonic() > deadline:
            return operations
        time.sleep(0.05)


def run_demo(store: genstore.Store) -> int:
    """Start the service on a free loopback port, call the 10 routes, print what was recorded."""
    from rich.console import Console
    from rich.table import Table

    calls = demo_calls()
    with (
        BackgroundServer(create_app(store)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as client,
    ):
        for path, kwargs in calls:
            response = client.post(path, headers={"X-User-Id": "demo_user"}, **kwargs)
            response.raise_for_status()
        operations = wait_for_history(client, len(calls))
    table = Table(title=f"genstore history ({len(operations)} operations, newest first)")
    for column in ("route", "operation_type", "status", "prompt", "inputs", "result", "ms"):
        table.add_column(column)
    for op in operations:
        result = op["results"][0] if op["results"] else None
        table.add_row(
            op["request"]["route"],
            op["operation_type"],
            op["status"],
            op["prompt"] or "",
            str(len(op["inputs"])),
            f"{result['content_type']} {result['size']} B" if result else op["result_error"] or "-",
            f"{op['duration_ms']:.1f}",
        )
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(table)
    recorded = {op["request"]["route"] for op in operations if op["results"]}
    ok = recorded == {path for path, _ in calls}
    print(f"{len(recorded)}/{len(calls)} routes recorded with their result", file=sys.stderr)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--demo", action="store_true", help="call the 10 routes and print history")
    parser.add_argument("--store", help="store URL (default $GENSTORE_URL or ./genstore-data)")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    if args.demo:
        with (
            tempfile.TemporaryDirectory(prefix="genstore-demo-") as tmp,
            genstore.open_store(args.store or tmp) as store,
        ):
            return run_demo(store)
    with genstore.open_store(args.store) as store:
        uvicorn.run(create_app(store), host="127.0.0.1", port=args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
