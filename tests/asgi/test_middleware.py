"""RecordingMiddleware: pass-through, body tee, what becomes the record, failures and secrets.

Most tests record into a real store (local files + SQLite, the real background recorder). Tests
about what the app receives and about memory use a spy recorder (``asgi.support.SpyRecorder``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import genstore
import httpx
import pytest
from fastapi import FastAPI
from genstore_asgi import RecordingMiddleware
from helpers import FileServer, png_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from asgi.support import (
    SpyStore,
    app_reading_everything,
    call,
    cut,
    http_scope,
    multipart,
    request_messages,
)

ROUTES = {"/api/generate/*": "text_to_image", "/api/edit/*": "image_edit_multiple"}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def only_record(store: genstore.Store) -> genstore.OperationRecord:
    items = store.history(limit=10).items
    assert len(items) == 1, items
    return items[0]


async def post(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        return await client.post(path, **kwargs)


# -- pass-through ---------------------------------------------------------------------------------


class Probe:
    """An app that remembers the callables it was given."""

    def __init__(self) -> None:
        self.calls: list[tuple[Scope, Receive, Send]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append((scope, receive, send))


@pytest.mark.parametrize(
    "scope",
    [
        {"type": "websocket", "path": "/api/generate/x", "headers": []},
        http_scope("/api/history"),
        http_scope("/api/generate/x", method="GET"),
        http_scope("/api/generated"),
    ],
    ids=["websocket", "unmatched-path", "unrecorded-method", "glob-is-one-segment"],
)
def test_unrecorded_requests_get_the_original_callables(scope: Scope, spy: SpyStore) -> None:
    probe = Probe()
    middleware = RecordingMiddleware(probe, store=spy, routes=ROUTES)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    asyncio.run(middleware(scope, receive, send))
    assert probe.calls == [(scope, receive, send)]
    assert probe.calls[0][1] is receive and probe.calls[0][2] is send
    assert middleware.flush(5)
    assert spy.recorder.submitted == []


def test_lifespan_shutdown_flushes_and_leaves_the_callers_store_open(
    store: genstore.Store,
) -> None:
    async def generate(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "echo": await request.json()})

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/generate/text", generate, methods=["POST"])]),
        store=store,
        routes=ROUTES,
    )

    async def scenario() -> list[Message]:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        outbox: list[Message] = []

        async def send(message: Message) -> None:
            outbox.append(message)

        lifespan = asyncio.create_task(
            middleware({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, send)
        )
        await inbox.put({"type": "lifespan.startup"})
        response = await post(middleware, "/api/generate/text", json={"prompt": "un chat"})
        assert response.status_code == 200
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(lifespan, 30)
        return outbox

    messages = asyncio.run(scenario())
    assert [m["type"] for m in messages] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    # Flushed by the shutdown itself (no waiting here), and the store still answers: not closed.
    assert only_record(store).prompt == "un chat"
    store.save_complete_operation(operation_type="text_to_image", prompt="after shutdown")
    assert len(store.history().items) == 2


# -- the request body reaches the app unchanged -------------------------------------------------

chunk_sizes = st.lists(st.integers(min_value=1, max_value=70_000), min_size=1, max_size=8)
memory_limits = st.sampled_from([512, 64 * 1024, 1024 * 1024])


def run_teed(
    spy: SpyStore, body: bytes, content_type: str, sizes: list[int], limit: int, spool: str
) -> list[Message]:
    middleware = RecordingMiddleware(
        app_reading_everything,
        store=spy,
        routes=ROUTES,
        max_body_in_memory=limit,
        spool_dir=spool,
    )
    sent = request_messages(cut(body, sizes))
    scope = http_scope("/api/generate/x", headers=[("content-type", content_type)])
    client = asyncio.run(call(middleware, scope, sent))
    assert client.status == 200
    received: list[Message] = scope["state"]["received"]
    # The very same message objects, in the same order: same bytes, same chunking.
    assert len(received) == len(sent)
    assert all(got is want for got, want in zip(received, sent, strict=True))
    assert b"".join(m["body"] for m in received) == body
    assert middleware.flush(10)
    assert os.listdir(spool) == []  # every spooled body was deleted or handed over
    return received


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prompt=st.text(max_size=200),
    padding=st.integers(min_value=0, max_value=400_000),
    sizes=chunk_sizes,
    limit=memory_limits,
)
def test_json_body_reaches_the_app_byte_identical_and_is_parsed(
    tmp_path_factory: pytest.TempPathFactory,
    prompt: str,
    padding: int,
    sizes: list[int],
    limit: int,
) -> None:
    spy = SpyStore()
    body = json.dumps({"prompt": prompt, "pad": "x" * padding, "n": 1}).encode()
    spool = str(tmp_path_factory.mktemp("spool"))
    run_teed(spy, body, "application/json", sizes, limit, spool)
    (record,) = spy.recorder.submitted
    assert record.kwargs["prompt"] == prompt
    assert record.kwargs["parameters"] == {"pad": "x" * padding, "n": 1}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prompt=st.text(max_size=100),
    files=st.lists(st.binary(max_size=200_000), max_size=3),
    sizes=chunk_sizes,
    limit=memory_limits,
)
def test_multipart_body_reaches_the_app_byte_identical_and_is_parsed(
    tmp_path_factory: pytest.TempPathFactory,
    prompt: str,
    files: list[bytes],
    sizes: list[int],
    limit: int,
) -> None:
    spy = SpyStore()
    body, content_type = multipart(
        [("prompt", prompt), ("strength", "0.5")],
        [("images", f"f{i}.bin", data, "application/octet-stream") for i, data in enumerate(files)],
    )
    spool = str(tmp_path_factory.mktemp("spool"))
    run_teed(spy, body, content_type, sizes, limit, spool)
    (record,) = spy.recorder.submitted
    # Multipart field values cross the wire with CRLF line ends, as browsers send them.
    assert record.kwargs["prompt"] == prompt
    assert record.kwargs["parameters"] == {"strength": "0.5"}
    assert record.inputs == [data for data in files if data]
    for data, kind in zip([d for d in files if d], record.input_kinds, strict=True):
        assert kind == ("path" if len(data) > limit else "bytes")


def test_client_disconnect_mid_body_reaches_the_app_and_is_recorded_failed(
    spy: SpyStore, tmp_path: Path
) -> None:
    sent: list[Message] = [
        {"type": "http.request", "body": b'{"prompt": "un ch', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received = scope["state"].setdefault("received", [])
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "http.disconnect":
                return  # nobody to answer

    middleware = RecordingMiddleware(app, store=spy, routes=ROUTES, spool_dir=str(tmp_path))
    scope = http_scope("/api/generate/x", headers=[("content-type", "application/json")])
    client = asyncio.run(call(middleware, scope, sent))
    assert client.sent == []
    assert all(a is b for a, b in zip(scope["state"]["received"], sent, strict=True))
    assert middleware.flush(5)
    (record,) = spy.recorder.submitted
    assert record.kwargs["error"] == "the client disconnected before the response was sent"
    assert record.kwargs["request"].status_code is None
    assert record.kwargs.get("prompt") is None  # half a JSON document is not parsed
    assert os.listdir(tmp_path) == []


# -- what the record holds ----------------------------------------------------------------------


def test_json_request_gives_prompt_parameters_and_query(store: genstore.Store) -> None:
    async def generate(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"success": True})

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/generate/text-to-image", generate, methods=["POST"])]),
        store=store,
        routes={"/api/generate/text-to-image": "text_to_image"},
        user_id=lambda scope: "user_" + scope["query_string"].decode().split("u=")[-1],
    )
    body = {"prompt": "un chat", "aspectRatio": "16:9", "guidance": 3.5, "model": "flux"}
    response = asyncio.run(
        post(middleware, "/api/generate/text-to-image?model=query-loses&seed=7&u=42", json=body)
    )
    assert response.status_code == 200
    assert middleware.flush(10)
    record = only_record(store)
    assert record.operation_type == "text_to_image"
    assert record.status == "succeeded"
    assert record.prompt == "un chat"
    assert record.parameters == {
        "aspectRatio": "16:9",
        "guidance": 3.5,
        "model": "flux",
        "seed": "7",
        "u": "42",
    }
    assert record.user_id == "user_42"
    assert record.request == genstore.RequestInfo(
        route="/api/generate/text-to-image", method="POST", status_code=200
    )
    assert record.duration_ms is not None and record.duration_ms >= 0
    assert record.inputs == [] and record.result is None


def test_multipart_uploads_become_input_images(store: genstore.Store) -> None:
    async def edit(request: Request) -> JSONResponse:
        async with request.form() as form:
            return JSONResponse({"success": True, "count": len(form.getlist("images"))})

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/edit/image", edit, methods=["POST"])]),
        store=store,
        routes=ROUTES,
    )
    cat, dog = png_bytes(16, 16, "orange"), png_bytes(12, 10, "brown")
    files = [("images", ("a.png", cat, "image/png")), ("images", ("b.png", dog, "image/png"))]
    data = {"prompt": "ajoute un chapeau", "strength": "0.8"}
    response = asyncio.run(post(middleware, "/api/edit/image", data=data, files=files))
    assert response.json() == {"success": True, "count": 2}
    assert middleware.flush(10)
    record = only_record(store)
    assert record.operation_type == "image_edit_multiple"
    assert record.prompt == "ajoute un chapeau"
    assert record.parameters == {"strength": "0.8"}
    assert [ref.sha256 for ref in record.inputs] == [sha(cat), sha(dog)]
    assert [(ref.width, ref.height) for ref in record.inputs] == [(16, 16), (12, 10)]
    assert store.read_artifact(record.inputs[1]) == dog


def test_result_url_in_the_json_response_is_downloaded(
    store: genstore.Store, file_server: FileServer
) -> None:
    image = png_bytes(20, 20, "green")
    url = file_server.add("out.png", image)
    app = FastAPI()

    @app.post("/api/generate/text-to-image")
    def generate(body: Body) -> dict[str, Any]:
        return {"success": True, "images": [{"url": url}], "workflowAnalysis": {"steps": 1}}

    middleware = RecordingMiddleware(app, store=store, routes=ROUTES)
    assert asyncio.run(
        post(middleware, "/api/generate/text-to-image", json={"prompt": "p"})
    ).is_success
    assert middleware.flush(10)
    record = only_record(store)
    assert record.result_source_url == url
    assert record.result is not None and record.result.sha256 == sha(image)
    assert record.workflow_analysis == {"steps": 1}


def test_image_response_body_becomes_the_result(store: genstore.Store) -> None:
    image = png_bytes(30, 20, "blue")

    async def generate(request: Request) -> Response:
        return Response(image, media_type="image/png")

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/generate/png", generate, methods=["POST"])]),
        store=store,
        routes=ROUTES,
    )
    assert asyncio.run(post(middleware, "/api/generate/png", json={"prompt": "p"})).content == image
    assert middleware.flush(10)
    result = only_record(store).result
    assert result is not None
    assert (result.sha256, result.content_type, result.width) == (sha(image), "image/png", 30)


def test_streamed_video_response_is_teed_and_spooled(store: genstore.Store, tmp_path: Path) -> None:
    chunks = [bytes([i]) * 65536 for i in range(48)]  # 3 MiB, streamed
    video = b"\x1a\x45\xdf\xa3" + b"".join(chunks)

    async def stream() -> AsyncIterator[bytes]:
        yield video[:4]
        for chunk in chunks:
            yield chunk

    async def generate(request: Request) -> StreamingResponse:
        return StreamingResponse(stream(), media_type="video/webm")

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/generate/video", generate, methods=["POST"])]),
        store=store,
        routes=ROUTES,
        max_body_in_memory=256 * 1024,
        spool_dir=str(tmp_path / "spool"),
    )
    (tmp_path / "spool").mkdir()
    response = asyncio.run(post(middleware, "/api/generate/video", json={"prompt": "p"}))
    assert response.content == video
    assert middleware.flush(30)
    result = only_record(store).result
    assert result is not None
    assert (result.sha256, result.size) == (sha(video), len(video))
    assert os.listdir(tmp_path / "spool") == []  # handed over, then deleted by the recorder


class Body(BaseModel):
    prompt: str


class Kaboom(Exception):
    pass


def test_app_exception_is_recorded_failed_and_reraised_unchanged(store: genstore.Store) -> None:
    error = Kaboom("the provider timed out")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        raise error

    middleware = RecordingMiddleware(app, store=store, routes=ROUTES)
    messages = request_messages([b'{"prompt": "un chat"}'])
    scope = http_scope("/api/generate/x", headers=[("content-type", "application/json")])
    with pytest.raises(Kaboom) as raised:
        asyncio.run(call(middleware, scope, messages))
    assert raised.value is error
    assert middleware.flush(10)
    record = only_record(store)
    assert (record.status, record.error, record.prompt) == (
        "failed",
        "Kaboom: the provider timed out",
        "un chat",
    )
    assert record.request is not None and record.request.status_code is None


@pytest.mark.parametrize(
    ("status", "response", "message"),
    [
        (
            500,
            JSONResponse({"success": False, "error": "GPU out of memory"}, 500),
            "GPU out of memory",
        ),
        (400, JSONResponse({"message": "prompt refused"}, 400), "prompt refused"),
        (
            422,
            JSONResponse({"detail": [{"msg": "field required"}]}, 422),
            '[{"msg": "field required"}]',
        ),
        (503, PlainTextResponse("provider unavailable", 503), "provider unavailable"),
        (502, Response(b"", 502), "HTTP 502"),
    ],
)
def test_error_statuses_are_recorded_failed_with_the_message_of_the_body(
    store: genstore.Store, status: int, response: Response, message: str
) -> None:
    async def generate(request: Request) -> Response:
        return response

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/generate/x", generate, methods=["POST"])]),
        store=store,
        routes=ROUTES,
    )
    assert (
        asyncio.run(post(middleware, "/api/generate/x", json={"prompt": "p"})).status_code == status
    )
    assert middleware.flush(10)
    record = only_record(store)
    assert (record.status, record.error) == ("failed", message)
    assert record.request is not None and record.request.status_code == status


def test_record_is_handed_over_with_the_last_body_byte(spy: SpyStore) -> None:
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b", "more_body": False})
        events.append("app returned")

    middleware = RecordingMiddleware(app, store=spy, routes=ROUTES)
    handoff_submit = middleware.handoff.submit

    def submit(exchange: Any) -> None:
        events.append("handed over")
        handoff_submit(exchange)

    middleware.handoff.submit = submit  # type: ignore[method-assign]

    async def scenario() -> None:
        async def send(message: Message) -> None:
            events.append(f"sent {message['type']} {message.get('more_body', '')}")

        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        await middleware(http_scope("/api/generate/x"), receive, send)

    asyncio.run(scenario())
    assert events == [
        "sent http.response.start ",
        "sent http.response.body True",
        # Handed over once the last byte is known, before it is sent: a client holding the
        # whole answer can rely on its record being queued (flush then finds it).
        "handed over",
        "sent http.response.body False",
        "app returned",
    ]
    assert middleware.flush(5)
    assert len(spy.recorder.submitted) == 1


# -- secrets -----------------------------------------------------------------------------------

SECRETS = [
    "Bearer s3cr3t-bearer",
    "session=c00kie",
    "qk-123",
    "jk-456",
    "nested-789",
    "mp-pass",
    "seed-words",
    "custom-x",
]


def all_stored_bytes(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in root.rglob("*"):
        if path.is_file():
            yield path, path.read_bytes()


def test_secrets_are_never_recorded(store: genstore.Store, tmp_path: Path) -> None:
    async def generate(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"success": True})

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/generate/x", generate, methods=["POST"])]),
        store=store,
        routes=ROUTES,
        redact=lambda name: name.startswith("internal_"),
    )
    headers = {"Authorization": "Bearer s3cr3t-bearer", "Cookie": "session=c00kie"}
    body = {
        "prompt": "un chat",
        "apiKey": "jk-456",
        "options": {"provider": {"access_token": "nested-789"}, "steps": 20},
        "internal_note": "custom-x",
    }
    asyncio.run(
        post(middleware, "/api/generate/x?api_key=qk-123&seed=1", json=body, headers=headers)
    )
    form, files = multipart(
        [("prompt", "un chien"), ("password", "mp-pass"), ("internal_seed", "seed-words")], []
    )
    asyncio.run(
        post(
            middleware, "/api/generate/x", content=form, headers={"content-type": files, **headers}
        )
    )
    assert middleware.flush(10)
    records = store.history().items
    assert {r.prompt for r in records} == {"un chat", "un chien"}
    by_prompt = {r.prompt: r.parameters for r in records}
    hidden = "[redacted]"
    assert by_prompt["un chat"] == {
        "seed": "1",
        "apiKey": hidden,
        "options": {"provider": {"access_token": hidden}, "steps": 20},
        "internal_note": hidden,
    }
    assert by_prompt["un chien"] is None
    for path, data in all_stored_bytes(tmp_path / "store"):
        for secret in SECRETS:
            assert secret.encode() not in data, (secret, path)


def test_redact_names_option(spy: SpyStore) -> None:
    middleware = RecordingMiddleware(
        app_reading_everything, store=spy, routes=ROUTES, redact=["Email", "phone"]
    )
    body = json.dumps({"prompt": "p", "email": "a@b.c", "PHONE": "1", "size": 2}).encode()
    scope = http_scope("/api/generate/x", headers=[("content-type", "application/json")])
    asyncio.run(call(middleware, scope, request_messages([body])))
    assert middleware.flush(5)
    hidden = "[redacted]"
    assert spy.recorder.submitted[0].kwargs["parameters"] == {
        "email": hidden,
        "PHONE": hidden,
        "size": 2,
    }


def test_without_a_store_records_go_to_the_default_store(store: genstore.Store) -> None:
    async def generate(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"success": True})

    genstore.set_default_store(store)
    try:
        middleware = RecordingMiddleware(
            Starlette(routes=[Route("/api/generate/x", generate, methods=["POST"])]),
            routes=ROUTES,
        )
        asyncio.run(post(middleware, "/api/generate/x", json={"prompt": "default"}))
        assert middleware.flush(10)
    finally:
        genstore.set_default_store(None)
    assert only_record(store).prompt == "default"


# -- idempotency, user, routes callable ---------------------------------------------------------


def test_idempotency_key_header_makes_a_retry_land_on_the_same_record(
    store: genstore.Store,
) -> None:
    async def generate(request: Request) -> JSONResponse:
        return JSONResponse({"success": True})

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/generate/x", generate, methods=["POST"])]),
        store=store,
        routes=ROUTES,
    )
    for _ in range(2):
        asyncio.run(
            post(
                middleware,
                "/api/generate/x",
                json={"prompt": "p"},
                headers={"Idempotency-Key": "req-1"},
            )
        )
    assert middleware.flush(10)
    assert only_record(store).idempotency_key == "req-1"


def test_a_retry_after_a_failure_is_recorded_and_a_repeat_of_the_success_is_not(
    store: genstore.Store,
) -> None:
    attempts: list[int] = []

    async def generate(request: Request) -> JSONResponse:
        attempts.append(1)
        if len(attempts) == 1:
            return JSONResponse({"error": "provider busy"}, status_code=503)
        return JSONResponse({"success": True})

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/generate/x", generate, methods=["POST"])]),
        store=store,
        routes=ROUTES,
    )
    for _ in range(3):
        asyncio.run(
            post(
                middleware,
                "/api/generate/x",
                json={"prompt": "p"},
                headers={"Idempotency-Key": "req-2"},
            )
        )
        assert middleware.flush(10)
    records = store.history().items
    assert sorted((r.idempotency_key, r.status) for r in records) == [
        ("req-2", "succeeded"),
        ("req-2#failed", "failed"),
    ]


def test_a_user_id_the_store_refuses_is_dropped_not_the_record(store: genstore.Store) -> None:
    async def generate(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"success": True})

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/generate/x", generate, methods=["POST"])]),
        store=store,
        routes=ROUTES,
        user_id="../../etc/passwd",
    )
    asyncio.run(post(middleware, "/api/generate/x", json={"prompt": "kept"}))
    assert middleware.flush(10)
    record = only_record(store)
    assert (record.prompt, record.user_id) == ("kept", None)


def test_routes_callable_and_user_id_callable_see_the_scope(spy: SpyStore) -> None:
    def route(scope: Scope) -> str | None:
        return "custom_type" if scope["path"].startswith("/v2/") else None

    middleware = RecordingMiddleware(
        app_reading_everything,
        store=spy,
        routes=route,
        user_id=lambda scope: dict(scope["headers"]).get(b"x-user", b"").decode() or None,
    )
    for path in ("/v2/gen", "/v1/gen"):
        scope = http_scope(path, headers=[("x-user", "alice")])
        asyncio.run(call(middleware, scope, request_messages([b""])))
    assert middleware.flush(5)
    (record,) = spy.recorder.submitted
    assert record.kwargs["operation_type"] == "custom_type"
    assert record.kwargs["user_id"] == "alice"


# -- large bodies ---------------------------------------------------------------------------------

MiB = 1024 * 1024


def test_large_multipart_upload_is_spooled_with_bounded_memory(tmp_path: Path) -> None:
    spy = SpyStore()
    spy.recorder.read_files = False
    size = 48 * MiB
    boundary = "b0undary7e57"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nbig\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="images"; '
        f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = bytes(range(256)) * 256  # 64 KiB
    expected = hashlib.sha256()
    for _ in range(size // len(block)):
        expected.update(block)

    def messages() -> Iterator[Message]:
        yield {"type": "http.request", "body": head, "more_body": True}
        for _ in range(size // len(block)):
            yield {"type": "http.request", "body": block, "more_body": True}
        yield {"type": "http.request", "body": tail, "more_body": False}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        while True:  # reads and drops, as a streaming app would
            message = await receive()
            received += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        assert received == len(head) + size + len(tail)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    middleware = RecordingMiddleware(
        app, store=spy, routes=ROUTES, max_body_in_memory=MiB, spool_dir=str(tmp_path)
    )
    content_type = f"multipart/form-data; boundary={boundary}"
    scope = http_scope("/api/edit/x", headers=[("content-type", content_type)])
    tracemalloc.start()
    try:
        asyncio.run(call(middleware, scope, messages()))
        assert middleware.flush(60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    (record,) = spy.recorder.submitted
    assert record.input_kinds == ["path"]
    assert spy.recorder.hashes == [expected.hexdigest()]
    assert record.kwargs["prompt"] == "big"
    assert peak < 6 * MiB, f"peak traced memory {peak / MiB:.1f} MiB for a {size // MiB} MiB upload"
    assert os.listdir(tmp_path) == []


def test_upload_spooled_to_disk_reaches_the_store(store: genstore.Store) -> None:
    async def edit(request: Request) -> JSONResponse:
        async with request.form():
            return JSONResponse({"success": True})

    middleware = RecordingMiddleware(
        Starlette(routes=[Route("/api/edit/big", edit, methods=["POST"])]),
        store=store,
        routes=ROUTES,
        max_body_in_memory=64 * 1024,
    )
    image = png_bytes(1200, 900, "red") + os.urandom(2 * MiB)  # a PNG with trailing bytes
    files = [("images", ("big.png", image, "image/png"))]
    response = asyncio.run(post(middleware, "/api/edit/big", data={"prompt": "p"}, files=files))
    assert response.status_code == 200
    assert middleware.flush(30)
    (ref,) = only_record(store).inputs
    assert (ref.sha256, ref.size) == (sha(image), len(image))
