"""``@genstore.record``: what a call becomes, and that the decorated function is unchanged.

Records go through a real local store's background recorder; result URLs are served by a real
loopback HTTP server; the FastAPI tests run real apps through httpx's ASGITransport (starlette's
TestClient warns about its httpx dependency, and warnings are errors here).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import io
import json
import math
import os
import tempfile
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import genstore
import httpx
import pytest
from fastapi import Depends, FastAPI, Header
from genstore import OperationRecord
from genstore._recording.decorator import _json_safe, record
from genstore._store import Store
from helpers import FileServer, png_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import BaseModel

WAIT = 30.0


@pytest.fixture
def rec_deco_store(tmp_path: Path) -> Iterator[Store]:
    """A local store; its recorder is the one the decorator hands records to."""
    with genstore.open_store(tmp_path / "store") as store:
        yield store


def records(store: Store) -> list[OperationRecord]:
    """The store's records, oldest first, once the background writer is done."""
    assert store.recorder.flush(WAIT)
    assert store.recorder.spool_status().count == 0
    return list(reversed(store.history(limit=1000).items))


def only(store: Store) -> OperationRecord:
    found = records(store)
    assert len(found) == 1
    return found[0]


# -- the function is unchanged --------------------------------------------------------------------


def plain(prompt: str, steps: int = 20, *, seed: int | None = None) -> str:
    """Docs stay."""
    return prompt


async def coroutine(prompt: str, steps: int = 20) -> str:
    return prompt


def generator(prompt: str) -> Iterator[str]:
    yield prompt


async def async_generator(prompt: str) -> AsyncIterator[str]:
    yield prompt


@pytest.mark.parametrize("fn", [plain, coroutine, generator, async_generator])
def test_signature_name_and_kind_are_kept(fn: Callable[..., Any]) -> None:
    wrapped = record("text_to_image")(fn)
    assert inspect.signature(wrapped) == inspect.signature(fn)
    assert wrapped.__wrapped__ is fn  # type: ignore[attr-defined]
    assert (wrapped.__name__, wrapped.__doc__, wrapped.__module__) == (
        fn.__name__,
        fn.__doc__,
        fn.__module__,
    )
    for check in (
        inspect.iscoroutinefunction,
        inspect.isgeneratorfunction,
        inspect.isasyncgenfunction,
    ):
        assert check(wrapped) == check(fn)


def test_an_empty_operation_type_is_refused_at_decoration() -> None:
    with pytest.raises(genstore.InvalidInput):
        record("")


# -- what a call records ----------------------------------------------------------------------------


def test_a_call_records_prompt_parameters_inputs_and_downloaded_result(
    rec_deco_store: Store, file_server: FileServer
) -> None:
    output = png_bytes(16, 9, "blue")
    url = file_server.add("out.png", output)
    source = png_bytes(4, 4, "green")

    @record("image_edit_single", store=rec_deco_store)
    def edit(prompt: str, image: bytes, strength: float = 0.5, api_key: str = "sk-secret") -> str:
        return url

    assert edit("make it blue", source, strength=0.8) == url
    saved = only(rec_deco_store)
    assert (saved.operation_type, saved.status, saved.prompt) == (
        "image_edit_single",
        "succeeded",
        "make it blue",
    )
    assert saved.parameters == {"strength": 0.8}  # the api key is never recorded
    assert [i.sha256 for i in saved.inputs] == [hashlib.sha256(source).hexdigest()]
    assert saved.result_source_url == url
    assert saved.result is not None and saved.result.sha256 == hashlib.sha256(output).hexdigest()
    assert saved.duration_ms is not None and saved.duration_ms >= 0
    # No key assigned: the recorder chose the operation id up front, so a replay finds it.
    assert saved.idempotency_key is None


def test_an_async_function_returning_a_pil_image(rec_deco_store: Store) -> None:
    @record("text_to_image", store=rec_deco_store)
    async def draw(prompt: str, width: int = 12) -> Image.Image:
        return Image.new("RGB", (width, 7), "red")

    image = asyncio.run(draw("a red square", width=12))
    assert image.size == (12, 7)
    saved = only(rec_deco_store)
    assert saved.result is not None
    assert (saved.result.width, saved.result.height) == (12, 7)
    assert saved.parameters == {"width": 12}


