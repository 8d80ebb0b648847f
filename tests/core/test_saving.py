"""The save path: many outputs in order, operations that finish later, and what a v1 record
becomes."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import genstore
import pytest
from genstore import (
    BackendUnavailable,
    InvalidInput,
    NotFound,
    OperationRecord,
    OperationStatus,
    _plugins,
)
from genstore._keys import operation_record_key
from genstore._records import SaveResult
from genstore._save_request import SaveRequest
from helpers import FileServer, png_bytes


@pytest.fixture
def store(tmp_path: Path) -> Iterator[genstore.Store]:
    with genstore.open_store(tmp_path / "store") as s:
        yield s


def four_images(file_server: FileServer) -> tuple[list[str], list[bytes]]:
    bodies = [
        png_bytes(4 + i, 4, color) for i, color in enumerate(["red", "green", "blue", "gray"])
    ]
    urls = [file_server.add(f"out{i}.png", body) for i, body in enumerate(bodies)]
    return urls, bodies


def test_every_result_url_is_kept_in_order(store: genstore.Store, file_server: FileServer) -> None:
    urls, bodies = four_images(file_server)
    saved = store.save_complete_operation(operation_type="text_to_image", result_urls=urls)
    record = store.get_operation(saved.operation_id)
    assert [store.read_artifact(ref) for ref in record.results] == bodies
    assert record.result == record.results[0]
    assert [ref.key.rsplit("/", 1)[1].split("_out")[1] for ref in record.results] == [
        ".png",
        "-1.png",
        "-2.png",
        "-3.png",
    ]
    assert [ref.source_url for ref in record.results] == urls
    assert record.result_error is None and record.result_source_url == urls[0]


def test_signing_parameters_never_reach_the_record(
    store: genstore.Store, file_server: FileServer
) -> None:
    url = file_server.add("signed.png", png_bytes())
    signed = (
        f"{url}?X-Amz-Signature=abc123&X-Amz-Credential=AKIA&token=t0k&sig=s1g&se=2030"
        "&Key-Pair-Id=K&Signature=S&width=512#frag"
    )
    saved = store.save_complete_operation(operation_type="t", result_urls=[signed])
    assert saved.record.results[0].source_url == f"{url}?width=512"
    assert saved.record.result_source_url == f"{url}?width=512"
    text = saved.record.model_dump_json()
    for secret in ("abc123", "AKIA", "t0k", "s1g", "frag"):
        assert secret not in text


def test_one_failed_download_keeps_the_others(
    store: genstore.Store, file_server: FileServer
) -> None:
    urls, bodies = four_images(file_server)
    urls[1] = file_server.url("missing.png")
    saved = store.save_complete_operation(operation_type="text_to_image", result_urls=urls)
    record = saved.record
    assert [store.read_artifact(ref) for ref in record.results] == [bodies[0], *bodies[2:]]
    assert record.status is OperationStatus.SUCCEEDED
    assert record.result_error is not None
    assert record.result_error.startswith("output 2 of 4: ") and "404" in record.result_error
    # The keys keep the provider's positions: the third output is still _out-2.
    assert record.results[1].key.endswith("_out-2.png")


def test_results_given_as_bytes_and_data_urls(store: genstore.Store) -> None:
    first, second = png_bytes(3, 3, "red"), png_bytes(5, 5, "blue")
    saved = store.save_complete_operation(operation_type="t", results=[first, second])
    assert [store.read_artifact(r) for r in saved.record.results] == [first, second]
    data_url = "data:image/png;base64," + base64.b64encode(second).decode()
    again = store.save_complete_operation(operation_type="t", result_url=data_url)
    assert store.read_artifact(again.record.results[0]) == second
    assert again.record.results[0].source_url is None  # the data is the output, not a source
    assert again.record.result_source_url is None


@pytest.mark.parametrize(
    "outputs",
    [
        {"result": b"a", "results": [b"b"]},
        {"result_url": "http://127.0.0.1/a", "result_urls": ["http://127.0.0.1/b"]},
        {"results": b"not a list"},
        {"result_urls": "http://127.0.0.1/not-a-list"},
        {"result_urls": [42]},
    ],
)
def test_ambiguous_or_malformed_outputs_are_invalid(
    store: genstore.Store, outputs: dict[str, object]
) -> None:
    with pytest.raises(InvalidInput):
        store.save_complete_operation(operation_type="t", **outputs)  # type: ignore[arg-type]
    assert store.history().items == []


def test_a_started_job_is_pending_until_completed(
    store: genstore.Store, file_server: FileServer
) -> None:
    started = store.start_operation(
        operation_type="text_to_video",
        prompt="a cat",
        input_images=[png_bytes()],
        user_id="u1",
        job_id="pred_123",
    )
    assert started.status == "pending" and started.record.results == []
    assert [r.operation_id for r in store.history(status="pending").items] == [started.operation_id]
    assert store.stats()["by_status"] == {"pending": 1}
    urls, bodies = four_images(file_server)
    done = store.complete_operation(job_id="pred_123", result_urls=urls[:2], duration_ms=1500.0)
    assert done.created and done.operation_id == started.operation_id
    record = store.get_operation(started.operation_id)
    assert record.status is OperationStatus.SUCCEEDED
    assert [store.read_artifact(r) for r in record.results] == bodies[:2]
    assert record.prompt == "a cat" and len(record.inputs) == 1 and record.job_id == "pred_123"
    assert record.completed_at is not None and record.duration_ms == 1500.0
    assert store.history(status="pending").items == []


def test_completing_twice_changes_nothing(store: genstore.Store, file_server: FileServer) -> None:
    started = store.start_operation(operation_type="t", job_id="job-1")
    urls, _ = four_images(file_server)
    first = store.complete_operation(started.operation_id, result_urls=urls[:1])
    stored = store.read_artifact(first.record.results[0])
    again = store.complete_operation(job_id="job-1", result_urls=urls[1:], error="late")
    assert not again.created and again.record == first.record
    assert store.get_operation(started.operation_id) == first.record
    assert store.read_artifact(first.record.results[0]) == stored


def test_a_failed_job_is_recorded_failed(store: genstore.Store) -> None:
    started = store.start_operation(operation_type="t")
    done = store.complete_operation(started.operation_id, error=RuntimeError("provider said no"))
    assert done.record.status is OperationStatus.FAILED
    assert done.record.error == "provider said no"
    assert done.record.duration_ms is not None and done.record.duration_ms >= 0


def test_starting_the_same_job_twice_is_one_operation(store: genstore.Store) -> None:
    first = store.start_operation(operation_type="t", job_id="job-2", idempotency_key="req-9")
    second = store.start_operation(operation_type="t", job_id="job-2")
    assert not second.created and second.operation_id == first.operation_id
    assert store.complete_operation(job_id="job-2", results=[b"x"]).created
    assert len(store.history().items) == 1


def test_unknown_operations_and_jobs_are_not_found(store: genstore.Store) -> None:
    with pytest.raises(NotFound):
        store.complete_operation("20250101_01JGB0000000000000000000XX", results=[b"x"])
    with pytest.raises(NotFound):
        store.complete_operation(job_id="never-started", results=[b"x"])
    with pytest.raises(InvalidInput):
        store.complete_operation(results=[b"x"])
    with pytest.raises(InvalidInput):
        store.complete_operation("x", job_id="y")


def test_a_pending_operation_takes_no_results(store: genstore.Store) -> None:
    with pytest.raises(InvalidInput):
        genstore._save_request.SaveRequest.build(operation_type="t", results=[b"x"], pending=True)


def test_the_async_forms(store: genstore.Store) -> None:
    async def flow() -> genstore.SaveResult:
        started = await store.astart_operation(operation_type="t", job_id="async-1")
        assert started.status == "pending"
        return await store.acomplete_operation(job_id="async-1", results=[png_bytes()])

    done = asyncio.run(flow())
    assert done.status == "succeeded" and len(done.record.results) == 1


def test_stale_pending_operations_are_reported_then_failed(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path / "s", pending_timeout=timedelta(0)) as store:
        started = store.start_operation(operation_type="t", job_id="forgotten")
        report = store.verify(grace=timedelta(0))
        assert report.stale_pending == [started.operation_id] and not report.ok
        dry = store.cleanup(older_than=timedelta(days=365), dry_run=True)
        assert dry.expired == 1
        assert store.get_operation(started.operation_id).status is OperationStatus.PENDING
        assert store.cleanup(older_than=timedelta(days=365)).expired == 1
        record = store.get_operation(started.operation_id)
        assert record.status is OperationStatus.FAILED and record.error == "never completed"
        assert store.verify(grace=timedelta(0)).ok


def test_deleting_an_operation_deletes_every_result(store: genstore.Store) -> None:
    saved = store.save_complete_operation(operation_type="t", results=[b"a", b"b", b"c"])
    keys = [ref.key for ref in saved.record.results]
    store.delete_operation(saved.operation_id)
    assert not any(store.blobs.exists(key) for key in keys)


def test_a_version_1_record_on_disk_reads_and_reindexes(store: genstore.Store) -> None:
    saved = store.save_complete_operation(operation_type="t", results=[png_bytes()])
    ref = saved.record.results[0]
    v1 = json.loads(saved.record.model_dump_json())
    v1.update(schema_version=1, result=v1.pop("results")[0])
    for name in ("job_id", "completed_at"):
        del v1[name]
    del v1["result"]["source_url"]
    key = operation_record_key(saved.operation_id)
    store.blobs.write(key, [json.dumps(v1).encode()])
    assert store.reindex().operations == 1
    record = store.get_operation(saved.operation_id)
    assert record.schema_version == 2 and record.results == [ref]
    assert store.verify(grace=timedelta(0)).ok


# -- an operation id chosen up front (the recorder's saves) and batches ------------------------


def blob_keys(store: genstore.Store, prefix: str) -> list[str]:
    return [info.key for info in store.blobs.list(prefix)]


def test_a_request_saved_again_under_its_chosen_id_is_one_record(store: genstore.Store) -> None:
    request = SaveRequest.build(operation_type="t", prompt="once", input_images=[b"in"])
    later = request.for_later()
    assert later.operation_id is not None and later.idempotency_key is None
    first = store.save(later)
    again = store.save(later)  # a replay of the same request
    assert first.created and not again.created
    assert first.operation_id == again.operation_id == later.operation_id
    assert again.record == first.record
    assert [r.operation_id for r in store.iter_operations()] == [later.operation_id]
    assert blob_keys(store, "idempotency/") == []  # no marker was needed


def test_a_replay_indexes_a_record_committed_before_a_crash(store: genstore.Store) -> None:
    later = SaveRequest.build(operation_type="t", prompt="p").for_later()
    first = store.save(later)
    store.catalog.delete_operation(first.operation_id)  # died between the JSON and the row
    again = store.save(later)
    assert not again.created and again.record == first.record
    assert store.catalog.get_operation(first.operation_id) == first.record


def test_a_caller_key_keeps_its_marker_when_saved_for_later(store: genstore.Store) -> None:
    later = SaveRequest.build(operation_type="t", idempotency_key="k-1").for_later()
    first = store.save(later)
    assert first.operation_id == later.operation_id
    assert len(blob_keys(store, "idempotency/")) == 1
    direct = store.save_complete_operation(operation_type="t", idempotency_key="k-1")
    assert not direct.created and direct.operation_id == first.operation_id


@pytest.mark.parametrize("bad", ["", "x", "20250101_short", "2025-01-01_" + "0" * 26, 7])
def test_a_malformed_operation_id_is_invalid(bad: object) -> None:
    with pytest.raises(InvalidInput, match="operation_id"):
        SaveRequest.build(operation_type="t", operation_id=bad)  # type: ignore[arg-type]


def test_a_batch_indexes_in_one_call_and_keeps_going_past_invalid_records(
    store: genstore.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    upsert = store.catalog.upsert_operations

    def counted(records: Sequence[OperationRecord]) -> None:
        calls.append(len(records))
        upsert(records)

    monkeypatch.setattr(store.catalog, "upsert_operations", counted)
    requests = [
        SaveRequest.build(operation_type="t", prompt="a").for_later(),
        SaveRequest.build(operation_type="t", input_images=["/no/such/input.png"]).for_later(),
        SaveRequest.build(operation_type="t", prompt="b").for_later(),
    ]
    outcomes = store.save_batch(requests)
    assert isinstance(outcomes[1], InvalidInput)
    saved = [o for o in outcomes if isinstance(o, SaveResult)]
    assert [o.record.prompt for o in saved] == ["a", "b"] and all(o.created for o in saved)
    assert calls == [2]
    assert sorted(r.prompt or "" for r in store.iter_operations()) == ["a", "b"]
    assert store.save_batch(requests[:1])[0] == SaveResult(
        operation_id=saved[0].operation_id, record=saved[0].record, created=False
    )


def test_a_batch_stops_at_a_failing_store_and_leaves_the_rest_unattempted(
    store: genstore.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes = 0
    write = store.blobs._write

    def failing_second_record(key: str, *args: Any, **kwargs: Any) -> int:
        nonlocal writes
        if key.endswith(".json"):
            writes += 1
            if writes == 2:
                raise BackendUnavailable("down")
        return write(key, *args, **kwargs)

    monkeypatch.setattr(store.blobs, "_write", failing_second_record)
    requests = [SaveRequest.build(operation_type="t", prompt=f"p{i}") for i in range(3)]
    outcomes = store.save_batch(requests)
    assert isinstance(outcomes[0], SaveResult)
    assert isinstance(outcomes[1], BackendUnavailable) and outcomes[2] is None
    assert [r.prompt for r in store.iter_operations()] == ["p0"]


def test_a_batch_whose_catalog_fails_keeps_its_committed_records(
    store: genstore.Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(records: Sequence[OperationRecord]) -> None:
        raise BackendUnavailable("catalog down")

    monkeypatch.setattr(store.catalog, "upsert_operations", down)
    requests = [SaveRequest.build(operation_type="t", prompt=f"p{i}").for_later() for i in (0, 1)]
    outcomes = store.save_batch(requests)
    assert all(isinstance(o, SaveResult) and o.created for o in outcomes)
    assert "saved but not indexed" in caplog.text
    assert list(store.iter_operations()) == []
    monkeypatch.undo()
    # The truth is there: a replay of either finds and indexes it.
    assert not store.save(requests[0]).created
    assert [r.prompt for r in store.iter_operations()] == ["p0"]


def test_a_batch_goes_on_past_a_record_that_breaks_a_hook(store: genstore.Store) -> None:
    class Breaks:
        @genstore.hookimpl
        def genstore_before_save(self, record: OperationRecord) -> None:
            if record.prompt == "poison":
                raise RuntimeError("a plugin breaks on this record")

    genstore.register_plugin(Breaks(), name="test-batch-breaks")
    try:
        requests = [
            SaveRequest.build(operation_type="t", prompt=p).for_later()
            for p in ("a", "poison", "b")
        ]
        outcomes = store.save_batch(requests)
    finally:
        _plugins.unregister_plugin("test-batch-breaks")
    assert isinstance(outcomes[1], RuntimeError)
    assert [o.record.prompt for o in outcomes if isinstance(o, SaveResult)] == ["a", "b"]
