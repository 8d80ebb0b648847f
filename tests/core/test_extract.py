"""Result extraction: each provider shape, the general case, the bounds, plugins, job status."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import genstore
import pytest
from genstore import _plugins
from genstore._recording import extract as extract_module
from genstore._recording.extract import MAX_DEPTH, MAX_OUTPUTS, extract_results
from genstore._recording.outputs import Output, decode_data_url, string_output
from genstore._recording.status import error_of, terminal_state
from helpers import png_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import BaseModel

PNG = png_bytes(4, 4, "blue")
PNG2 = png_bytes(5, 5, "green")
B64 = base64.b64encode(PNG).decode()
B64_2 = base64.b64encode(PNG2).decode()
U1, U2, U3, U4 = (f"https://cdn.example/out/{i}.png" for i in range(1, 5))


def urls(value: object) -> list[str]:
    """The URL outputs of ``value``, asserting every output found is a URL."""
    found = extract_results(value)
    assert all(o.kind == "url" for o in found), found
    return [o.value for o in found]


def contents(value: object) -> list[bytes]:
    found = extract_results(value)
    assert all(o.kind == "bytes" for o in found), found
    return [o.value for o in found]


# -- OpenAI and compatible ---------------------------------------------------------------------


def test_openai_data_urls_all_in_order() -> None:
    body = {"created": 1, "data": [{"url": u, "revised_prompt": "p"} for u in (U1, U2, U3, U4)]}
    assert urls(body) == [U1, U2, U3, U4]


def test_openai_data_b64_json_all_in_order() -> None:
    body = {"created": 1, "data": [{"b64_json": B64}, {"b64_json": B64_2}]}
    found = extract_results(body)
    assert [(o.kind, o.value, o.content_type) for o in found] == [
        ("bytes", PNG, "image/png"),
        ("bytes", PNG2, "image/png"),
    ]


def test_openai_item_with_both_prefers_the_bytes_over_an_expiring_url() -> None:
    assert contents({"data": [{"url": U1, "b64_json": B64}]}) == [PNG]


def test_openai_stream_events_keep_finals_and_drop_previews() -> None:
    partial = {
        "type": "image_generation.partial_image",
        "b64_json": B64_2,
        "partial_image_index": 0,
    }
    final = {"type": "image_generation.completed", "b64_json": B64}
    edit = {"type": "image_edit.completed", "b64_json": B64_2}
    assert extract_results(partial) == []
    assert extract_results({**partial, "type": "image_edit.partial_image"}) == []
    assert contents([partial, final, partial, edit]) == [PNG, PNG2]


def test_openai_responses_api_image_generation_call() -> None:
    call = {"type": "image_generation_call", "id": "ig_1", "status": "completed", "result": B64}
    message = {"type": "message", "content": [{"type": "output_text", "text": U1}]}
    response = {"id": "resp_1", "object": "response", "output": [message, call]}
    assert contents(response) == [PNG]
    assert contents({"type": "response.completed", "response": response}) == [PNG]
    assert contents({"type": "response.output_item.done", "item": call}) == [PNG]
    preview = {"type": "response.image_generation_call.partial_image", "partial_image_b64": B64}
    assert extract_results(preview) == []


# -- Replicate ---------------------------------------------------------------------------------


def test_replicate_output_url_and_url_list() -> None:
    assert urls(U1) == [U1]
    assert urls([U1, U2, U3]) == [U1, U2, U3]


def test_replicate_prediction_json() -> None:
    prediction = {
        "id": "p1",
        "status": "succeeded",
        "input": {"image": "https://input.example/in.png"},
        "output": [U1, U2],
        "error": None,
        "urls": {"get": "https://api.replicate.com/v1/predictions/p1"},
    }
    assert urls(prediction) == [U1, U2]  # never the input image nor the API's own URLs
    assert urls({**prediction, "status": "failed", "error": "boom"}) == []
    assert urls({**prediction, "status": "canceled"}) == []
    data_uri = f"data:image/png;base64,{B64}"
    assert contents({**prediction, "status": "processing", "output": [data_uri]}) == [PNG]


def test_replicate_text_output_is_no_result() -> None:
    assert extract_results({"id": "p", "status": "succeeded", "output": ["Hello", " world"]}) == []


# -- fal, Stability, BFL -----------------------------------------------------------------------


def test_fal_shapes() -> None:
    images = {"images": [{"url": u, "width": 8} for u in (U1, U2, U3, U4)], "prompt": U1[:10]}
    assert urls(images) == [U1, U2, U3, U4]
    assert urls({"image": {"url": U1, "content_type": "image/png"}, "seed": 3}) == [U1]
    assert urls({"video": {"url": U2, "content_type": "video/mp4"}}) == [U2]
    assert urls({"audio": {"url": U3}, "duration_ms": 1200}) == [U3]
    assert urls({"audio_file": {"url": U4}}) == [U4]


def test_stability_artifacts_skip_errored_ones() -> None:
    body = {
        "artifacts": [
            {"base64": B64, "seed": 1, "finishReason": "SUCCESS"},
            {"base64": B64_2, "seed": 2, "finishReason": "ERROR"},
            {"base64": B64_2, "seed": 3, "finishReason": "CONTENT_FILTERED"},
        ]
    }
    assert contents(body) == [PNG, PNG2]


def test_stability_v2_image_field_and_raw_bytes() -> None:
    assert contents({"image": B64, "finish_reason": "SUCCESS", "seed": 7}) == [PNG]
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4)).save(jpeg, "JPEG")
    jpeg_b64 = base64.b64encode(jpeg.getvalue()).decode()
    assert jpeg_b64.startswith("/9j/")  # looks like a relative URL, is an image
    found = extract_results({"image": jpeg_b64})
    assert [(o.kind, o.value, o.content_type) for o in found] == [
        ("bytes", jpeg.getvalue(), "image/jpeg")
    ]
    found = extract_results(PNG)
    assert [(o.kind, o.value, o.content_type) for o in found] == [("bytes", PNG, "image/png")]


def test_bfl_result_sample() -> None:
    body = {"id": "t1", "status": "Ready", "result": {"sample": U1, "prompt": "x", "seed": 1}}
    assert urls(body) == [U1]


# -- ComfyUI -----------------------------------------------------------------------------------


def _comfy_entry(*files: tuple[str, str, str]) -> dict[str, Any]:
    outputs = {
        str(9 + i): {"images": [{"filename": f, "subfolder": s, "type": t}]}
        for i, (f, s, t) in enumerate(files)
    }
    return {
        "prompt": [1, "id", {}, {}, ["9"]],
        "outputs": outputs,
        "status": {"status_str": "success", "completed": True, "messages": []},
    }


def test_comfy_history_gives_view_urls_in_order() -> None:
    history = {
        "a1": _comfy_entry(("ComfyUI_00001_.png", "", "output"), ("pre.png", "", "temp")),
        "b2": _comfy_entry(("my img&1.png", "sub/dir", "output")),
    }
    assert urls(history) == [
        "/view?filename=ComfyUI_00001_.png&subfolder=&type=output",
        "/view?filename=my+img%261.png&subfolder=sub%2Fdir&type=output",
    ]
    found = extract_results(history)
    assert all(o.is_relative_url for o in found)


def test_comfy_previews_count_only_when_nothing_was_saved() -> None:
    entry = _comfy_entry(("pre.png", "", "temp"))
    assert urls({"p": entry}) == ["/view?filename=pre.png&subfolder=&type=temp"]


def test_comfy_websocket_executed_message() -> None:
    message = {
        "type": "executed",
        "data": {
            "node": "9",
            "prompt_id": "a1",
            "output": {"images": [{"filename": "x.png", "subfolder": "", "type": "output"}]},
        },
    }
    assert urls(message) == ["/view?filename=x.png&subfolder=&type=output"]


# -- the general case --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["resultUrl", "result_url", "url", "image_url", "imageUrl", "video_url", "output", "images"],
)
def test_the_keys_the_decorator_and_middleware_used(key: str) -> None:
    assert urls({key: U1, "prompt": "p"}) == [U1]
    assert urls({key: [U1, U2]}) == [U1, U2]  # every item, not the first only


def test_result_and_data_wrappers() -> None:
    assert urls({"result": {"url": U1}}) == [U1]
    assert urls({"data": {"images": [U1, U2]}}) == [U1, U2]
    assert urls({"code": 200, "data": {"id": "x", "status": "completed", "outputs": [U3]}}) == [U3]


def test_one_result_named_twice_is_found_once() -> None:
    assert urls({"url": U1, "image_url": U1, "images": [{"url": U1}]}) == [U1]


def test_data_urls_bytes_and_content_types() -> None:
    assert contents(f"data:image/png;base64,{B64}") == [PNG]
    found = extract_results("data:text/plain,hello%20world")
    assert [(o.value, o.content_type) for o in found] == [(b"hello world", "text/plain")]
    sniffed = extract_results(f"data:;base64,{B64}")
    assert [o.content_type for o in sniffed] == ["image/png"]
    assert extract_results("data:image/png;base64,!!!") == []
    assert extract_results("data:image/png") == []


def test_relative_urls_are_urls_for_the_caller_to_resolve() -> None:
    (found,) = extract_results({"url": "/files/out.png"})
    assert (found.kind, found.value, found.is_relative_url) == ("url", "/files/out.png", True)
    assert extract_results({"url": "//evil.example/x.png"}) == []  # names a host: not ours
    assert not string_output(U1).is_relative_url  # type: ignore[union-attr]


def test_plain_text_is_never_taken_for_content() -> None:
    text_b64 = base64.b64encode(b"hello world, this is text and not an image").decode()
    assert extract_results({"output": "a cat on a mat"}) == []
    assert extract_results({"output": text_b64}) == []
    assert extract_results({"result": "OK"}) == []


def test_pil_images_paths_and_files(tmp_path: Path) -> None:
    image = Image.new("RGB", (2, 2))
    path = tmp_path / "out.png"
    binary = io.BytesIO(PNG)
    found = extract_results([image, path, binary])
    assert [(o.kind, o.value) for o in found] == [
        ("image", image),
        ("path", str(path)),
        ("file", binary),
    ]
    assert binary.tell() == 0  # not read
    assert extract_results(io.StringIO("text")) == []


class _Image(BaseModel):
    url: str | None = None
    b64_json: str | None = None


class _Response(BaseModel, extra="allow"):
    created: int
    data: list[_Image]


@dataclasses.dataclass
class _Job:
    id: str
    video: dict[str, str]


class _FileLike:
    def __init__(self, url: str) -> None:
        self.url = url

    def read(self) -> bytes:
        raise AssertionError("extraction must not download")


def test_models_dataclasses_and_objects_with_a_url() -> None:
    model = _Response(created=1, data=[_Image(url=U1), _Image(b64_json=B64)])
    found = extract_results(model)
    assert [(o.kind, o.value) for o in found] == [("url", U1), ("bytes", PNG)]
    assert urls(_Job(id="j", video={"url": U2})) == [U2]
    assert urls([_FileLike(U3), _FileLike(U4)]) == [U3, U4]


def test_an_sdk_item_with_both_gives_its_bytes_as_a_dict_does() -> None:
    assert contents(_Response(created=1, data=[_Image(url=U1, b64_json=B64)])) == [PNG]


def test_a_model_extra_field_is_looked_into() -> None:
    model = _Response.model_validate({"created": 1, "data": [], "images": [{"url": U1}]})
    assert urls(model) == [U1]


def test_starlette_responses() -> None:
    from starlette.responses import JSONResponse, Response

    assert contents(Response(PNG, media_type="image/png")) == [PNG]
    assert urls(JSONResponse({"images": [{"url": U1}, {"url": U2}]})) == [U1, U2]
    assert extract_results(Response(b"not json", media_type="application/json")) == []


def test_an_http_client_response_is_not_its_request_url() -> None:
    import httpx

    response = httpx.Response(200, json={"ok": True}, request=httpx.Request("GET", U1))

    class Legacy:  # requests.Response: a str .url, status_code and headers
        url, status_code, headers = U1, 200, {"content-type": "application/json"}

    assert extract_results(response) == []
    assert extract_results(Legacy()) == []


def test_generators_are_never_consumed() -> None:
    pulled: list[str] = []

    def gen() -> Iterator[str]:
        pulled.append("x")
        yield U1

    assert extract_results(gen()) == []
    assert extract_results(iter([U1])) == []
    assert pulled == []
    assert extract_results({U1, U2}) == []  # a set has no order to keep


def test_a_hostile_object_hides_nothing_else() -> None:
    class Hostile:
        @property
        def url(self) -> str:
            raise RuntimeError("boom")

    assert urls([U1, Hostile(), U2]) == [U1, U2]


# -- bounds ------------------------------------------------------------------------------------


def test_outputs_are_capped_keeping_the_first() -> None:
    many = [f"https://cdn.example/{i}.png" for i in range(MAX_OUTPUTS * 3)]
    assert urls(many) == many[:MAX_OUTPUTS]


@given(st.integers(min_value=0, max_value=MAX_DEPTH + 20))
def test_depth_is_bounded(depth: int) -> None:
    value: object = U1
    for _ in range(depth):
        value = {"result": value}
    assert urls(value) == ([U1] if depth <= MAX_DEPTH else [])


def test_a_huge_response_costs_bounded_work() -> None:
    wide = {"data": {"images": [[["not a url"] * 100] * 100] * 100 + [U1]}}  # 10^6 leaves
    assert urls(wide) == []  # the node budget ran out before the end: bounded, not exhaustive


# -- properties --------------------------------------------------------------------------------

_keys = st.sampled_from(
    ["url", "images", "image", "output", "data", "result", "b64_json", "status", "type", "x"]
)
_json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
_json = st.recursive(
    _json_leaves | st.sampled_from([U1, "/v", "data:image/png;base64," + B64, B64]),
    lambda inner: (
        st.lists(inner, max_size=6) | st.dictionaries(_keys | st.text(), inner, max_size=6)
    ),
    max_leaves=60,
)


@settings(max_examples=300)
@given(_json)
def test_never_raises_and_stays_bounded_on_arbitrary_json(value: object) -> None:
    found = extract_results(value)
    assert len(found) <= MAX_OUTPUTS
    assert all(isinstance(o, Output) for o in found)
    assert terminal_state(value) in (None, "succeeded", "failed")
    message = error_of(value)
    assert message is None or (isinstance(message, str) and len(message) <= 2000)
    json.dumps([o.value for o in found if o.kind == "url"])


def _carrier(draw: st.DrawFn, index: int) -> tuple[object, list[str]]:
    """A value in one of the known shapes carrying 1-3 distinct URLs, and those URLs."""
    n = draw(st.integers(1, 3))
    carried = [f"https://cdn.example/{index}-{i}.png" for i in range(n)]
    shape = draw(st.sampled_from(["str", "url", "fal", "openai", "prediction", "model", "obj"]))
    if shape == "str":
        return carried[0], carried[:1]
    if shape == "url":
        return {"url": carried[0], "seed": 1}, carried[:1]
    if shape == "fal":
        return {"images": [{"url": u} for u in carried]}, carried
    if shape == "openai":
        return {"created": 1, "data": [{"url": u} for u in carried]}, carried
    if shape == "prediction":
        return {"id": "p", "status": "succeeded", "output": carried}, carried
    if shape == "model":
        return _Response(created=1, data=[_Image(url=u) for u in carried]), carried
    return [_FileLike(u) for u in carried], carried


@st.composite
def _carriers(draw: st.DrawFn) -> tuple[object, list[str]]:
    parts = [_carrier(draw, i) for i in range(draw(st.integers(0, 6)))]
    expected = [u for _, carried in parts for u in carried]
    return [value for value, _ in parts], expected


@given(_carriers())
def test_every_output_is_found_in_order(case: tuple[object, list[str]]) -> None:
    value, expected = case
    assert urls(value) == expected


@given(st.binary(min_size=1, max_size=300), st.sampled_from(["image/png", "video/mp4", ""]))
def test_data_urls_round_trip(data: bytes, media: str) -> None:
    encoded = base64.b64encode(data).decode()
    decoded = decode_data_url(f"data:{media};base64,{encoded}")
    assert decoded is not None and decoded[0] == data
    assert contents({"data": [{"b64_json": encoded}]}) == [data]


# -- plugins -----------------------------------------------------------------------------------


class _AcmePlugin:
    """Teaches ``{"acme_asset": {"href": ...}}``, and declines everything else."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    @genstore.hookimpl
    def genstore_extract_results(self, value: object) -> list[object] | None:
        self.seen.append(value)
        if isinstance(value, dict) and isinstance(value.get("acme_asset"), dict):
            return [value["acme_asset"]["href"], PNG]
        return None