def test_an_exception_is_recorded_as_a_failure_and_reraised_unchanged(
    rec_deco_store: Store,
) -> None:
    error = ValueError("the provider refused the prompt")

    @record("text_to_image", store=rec_deco_store)
    def generate(prompt: str) -> str:
        raise error

    @record("text_to_image", store=rec_deco_store)
    async def agenerate(prompt: str) -> str:
        raise error

    with pytest.raises(ValueError, match="refused") as caught:
        generate("nope")
    assert caught.value is error
    with pytest.raises(ValueError, match="refused") as caught_async:
        asyncio.run(agenerate("nope again"))
    assert caught_async.value is error
    saved = records(rec_deco_store)
    assert [(r.status, r.error, r.prompt) for r in saved] == [
        ("failed", "the provider refused the prompt", "nope"),
        ("failed", "the provider refused the prompt", "nope again"),
    ]


def test_a_returned_dict_gives_the_result_url_and_is_kept(
    rec_deco_store: Store, file_server: FileServer
) -> None:
    url = file_server.add("r.png", png_bytes())

    @record("text_to_video", store=rec_deco_store)
    def generate(prompt: str) -> dict[str, Any]:
        return {"success": True, "resultUrl": url, "seed": 7}

    generate("a wave")
    saved = only(rec_deco_store)
    assert saved.result_source_url == url and saved.result is not None
    assert saved.parameters == {"return": {"success": True, "resultUrl": url, "seed": 7}}


def test_nested_results_and_plain_text(rec_deco_store: Store, file_server: FileServer) -> None:
    url = file_server.add("n.png", png_bytes())

    class Answer(BaseModel):
        images: list[dict[str, str]]

    @record("text_to_image", store=rec_deco_store)
    def model_answer(prompt: str) -> Answer:
        return Answer(images=[{"url": url}])

    @record("caption", store=rec_deco_store)
    def caption(prompt: str) -> str:
        return "a cat on a mat"

    model_answer("cat")
    caption("describe")
    first, second = records(rec_deco_store)
    assert first.result_source_url == url
    assert second.result is None and second.result_source_url is None
    assert second.parameters == {"return": "a cat on a mat"}


def test_generators_record_their_last_value_and_closing_early_is_a_failure(
    rec_deco_store: Store,
) -> None:
    @record("text_to_image", store=rec_deco_store)
    def steps(prompt: str, n: int) -> Generator[Any, str, None]:
        received: list[str] = []
        for i in range(n):
            received.append((yield f"step {i}"))
        yield {"output": png_bytes(3, 2), "received": received}

    gen = steps("progress", 3)
    assert next(gen) == "step 0"
    assert gen.send("a") == "step 1"
    assert gen.send("b") == "step 2"
    last = gen.send("c")
    assert last["received"] == ["a", "b", "c"]  # send() reaches the function unchanged
    with pytest.raises(StopIteration):
        next(gen)
    early = steps("abandoned", 5)
    next(early)
    early.close()
    done, closed = records(rec_deco_store)
    assert done.status == "succeeded" and done.result is not None
    assert (done.result.width, done.result.height) == (3, 2)
    assert closed.status == "failed" and closed.error is not None
    assert closed.error.startswith("cancelled")


def test_a_thrown_exception_reaches_the_generator_unchanged(rec_deco_store: Store) -> None:
    @record("t", store=rec_deco_store)
    def resilient(prompt: str) -> Generator[str, None, None]:
        try:
            yield "working"
        except KeyError as exc:
            yield f"recovered from {exc.args[0]}"

    gen = resilient("p")
    assert next(gen) == "working"
    assert gen.throw(KeyError("boom")) == "recovered from boom"
    with pytest.raises(StopIteration):
        next(gen)
    saved = only(rec_deco_store)
    assert saved.status == "succeeded"
    assert saved.parameters == {"return": "recovered from boom"}


