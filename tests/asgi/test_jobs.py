"""JobStart / JobComplete: a 202 job, its polls or its webhook, one operation in the end.

Through a real uvicorn on 127.0.0.1; the outputs come from the provider fakes and are compared
byte for byte with what the fake served.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import genstore
import httpx
import pytest
from fakes.providers import FakeProviders
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from genstore_asgi import JobComplete, JobStart, RecordingMiddleware, Routes
from genstore_asgi._jobs import field_at
from helpers import png_bytes
from hypothesis import given
from hypothesis import strategies as st

from asgi.support import serving


def only_record(store: genstore.Store) -> genstore.OperationRecord:
    (record,) = store.history(limit=50).items
    return record


def job_provider(fake: FakeProviders, polls_before_done: int = 2) -> FastAPI:
    """An app standing for a provider's async API: jobs queue, then succeed (or fail)."""
    app = FastAPI()
    jobs: dict[str, dict[str, Any]] = {}

    @app.post("/v1/video", status_code=202)
    def start(body: dict[str, Any]) -> dict[str, Any]:
        job_id = uuid.uuid4().hex
        jobs[job_id] = {"polls": 0, "fail": bool(body.get("fail"))}
        return {"id": job_id, "status": "queued"}

    @app.get("/v1/jobs/{job_id}")
    def poll(job_id: str) -> dict[str, Any]:
        job = jobs[job_id]
        job["polls"] += 1
        if job["polls"] <= polls_before_done:
            return {"id": job_id, "status": "queued"}
        if job["fail"]:
            return {"id": job_id, "status": "failed", "error": "NSFW content detected"}
        if "output" not in job:
            job["output"] = [fake.file_url(name) for name, _, _ in fake.generation("video", 1)]
        return {"id": job_id, "status": "succeeded", "output": job["output"]}

    @app.post("/webhooks/provider")
    def webhook(body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    return app


ROUTES: Routes = {
    "/v1/video": JobStart("text_to_video", job_id="id"),
    "/v1/jobs/*": JobComplete(job_id="id"),
    "/webhooks/provider": JobComplete(job_id="id"),
}


def test_a_polled_job_is_one_operation_with_the_downloaded_result(
    store: genstore.Store, fake: FakeProviders
) -> None:
    middleware = RecordingMiddleware(job_provider(fake), store=store, routes=ROUTES)
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        started = client.post("/v1/video", json={"prompt": "a wave", "seconds": 4})
        assert started.status_code == 202
        job_id = started.json()["id"]
        assert middleware.flush(30)
        pending = only_record(store)
        assert (pending.status, pending.job_id, pending.results) == ("pending", job_id, [])
        statuses = [client.get(f"/v1/jobs/{job_id}").json()["status"] for _ in range(4)]
    assert statuses == ["queued", "queued", "succeeded", "succeeded"]
    assert middleware.flush(30)
    record = only_record(store)
    assert record.operation_id == pending.operation_id
    assert (record.status, record.operation_type, record.job_id) == (
        "succeeded",
        "text_to_video",
        job_id,
    )
    assert (record.prompt, record.parameters) == ("a wave", {"seconds": 4})
    assert [store.read_artifact(ref) for ref in record.results] == fake.served[-1]
    assert record.results[0].content_type == "video/mp4"


def test_a_failed_job_completes_its_operation_failed(
    store: genstore.Store, fake: FakeProviders
) -> None:
    middleware = RecordingMiddleware(job_provider(fake, 0), store=store, routes=ROUTES)
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        job_id = client.post("/v1/video", json={"prompt": "p", "fail": True}).json()["id"]
        assert middleware.flush(30)
        client.get(f"/v1/jobs/{job_id}")
    assert middleware.flush(30)
    record = only_record(store)
    assert (record.status, record.error, record.results) == ("failed", "NSFW content detected", [])


def test_a_webhook_completes_the_job(store: genstore.Store, fake: FakeProviders) -> None:
    ((name, raw, _),) = fake.generation("image", 1)
    middleware = RecordingMiddleware(job_provider(fake), store=store, routes=ROUTES)
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        job_id = client.post("/v1/video", json={"prompt": "p"}).json()["id"]
        running = {"id": job_id, "status": "processing"}
        done = {"id": job_id, "status": "succeeded", "output": [fake.file_url(name)]}
        for payload in (running, done, done):  # a provider may resend a webhook
            assert client.post("/webhooks/provider", json=payload).json() == {"ok": True}
    assert middleware.flush(30)
    record = only_record(store)
    assert (record.status, record.job_id) == ("succeeded", job_id)
    assert [store.read_artifact(ref) for ref in record.results] == [raw]


def test_a_completion_whose_job_was_never_started_is_an_operation_of_its_own(
    store: genstore.Store, fake: FakeProviders
) -> None:
    ((name, raw, _),) = fake.generation("image", 1)
    routes: Routes = {"/webhooks/provider": JobComplete(job_id="data.id", operation_type="upscale")}
    middleware = RecordingMiddleware(job_provider(fake), store=store, routes=routes)
    payload = {"data": {"id": 42, "status": "completed", "image_url": fake.file_url(name)}}
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        client.post("/webhooks/provider", json=payload)
    assert middleware.flush(30)
    record = only_record(store)
    assert (record.status, record.operation_type, record.job_id) == ("succeeded", "upscale", "42")
    assert [store.read_artifact(ref) for ref in record.results] == [raw]


def test_replicate_predictions_through_the_real_client(
    store: genstore.Store, fake: FakeProviders, replicate_client: Any
) -> None:
    app = FastAPI()

    @app.post("/api/predictions", status_code=201)
    def create(body: dict[str, Any]) -> JSONResponse:
        prediction = replicate_client.models.predictions.create(
            model="black-forest-labs/flux-schnell", input=body
        )
        return JSONResponse(prediction.dict(), status_code=201)

    @app.get("/api/predictions/{pid}")
    def get(pid: str) -> Any:
        return replicate_client.predictions.get(pid).dict()

    routes: Routes = {
        "/api/predictions": JobStart("text_to_image"),
        "/api/predictions/*": JobComplete(),
    }
    middleware = RecordingMiddleware(app, store=store, routes=routes)
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        created = client.post("/api/predictions", json={"prompt": "a fox", "num_outputs": 2})
        assert created.json()["status"] == "starting"
        pid = created.json()["id"]
        statuses = [client.get(f"/api/predictions/{pid}").json()["status"] for _ in range(3)]
    assert statuses == ["processing", "succeeded", "succeeded"]
    assert middleware.flush(30)
    record = only_record(store)
    assert (record.status, record.job_id, record.prompt) == ("succeeded", pid, "a fox")
    assert [store.read_artifact(ref) for ref in record.results] == fake.served[-1]
    assert len(record.results) == 2


def test_a_start_that_answers_no_job_id_is_recorded_with_a_note(
    store: genstore.Store,
) -> None:
    app = FastAPI()

    @app.post("/v1/video", status_code=202)
    def start() -> dict[str, Any]:
        return {"queued": True}

    middleware = RecordingMiddleware(app, store=store, routes=ROUTES)
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        client.post("/v1/video", json={"prompt": "p"})
    assert middleware.flush(30)
    record = only_record(store)
    assert record.status == "succeeded"
    assert record.result_error == "no job id in the response (field 'id')"


def test_done_overrides_the_terminal_state(store: genstore.Store, fake: FakeProviders) -> None:
    ((name, raw, _),) = fake.generation("image", 1)
    app = job_provider(fake)

    async def hook(body: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True}

    app.add_api_route("/hook", hook, methods=["POST"])
    routes: Routes = {"/hook": JobComplete(done=lambda body: body.get("phase") == "END")}
    middleware = RecordingMiddleware(app, store=store, routes=routes)
    url_of = fake.file_url(name)
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        client.post("/hook", json={"id": "j1", "phase": "RUN", "status": "done", "url": url_of})
        client.post("/hook", json={"id": "j1", "phase": "END", "url": url_of})
    assert middleware.flush(30)
    record = only_record(store)
    assert record.job_id == "j1"
    assert [store.read_artifact(ref) for ref in record.results] == [raw]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
        max_leaves=10,
    ),
    st.lists(
        st.text(min_size=1, max_size=3).filter(lambda s: "." not in s), min_size=1, max_size=3
    ),
)
def test_field_at_never_raises_and_finds_nested_ids(document: Any, path: list[str]) -> None:
    found = field_at(document, ".".join(path))
    assert found is None or (isinstance(found, str) and 0 < len(found) <= 512)
    nested: Any = "job-1"
    for name in reversed(path):
        nested = {name: nested}
    assert field_at(nested, ".".join(path)) == "job-1"