@pytest.fixture
def acme() -> Iterator[_AcmePlugin]:
    plugin = _AcmePlugin()
    genstore.register_plugin(plugin, name="test-acme")
    yield plugin
    _plugins.unregister_plugin("test-acme")


def test_the_builtin_extractor_is_a_plugin_registered_by_entry_point() -> None:
    pm = _plugins.get_plugin_manager()
    assert pm.get_plugin("extract") is extract_module


def test_a_plugin_teaches_a_shape_at_the_top_and_nested(acme: _AcmePlugin) -> None:
    asset = {"acme_asset": {"href": U2}}
    found = extract_results(asset)
    assert [(o.kind, o.value) for o in found] == [("url", U2), ("bytes", PNG)]
    nested = extract_results([U1, {"acme_asset": {"href": U3}}, U4])
    assert [o.value for o in nested] == [U1, U3, PNG, U4]
    assert [o.value for o in extract_results({"images": [asset]})] == [U2, PNG]


def test_a_plugin_is_consulted_before_the_builtin_shapes() -> None:
    class Override:
        @genstore.hookimpl
        def genstore_extract_results(self, value: object) -> list[object] | None:
            return [] if isinstance(value, dict) and "data" in value else None

    genstore.register_plugin(Override(), name="test-override")
    try:
        assert extract_results({"data": [{"url": U1}]}) == []
        assert urls({"images": [U1]}) == [U1]
    finally:
        _plugins.unregister_plugin("test-override")