def test_async_generators_record_too(rec_deco_store: Store) -> None:
    @record("text_to_video", store=rec_deco_store)
    async def frames(prompt: str) -> AsyncIterator[bytes]:
        for i in range(3):
            yield b"frame %d" % i

    @record("text_to_video", store=rec_deco_store)
    async def broken(prompt: str) -> AsyncIterator[bytes]:
        yield b"first"
        raise RuntimeError("the stream broke")

    async def consume() -> list[bytes]:
        got = [chunk async for chunk in frames("waves")]
        with pytest.raises(RuntimeError, match="the stream broke"):
            async for _ in broken("waves"):
                pass
        return got

    assert asyncio.run(consume()) == [b"frame 0", b"frame 1", b"frame 2"]
    ok, failed = records(rec_deco_store)
    assert ok.result is not None and ok.result.size == len(b"frame 2")
    assert (failed.status, failed.error) == ("failed", "the stream broke")


def test_image_arguments_paths_lists_and_uploads(
    rec_deco_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    on_disk = tmp_path / "ref.png"
    on_disk.write_bytes(png_bytes(5, 5, "white"))
    upload = SimpleNamespace(filename="up.png", file=io.BytesIO(png_bytes(6, 6, "black")))

    @record("image_edit_multiple", store=rec_deco_store, image_args=["refs", "upload"])
    def edit(prompt: str, refs: list[Any], upload: Any, mask: bytes, note: str = "x") -> None:
        upload.file.read()  # the function consumes the upload; the recorder still gets it all

    edit("merge", [on_disk, png_bytes(2, 2)], upload, mask=png_bytes(1, 1))
    saved = only(rec_deco_store)
    assert [(i.width, i.height) for i in saved.inputs] == [(5, 5), (2, 2), (6, 6), (1, 1)]
    assert saved.parameters == {"note": "x"}
    assert on_disk.exists()  # the caller's file is read, never moved
    assert os.listdir(temp) == []  # the upload's copy was handed over and deleted once saved


def test_parameters_are_made_json_safe(rec_deco_store: Store) -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<Opaque thing>"

    @record("t", store=rec_deco_store)
    def generate(prompt: str, *extra: Any, **options: Any) -> None:
        pass

    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    generate("p", 1, 2, when=when, ratio=math.nan, tags={"a"}, obj=Opaque(), path=Path("/x"))
    saved = only(rec_deco_store)
    assert saved.parameters == {
        "extra": [1, 2],
        "when": "2024-05-01T12:00:00+00:00",
        "ratio": "nan",
        "tags": ["a"],
        "obj": "<Opaque thing>",
        "path": "/x",
    }


values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary(max_size=20)
    | st.datetimes()
    | st.builds(object),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.frozensets(st.integers(), max_size=3)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(value=values)
def test_json_safe_always_gives_strict_json(value: Any) -> None:
    safe = _json_safe(value)
    assert json.loads(json.dumps(safe, allow_nan=False)) == safe


def test_user_id_from_an_argument_a_name_or_a_callable(rec_deco_store: Store) -> None:
    @record("t", store=rec_deco_store)
    def by_default(prompt: str, user_id: str) -> None:
        pass

    @record("t", store=rec_deco_store, user_id="account")
    def by_name(prompt: str, account: str) -> None:
        pass

    @record("t", store=rec_deco_store, user_id=lambda args: args["ctx"]["uid"])
    def by_callable(prompt: str, ctx: dict[str, str]) -> None:
        pass

    by_default("a", "user_1")
    by_name("b", "user_2")
    by_callable("c", {"uid": "user_3"})
    by_default("d", "not a safe id/../x")  # kept in parameters: the record is not lost for it
    saved = records(rec_deco_store)
    assert [r.user_id for r in saved] == ["user_1", "user_2", "user_3", None]
    assert saved[3].parameters == {"user_id": "not a safe id/../x"}


def test_methods_do_not_record_self(rec_deco_store: Store) -> None:
    class Client:
        @record("t", store=rec_deco_store)
        def generate(self, prompt: str, quality: str = "hd") -> None:
            pass

    Client().generate("p")
    assert only(rec_deco_store).parameters == {"quality": "hd"}


def test_the_default_store_is_looked_up_at_call_time(tmp_path: Path) -> None:
    @record("t")
    def generate(prompt: str) -> str:
        return "ok"

    first = genstore.open_store(tmp_path / "a")
    second = genstore.open_store(tmp_path / "b")
    try:
        genstore.set_default_store(first)
        generate("one")
        genstore.set_default_store(second)
        generate("two")
        assert [r.prompt for r in records(first)] == ["one"]
        assert [r.prompt for r in records(second)] == ["two"]
    finally:
        genstore.set_default_store(None)
        first.close()
        second.close()


def test_no_store_never_breaks_the_function(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("GENSTORE_URL", "nosuchscheme://nowhere")
    genstore.set_default_store(None)

    @record("t")
    def generate(prompt: str) -> str:
        return "still works"

    assert generate("p") == "still works"
    assert generate("p") == "still works"
    warnings = [r for r in caplog.records if "no default store" in r.getMessage()]
    assert len(warnings) == 1  # said once, not on every call


# -- FastAPI: dependency injection and OpenAPI unchanged ---------------------------------------------


class GenerateBody(BaseModel):
    prompt: str
    steps: int = 20


def current_user(x_user: str = Header()) -> str:
    return x_user


def build_app(decorate: Callable[[Any], Any], url: str) -> FastAPI:
    app = FastAPI()

    @app.post("/generate/{style}")
    @decorate
    async def generate(
        style: str, body: GenerateBody, user: str = Depends(current_user), seed: int = 0
    ) -> dict[str, Any]:
        return {"success": True, "resultUrl": url, "style": style, "seed": seed, "user": user}

    @app.get("/caption")
    @decorate
    def caption(prompt: str, user: str = Depends(current_user)) -> dict[str, str]:
        return {"caption": prompt.upper()}

    return app


def test_fastapi_documents_a_recorded_app_exactly_as_the_bare_one(rec_deco_store: Store) -> None:
    recorded = build_app(record("text_to_image", store=rec_deco_store, user_id="user"), "u")
    bare = build_app(lambda fn: fn, "u")
    schema = recorded.openapi()
    assert schema == bare.openapi()
    operation = schema["paths"]["/generate/{style}"]["post"]
    assert {p["name"] for p in operation["parameters"]} == {"style", "seed", "x-user"}
    assert "GenerateBody" in json.dumps(operation["requestBody"])


def test_fastapi_injects_and_records_through_an_asgi_client(
    rec_deco_store: Store, file_server: FileServer
) -> None:
    url = file_server.add("api.png", png_bytes(9, 9))
    app = build_app(record("text_to_image", store=rec_deco_store, user_id="user"), url)

    async def calls() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [
                await client.post(
                    "/generate/anime?seed=3", json={"prompt": "a fox"}, headers={"x-user": "u7"}
                ),
                await client.post("/generate/anime", json={"prompt": "no user header"}),
                await client.get("/caption", params={"prompt": "hi"}, headers={"x-user": "u8"}),
            ]

    generated_response, invalid, caption = asyncio.run(calls())
    assert generated_response.json() == {
        "success": True,
        "resultUrl": url,
        "style": "anime",
        "seed": 3,
        "user": "u7",
    }
    assert invalid.status_code == 422
    assert caption.json() == {"caption": "HI"}  # a sync route: FastAPI's thread pool, unchanged

    generated, captioned = records(rec_deco_store)  # the 422 never reached the function
    assert (generated.prompt, generated.user_id, generated.result_source_url) == (
        "a fox",
        "u7",
        url,
    )
    assert generated.result is not None
    assert generated.parameters == {
        "style": "anime",
        "body": {"prompt": "a fox", "steps": 20},
        "seed": 3,
        "return": generated_response.json(),
    }
    assert (captioned.prompt, captioned.user_id) == ("hi", "u8")
