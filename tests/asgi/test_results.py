"""What a recorded route's answer becomes, through a real uvicorn on 127.0.0.1: every output in
order (the real ``openai`` and ``fal-client`` against the provider fakes), relative URLs never
aimed by ``Host``, successes without a result, exceptions behind a 500, unrecorded statuses."""

from __future__ import annotations

import base64
import logging
from typing import Any

import genstore
import httpx
import pytest
from fakes.providers import FakeProviders
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from genstore_asgi import Operation, RecordingMiddleware
from helpers import png_bytes

from asgi.support import serving


def records(store: genstore.Store) -> list[genstore.OperationRecord]:
    return list(reversed(store.history(limit=50).items))  # oldest first


def only_record(store: genstore.Store) -> genstore.OperationRecord:
    (record,) = records(store)
    return record


def stored(store: genstore.Store, record: genstore.OperationRecord) -> list[bytes]:
    return [store.read_artifact(ref) for ref in record.results]


def run(middleware: RecordingMiddleware, *requests: tuple[str, dict[str, Any]]) -> list[Any]:
    """POST each (path, httpx arguments) through uvicorn; wait until every record is saved."""
    with serving(middleware) as url, httpx.Client(base_url=url, timeout=30) as client:
        answers = [client.post(path, **kwargs) for path, kwargs in requests]
        assert middleware.flush(30)  # while the app still serves what its results point at
    return answers


# -- every output, in order ----------------------------------------------------------------------


@pytest.mark.parametrize("response_format", ["url", "b64_json"])
def test_a_route_returning_the_openai_clients_images_response_keeps_4_of_4(
    store: genstore.Store, fake: FakeProviders, openai_client: Any, response_format: str
) -> None:
    app = FastAPI()

    @app.post("/api/generate")
    def generate(body: dict[str, Any]) -> Any:
        return openai_client.images.generate(
            model="dall-e-2", prompt=body["prompt"], n=4, response_format=response_format
        )

    middleware = RecordingMiddleware(app, store=store, routes={"/api/generate": "text_to_image"})
    (answer,) = run(middleware, ("/api/generate", {"json": {"prompt": "four cats"}}))
    assert len(answer.json()["data"]) == 4
    record = only_record(store)
    assert (record.status, record.prompt, record.result_error) == ("succeeded", "four cats", None)
    assert stored(store, record) == fake.served[-1]
    assert len(fake.served[-1]) == 4 and len(set(fake.served[-1])) == 4


@pytest.mark.parametrize("item", ["url", "b64_json"])
def test_a_route_answering_the_openai_images_shape_keeps_4_of_4(
    store: genstore.Store, fake: FakeProviders, item: str
) -> None:
    app = FastAPI()

    @app.post("/api/generate")
    def generate() -> dict[str, Any]:
        made = fake.generation("image", 4)
        data = [
            {"url": fake.file_url(name)} if item == "url" else {"b64_json": _b64(raw)}
            for name, raw, _ in made
        ]
        return {"created": 1764417600, "data": data}

    middleware = RecordingMiddleware(app, store=store, routes={"/api/generate": "text_to_image"})
    run(middleware, ("/api/generate", {"json": {"prompt": "p"}}))
    record = only_record(store)
    assert stored(store, record) == fake.served[-1]
    assert [ref.content_type for ref in record.results] == ["image/png"] * 4


def test_a_route_returning_fals_video_keeps_it(
    store: genstore.Store, fake: FakeProviders, fal_client: Any
) -> None:
    app = FastAPI()

    @app.post("/api/video")
    def video(body: dict[str, Any]) -> Any:
        return fal_client.run("fal-ai/fast-video", arguments={"prompt": body["prompt"]})

    middleware = RecordingMiddleware(app, store=store, routes={"/api/video": "text_to_video"})
    (answer,) = run(middleware, ("/api/video", {"json": {"prompt": "a wave"}}))
    assert set(answer.json()) == {"video"}
    record = only_record(store)
    assert stored(store, record) == fake.served[-1]
    assert record.results[0].content_type == "video/mp4"
    assert record.result_source_url == answer.json()["video"]["url"]


def test_a_result_extractor_may_return_many(store: genstore.Store, fake: FakeProviders) -> None:
    app = FastAPI()

    @app.post("/api/generate")
    def generate() -> dict[str, Any]:
        made = fake.generation("image", 3)
        return {
            "mine": {"first": fake.file_url(made[0][0])},
            "rest": [_b64(r) for _, r, _ in made[1:]],
        }

    def extractor(body: Any) -> list[Any]:
        return [body["mine"]["first"], *(base64.b64decode(b) for b in body["rest"])]

    middleware = RecordingMiddleware(
        app, store=store, routes={"/api/generate": "t"}, result_extractor=extractor
    )
    run(middleware, ("/api/generate", {"json": {}}))
    assert stored(store, only_record(store)) == fake.served[-1]


# -- relative URLs ---------------------------------------------------------------------------------


def app_with_relative_result(png: bytes) -> FastAPI:
    app = FastAPI()

    @app.post("/api/generate")
    def generate() -> dict[str, Any]:
        return {"resultUrl": "/files/out.png"}

    @app.get("/files/out.png")
    def result_file() -> Response:
        return Response(png, media_type="image/png")

    return app