def test_a_failing_or_confused_plugin_is_skipped(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @genstore.hookimpl
        def genstore_extract_results(self, value: object) -> list[object] | None:
            raise RuntimeError("plugin bug")

    class Confused:
        @genstore.hookimpl
        def genstore_extract_results(self, value: object) -> object:
            return U3  # not a list

    genstore.register_plugin(Broken(), name="test-broken")
    genstore.register_plugin(Confused(), name="test-confused")
    try:
        with caplog.at_level(logging.WARNING):
            assert urls({"images": [U1, U2]}) == [U1, U2]
    finally:
        _plugins.unregister_plugin("test-broken")
        _plugins.unregister_plugin("test-confused")
    assert "plugin bug" in caplog.text and "test-confused" in caplog.text


def test_without_the_builtin_plugin_only_plugins_answer() -> None:
    pm = _plugins.get_plugin_manager()
    pm.unregister(name="extract")
    try:
        assert extract_results({"url": U1}) == []
    finally:
        pm.register(extract_module, name="extract")
    assert urls({"url": U1}) == [U1]


# -- job status --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "state", "error"),
    [
        ({"id": "p", "status": "starting", "output": None}, None, None),
        ({"id": "p", "status": "processing"}, None, None),
        ({"id": "p", "status": "succeeded", "output": [U1], "error": None}, "succeeded", None),
        ({"id": "p", "status": "failed", "error": "NSFW detected"}, "failed", "NSFW detected"),
        ({"id": "p", "status": "canceled", "error": None}, "failed", "canceled"),
        ({"id": "v", "object": "video", "status": "completed"}, "succeeded", None),
        ({"status": "failed", "error": {"code": "x", "message": "quota"}}, "failed", "quota"),
        ({"status": "queued"}, None, None),
        ({"status": "IN_QUEUE", "queue_position": 2}, None, None),
        ({"status": "COMPLETED", "logs": None, "metrics": {}}, "succeeded", None),
        ({"status": "COMPLETED", "error": "runner crashed"}, "failed", "runner crashed"),
        ({"id": "t", "status": "Ready", "result": {"sample": U1}}, "succeeded", None),
        ({"id": "t", "status": "Content Moderated"}, "failed", "Content Moderated"),
        ({"id": "t", "status": "Pending"}, None, None),
        ({"state": "completed"}, "succeeded", None),
        ({"task_status": "succeed"}, "succeeded", None),
        ({"code": 0, "data": {"status": "success", "outputs": [U1]}}, "succeeded", None),
        ({"error": {"message": "invalid prompt"}}, "failed", "invalid prompt"),
        ({"url": U1}, None, None),
        ("succeeded", None, None),
        (None, None, None),
    ],
)
def test_terminal_state_and_error(body: object, state: str | None, error: str | None) -> None:
    assert terminal_state(body) == state
    assert error_of(body) == error


def test_comfy_history_status() -> None:
    ok = {"a1": _comfy_entry(("x.png", "", "output"))}
    assert terminal_state(ok) == "succeeded"
    failed = _comfy_entry()
    failed["status"] = {
        "status_str": "error",
        "completed": False,
        "messages": [["execution_error", {"exception_message": "CUDA OOM", "node_id": "3"}]],
    }
    assert terminal_state({"a1": failed}) == "failed"
    assert error_of({"a1": failed}) == "CUDA OOM"


def test_status_of_sdk_objects() -> None:
    @dataclasses.dataclass
    class Prediction:
        status: str
        error: str | None

    assert terminal_state(Prediction("failed", "boom")) == "failed"
    assert error_of(Prediction("failed", "boom")) == "boom"
    assert error_of({"status": "failed", "error": "x" * 5000}) == "x" * 1999 + "…"


def test_a_deprecated_model_field_is_read_without_a_warning() -> None:
    from pydantic import Field

    class Old(BaseModel):
        image_url: str = Field(deprecated="use url")
        status: str = Field("succeeded", deprecated="use state")

    old = Old(image_url=U1)
    assert urls(old) == [U1]  # pytest turns warnings into errors: none was raised
    assert terminal_state(old) == "succeeded"
