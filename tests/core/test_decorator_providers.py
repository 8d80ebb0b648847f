"""``@genstore.record`` on functions returning what the REAL provider clients return: every
output is stored, in order, byte for byte what the provider (a fake on 127.0.0.1) served.

These are the decorator's rows of the results issue's table ("kept today: 0 of 4").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import genstore
import pytest
from fakes.providers import FakeProviders
from genstore import OperationRecord

WAIT = 30.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[genstore.Store]:
    with genstore.open_store(tmp_path / "store") as s:
        yield s


def only_record(store: genstore.Store) -> OperationRecord:
    assert store.recorder.flush(WAIT)
    (record,) = store.history().items
    return record


def stored_bytes(store: genstore.Store, record: OperationRecord) -> list[bytes]:
    return [store.read_artifact(ref) for ref in record.results]


def test_openai_images_generate_n4_urls(
    store: genstore.Store, fake: FakeProviders, openai_client: Any
) -> None:
    @genstore.record("text_to_image", store=store)
    def generate(prompt: str) -> Any:
        return openai_client.images.generate(
            model="dall-e-3", prompt=prompt, n=4, response_format="url"
        )

    response = generate("un chat")
    record = only_record(store)
    assert stored_bytes(store, record) == fake.served[-1] and len(record.results) == 4
    assert [r.source_url for r in record.results] == [d.url for d in response.data]
    assert record.prompt == "un chat" and record.result_error is None


def test_openai_images_generate_n4_b64_json(
    store: genstore.Store, fake: FakeProviders, openai_client: Any
) -> None:
    @genstore.record("text_to_image", store=store)
    def generate(prompt: str) -> Any:
        return openai_client.images.generate(model="gpt-image-2", prompt=prompt, n=4)

    generate("un chat")
    record = only_record(store)
    assert stored_bytes(store, record) == fake.served[-1] and len(record.results) == 4
    # The base64 images are stored as results, never kept again inside the parameters.
    assert isinstance(record.parameters, dict) and isinstance(record.parameters["return"], dict)
    kept = record.parameters["return"]["data"]
    assert isinstance(kept, list) and len(kept) == 4
    assert all(isinstance(i, dict) and str(i["b64_json"]).endswith("as a result>") for i in kept)


def test_replicate_run_file_outputs(
    store: genstore.Store, fake: FakeProviders, replicate_client: Any
) -> None:
    @genstore.record("text_to_image", store=store)
    def generate(prompt: str) -> Any:
        return replicate_client.run(
            "black-forest-labs/flux-schnell", input={"prompt": prompt, "num_outputs": 4}
        )

    generate("un chat")
    record = only_record(store)
    assert stored_bytes(store, record) == fake.served[-1] and len(record.results) == 4


def test_a_list_of_four_urls(
    store: genstore.Store, fake: FakeProviders, replicate_client: Any
) -> None:
    @genstore.record("text_to_image", store=store)
    def generate(prompt: str) -> Any:
        return replicate_client.run(
            "black-forest-labs/flux-dev", input={"prompt": prompt, "num_outputs": 4}, wait=False
        )

    output = generate("un chat")
    assert isinstance(output, list) and len(output) == 4
    record = only_record(store)
    assert stored_bytes(store, record) == fake.served[-1]
    assert [r.source_url for r in record.results] == output


def test_fal_four_images(store: genstore.Store, fake: FakeProviders, fal_client: Any) -> None:
    @genstore.record("text_to_image", store=store)
    def generate(prompt: str) -> Any:
        return fal_client.run("fal-ai/flux/dev", arguments={"prompt": prompt, "num_images": 4})

    generate("un chat")
    record = only_record(store)
    assert stored_bytes(store, record) == fake.served[-1] and len(record.results) == 4


def test_fal_video(store: genstore.Store, fake: FakeProviders, fal_client: Any) -> None:
    @genstore.record("text_to_video", store=store)
    async def generate(prompt: str) -> Any:
        return fal_client.subscribe(
            "fal-ai/kling-video/v2/master/text-to-video",
            arguments={"prompt": prompt},
            interval=0.01,
        )

    import asyncio

    asyncio.run(generate("un chat"))
    record = only_record(store)
    assert stored_bytes(store, record) == fake.served[-1] and len(record.results) == 1


def test_a_success_without_a_result_says_so(
    store: genstore.Store, caplog: pytest.LogCaptureFixture
) -> None:
    @genstore.record("text_to_image", store=store)
    def generate(prompt: str) -> dict[str, Any]:
        return {"status": "ok", "message": "nothing to show"}

    generate("a")
    generate("b")
    assert store.recorder.flush(WAIT)
    records = store.history().items
    assert [r.result_error for r in records] == ["no result found in the return value"] * 2
    assert all(r.status.value == "succeeded" for r in records)
    warnings = [r for r in caplog.records if "no result found" in r.getMessage()]
    assert len(warnings) == 1  # one warning per function, not per call


def test_a_function_declared_result_less_has_no_note(store: genstore.Store) -> None:
    @genstore.record("moderation", store=store, results=False)
    def check(prompt: str) -> dict[str, bool]:
        return {"flagged": False}

    check("a")
    record = only_record(store)
    assert record.result_error is None and record.results == []
    assert record.parameters == {"return": {"flagged": False}}


def test_relative_urls_need_a_base_url(store: genstore.Store, fake: FakeProviders) -> None:
    made = fake.generation("image", 1)
    name = made[0][0]
    relative = "/" + fake.file_url(name).split("/", 3)[3]

    @genstore.record("text_to_image", store=store)
    def without_base(prompt: str) -> dict[str, Any]:
        return {"images": [{"url": relative}]}

    @genstore.record("text_to_image", store=store, base_url=fake.url)
    def with_base(prompt: str) -> dict[str, Any]:
        return {"images": [{"url": relative}]}

    without_base("a")
    with_base("b")
    assert store.recorder.flush(WAIT)
    by_prompt = {r.prompt: r for r in store.history().items}
    assert by_prompt["a"].results == []
    assert "needs a base_url" in (by_prompt["a"].result_error or "")
    assert stored_bytes(store, by_prompt["b"]) == fake.served[-1]