def test_the_host_header_cannot_aim_the_download_of_a_relative_result(
    store: genstore.Store, fake: FakeProviders
) -> None:
    png = png_bytes(color="blue")
    middleware = RecordingMiddleware(
        app_with_relative_result(png), store=store, routes={"/api/generate": "text_to_image"}
    )
    # The fake (another loopback server) stands for the metadata address a Host header names.
    canary = fake.url.removeprefix("http://")
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        answer = client.post(
            "/api/generate", json={"prompt": "p"}, headers={"Host": f"{canary}/latest/meta-data#"}
        )
        assert answer.status_code == 200
        assert middleware.flush(30)
    record = only_record(store)
    assert stored(store, record) == [png], record.result_error
    assert record.result_source_url == f"{url}/files/out.png"
    assert fake.requests == []


def test_relative_results_resolve_against_the_base_url_option(
    store: genstore.Store, fake: FakeProviders
) -> None:
    ((name, raw, _),) = fake.generation("image", 1)
    app = FastAPI()

    @app.post("/api/generate")
    def generate() -> dict[str, Any]:
        return {"url": f"/files/{name}"}

    middleware = RecordingMiddleware(
        app, store=store, routes={"/api/generate": "t"}, base_url=fake.url + "/"
    )
    run(middleware, ("/api/generate", {"json": {}}))
    record = only_record(store)
    assert stored(store, record) == [raw]
    assert record.result_source_url == fake.file_url(name)


# -- a success with no result ----------------------------------------------------------------------


def test_a_success_without_a_result_is_saved_with_a_note_and_warned_once_per_route(
    store: genstore.Store, caplog: pytest.LogCaptureFixture
) -> None:
    app = FastAPI()

    @app.post("/api/generate/{kind}")
    def generate(kind: str) -> dict[str, Any]:
        return {"success": True, "text": "no image here"}

    middleware = RecordingMiddleware(
        app,
        store=store,
        routes={
            "/api/generate/*": "text_to_image",
            "/api/generate/caption": Operation("caption", results=False),
        },
    )
    with caplog.at_level(logging.WARNING, logger="genstore_asgi"):
        run(middleware, *[(f"/api/generate/{k}", {"json": {}}) for k in ("a", "b", "caption")])
    saved = records(store)
    assert [(r.operation_type, r.status) for r in saved] == [
        ("text_to_image", "succeeded"),
        ("text_to_image", "succeeded"),
        ("caption", "succeeded"),
    ]
    assert [r.result_error for r in saved] == [
        "no result found in the response",
        "no result found in the response",
        None,
    ]
    warnings = [r for r in caplog.records if "no result found" in r.getMessage()]
    assert len(warnings) == 1 and "/api/generate/*" in warnings[0].getMessage()


# -- exceptions ------------------------------------------------------------------------------------


def test_a_route_that_raises_is_recorded_with_its_exception_behind_starlettes_500(
    store: genstore.Store,
) -> None:
    app = FastAPI()

    @app.post("/api/generate")
    def generate(body: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("boom")

    # Wrapping the whole app puts Starlette's ServerErrorMiddleware inside: it answers 500 with
    # "Internal Server Error", then re-raises.
    middleware = RecordingMiddleware(app, store=store, routes={"/api/generate": "t"})
    (answer,) = run(middleware, ("/api/generate", {"json": {"prompt": "p"}}))
    assert (answer.status_code, answer.text) == (500, "Internal Server Error")
    record = only_record(store)
    assert (record.status, record.error, record.prompt) == ("failed", "RuntimeError: boom", "p")
    assert record.request is not None and record.request.status_code == 500


def test_a_route_that_raises_inside_add_middleware_is_recorded_with_its_exception(
    store: genstore.Store,
) -> None:
    app = FastAPI()
    app.add_middleware(RecordingMiddleware, store=store, routes={"/api/generate": "t"})

    @app.post("/api/generate")
    def generate() -> dict[str, Any]:
        raise ValueError("bad seed")

    with serving(app) as url, httpx.Client(base_url=url) as client:
        assert client.post("/api/generate", json={}).status_code == 500
        # add_middleware builds the middleware inside the app: its lifespan shutdown flushes.
    record = only_record(store)
    assert (record.status, record.error) == ("failed", "ValueError: bad seed")


# -- statuses not recorded -------------------------------------------------------------------------


def status_app() -> FastAPI:
    app = FastAPI()

    @app.post("/api/generate")
    async def generate(request: Request) -> JSONResponse:
        status = int((await request.json())["status"])
        return JSONResponse({"detail": f"status {status}"}, status_code=status)

    return app


def post_statuses(*statuses: int) -> list[tuple[str, dict[str, Any]]]:
    return [("/api/generate", {"json": {"status": s}}) for s in statuses]


def test_401_403_407_and_429_are_not_recorded_by_default(store: genstore.Store) -> None:
    middleware = RecordingMiddleware(status_app(), store=store, routes={"/api/generate": "t"})
    answers = run(middleware, *post_statuses(401, 403, 407, 429, 400, 200))
    assert [a.status_code for a in answers] == [401, 403, 407, 429, 400, 200]
    assert [r.request.status_code for r in records(store) if r.request] == [400, 200]


@pytest.mark.parametrize(
    "record_statuses", [range(100, 600), lambda status: status != 400], ids=["range", "predicate"]
)
def test_record_statuses_changes_what_is_recorded(
    store: genstore.Store, record_statuses: Any
) -> None:
    middleware = RecordingMiddleware(
        status_app(), store=store, routes={"/api/generate": "t"}, record_statuses=record_statuses
    )
    run(middleware, *post_statuses(429, 400, 200))
    expected = [429, 400, 200] if isinstance(record_statuses, range) else [429, 200]
    saved = records(store)
    assert [r.request.status_code for r in saved if r.request] == expected
    assert saved[0].error == "status 429"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