@pytest.mark.parametrize(("value", "expected"), [(7, "7"), (True, None), ("", None), ([1], None)])
def test_field_at_takes_strings_and_integers(value: Any, expected: str | None) -> None:
    assert field_at({"id": value}, "id") == expected


def test_a_running_jobs_poll_leaves_no_spooled_body_behind(
    store: genstore.Store, fake: FakeProviders, tmp_path: Path
) -> None:
    spool = tmp_path / "bodies"
    spool.mkdir()
    app = job_provider(fake)

    @app.post("/webhooks/upload")
    async def upload(request: Request) -> dict[str, Any]:
        await request.body()
        return {"id": "j1", "status": "processing"}

    routes: Routes = {"/webhooks/upload": JobComplete()}
    middleware = RecordingMiddleware(
        app, store=store, routes=routes, max_body_in_memory=1024, spool_dir=str(spool)
    )
    with serving(middleware) as url, httpx.Client(base_url=url) as client:
        body = png_bytes(64, 64) + bytes(4096)  # past max_body_in_memory: spooled to a file
        answer = client.post(
            "/webhooks/upload", content=body, headers={"content-type": "image/png"}
        )
        assert answer.json()["status"] == "processing"
        assert middleware.flush(30)
    assert store.history(limit=5).items == []
    assert list(spool.iterdir()) == []
