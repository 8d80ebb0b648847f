"""What the REAL provider clients return, extracted whole and in order.

The clients (``openai``, ``replicate``, ``fal-client``) talk to the fakes of ``fakes.providers`` on
127.0.0.1; each test asserts that the outputs extracted from what the client returned are, in
order, exactly the files the fake served (URLs are downloaded and compared byte for byte).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fakes.providers import FakeProviders
from genstore._recording.extract import extract_results
from genstore._recording.outputs import Output
from genstore._recording.status import error_of, terminal_state


def _contents(outputs: list[Output]) -> list[bytes]:
    """Each output's bytes: URLs fetched from the fake (loopback only), bytes as they are."""
    contents: list[bytes] = []
    for output in outputs:
        if output.kind == "url":
            assert output.value.startswith("http://127.0.0.1:")
            response = httpx.get(output.value, timeout=5)
            response.raise_for_status()
            contents.append(response.content)
        else:
            assert output.kind == "bytes", output
            contents.append(output.value)
    return contents


# -- openai ------------------------------------------------------------------------------------


def test_openai_images_generate_n4_urls(fake: FakeProviders, openai_client: Any) -> None:
    response = openai_client.images.generate(
        model="black-forest-labs/FLUX.1-schnell", prompt="a cat", n=4, response_format="url"
    )
    outputs = extract_results(response)
    assert [o.kind for o in outputs] == ["url"] * 4
    assert [o.value for o in outputs] == [image.url for image in response.data]
    assert _contents(outputs) == fake.served[-1]


def test_openai_images_generate_n4_b64_json(fake: FakeProviders, openai_client: Any) -> None:
    response = openai_client.images.generate(model="gpt-image-2", prompt="a cat", n=4)
    outputs = extract_results(response)
    assert [(o.kind, o.content_type) for o in outputs] == [("bytes", "image/png")] * 4
    assert _contents(outputs) == fake.served[-1]


def test_openai_image_stream_keeps_finals_never_previews(
    fake: FakeProviders, openai_client: Any
) -> None:
    stream = openai_client.images.generate(
        model="gpt-image-2", prompt="a cat", n=2, stream=True, partial_images=2
    )
    events = list(stream)
    assert [e.type for e in events].count("image_generation.partial_image") == 4
    outputs = extract_results(events)
    assert _contents(outputs) == fake.served[-1]
    assert not set(_contents(outputs)) & set(fake.previews)
    assert extract_results(events[0]) == []  # a preview alone carries no result


def test_an_unread_openai_stream_is_not_consumed(fake: FakeProviders, openai_client: Any) -> None:
    stream = openai_client.images.generate(model="gpt-image-2", prompt="x", stream=True)
    assert extract_results(stream) == []
    assert [e.type for e in stream] == ["image_generation.completed"]  # still all there


# -- replicate ---------------------------------------------------------------------------------


def test_replicate_run_returns_file_outputs_extracted_in_order(
    fake: FakeProviders, replicate_client: Any
) -> None:
    from replicate.helpers import FileOutput

    output = replicate_client.run(
        "black-forest-labs/flux-schnell", input={"prompt": "a cat", "num_outputs": 4}
    )
    assert [type(o) for o in output] == [FileOutput] * 4
    assert any(h.get("prefer", "").startswith("wait") for _, _, h in fake.requests)
    outputs = extract_results(output)
    assert [o.kind for o in outputs] == ["bytes"] * 4
    assert _contents(outputs) == fake.served[-1] == [o.read() for o in output]


def test_replicate_polled_run_returns_url_list(fake: FakeProviders, replicate_client: Any) -> None:
    output = replicate_client.run(
        "black-forest-labs/flux-dev", input={"prompt": "a cat", "num_outputs": 3}, wait=False
    )
    assert all(isinstance(o, str) for o in output)  # http URLs stay strings in this client
    outputs = extract_results(output)
    assert [o.value for o in outputs] == output
    assert _contents(outputs) == fake.served[-1]


def test_replicate_file_output_objects_with_http_urls(
    fake: FakeProviders, replicate_client: Any
) -> None:
    from replicate.helpers import FileOutput

    made = fake.generation("image", 2)
    files = [FileOutput(fake.file_url(name), replicate_client) for name, _, _ in made]
    assert _contents(extract_results(files)) == fake.served[-1]
    assert _contents(extract_results(files[1])) == [fake.served[-1][1]]


def test_replicate_prediction_object_status_and_outputs(
    fake: FakeProviders, replicate_client: Any
) -> None:
    prediction = replicate_client.models.predictions.create(
        model="black-forest-labs/flux-dev", input={"prompt": "a cat", "num_outputs": 2}
    )
    assert terminal_state(prediction) is None  # starting
    assert extract_results(prediction) == []
    prediction.wait()
    assert terminal_state(prediction) == "succeeded"
    assert error_of(prediction) is None
    assert _contents(extract_results(prediction)) == fake.served[-1]


def test_replicate_failed_prediction(fake: FakeProviders, replicate_client: Any) -> None:
    from replicate.exceptions import ModelError

    with pytest.raises(ModelError) as raised:
        replicate_client.run("owner/model", input={"prompt": "x", "fail": True})
    prediction = raised.value.prediction
    assert terminal_state(prediction) == "failed"
    assert error_of(prediction) == "CUDA out of memory"
    assert extract_results(prediction) == []


# -- fal ---------------------------------------------------------------------------------------


def test_fal_run_four_images(fake: FakeProviders, fal_client: Any) -> None:
    result = fal_client.run("fal-ai/flux/dev", arguments={"prompt": "a cat", "num_images": 4})
    outputs = extract_results(result)
    assert [o.value for o in outputs] == [image["url"] for image in result["images"]]
    assert _contents(outputs) == fake.served[-1]


def test_fal_subscribe_video(fake: FakeProviders, fal_client: Any) -> None:
    result = fal_client.subscribe(
        "fal-ai/kling-video/v2/master/text-to-video", arguments={"prompt": "a cat"}, interval=0.01
    )
    assert any(
        path.endswith("/status") for _, path, _ in fake.requests
    )  # it went through the queue
    outputs = extract_results(result)
    assert _contents(outputs) == fake.served[-1]
    assert len(outputs) == 1


def test_fal_run_audio(fake: FakeProviders, fal_client: Any) -> None:
    result = fal_client.run("fal-ai/minimax/speech-02-hd", arguments={"text": "hello"})
    outputs = extract_results(result)
    assert _contents(outputs) == fake.served[-1]
    assert len(outputs) == 1


def test_fal_queue_status_is_terminal_only_when_completed(
    fake: FakeProviders, fal_client: Any
) -> None:
    handle = fal_client.submit("fal-ai/flux/dev", arguments={"prompt": "x"})
    first = httpx.get(handle.status_url, headers={"Authorization": "Key k"}, timeout=5).json()
    second = httpx.get(handle.status_url, headers={"Authorization": "Key k"}, timeout=5).json()
    assert (terminal_state(first), terminal_state(second)) == (None, "succeeded")
    assert extract_results(second) == []  # the status names where the result is, not the result
