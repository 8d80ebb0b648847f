"""The recorders' counters and save latency as OpenTelemetry instruments (read by the SDK's
in-memory reader), and the histogram they are kept in."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import genstore
import pytest
from genstore import OperationRecord, Recorder, Store
from genstore._plugins import register_plugin, unregister_plugin
from genstore._recording.latency import SAVE_SECONDS_BUCKETS, LatencySnapshot, SaveLatency
from genstore._recording.metrics import (
    METRICS,
    SAVE_DURATION,
    register_opentelemetry,
    save_latency,
    snapshot,
)
from helpers import FileServer
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from recorder_scenarios import DOWNLOAD_OPTIONS, FAILURES, submit_failing_downloads
from switchable import SwitchableBlobs

WAIT = 30.0
"""Upper bound of every wait loop, in seconds."""


def otel_points(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[str, Any] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                (point,) = metric.data.data_points
                points[metric.name] = point
    return points


def otel_values(reader: InMemoryMetricReader) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, point in otel_points(reader).items():
        if isinstance(point, NumberDataPoint):
            values[name] = point.value
    return values


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_recorder_counters_reach_opentelemetry(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    assert register_opentelemetry(provider)
    assert register_opentelemetry(provider)  # once per provider: no duplicate instruments
    before = snapshot()
    with genstore.open_store(tmp_path / "s") as store:
        for i in range(3):
            store.recorder.submit(operation_type="t", prompt=f"p{i}")
        store.recorder.submit(operation_type="t", user_id="not a valid id/..")
        assert store.recorder.flush(30)
        values = otel_values(reader)
        assert values["genstore.recorder.recorded"] == before["recorded"] + 3
        assert values["genstore.recorder.rejected"] == before["rejected"] + 1
        assert values["genstore.recorder.pending"] == 0
        assert {m.name for m in METRICS} <= values.keys()
    provider.shutdown()


def test_snapshot_sums_every_open_recorder(tmp_path: Path) -> None:
    before = snapshot()
    with genstore.open_store(tmp_path / "a") as a, genstore.open_store(tmp_path / "b") as b:
        a.recorder.submit(operation_type="t")
        b.recorder.submit(operation_type="t")
        b.recorder.submit(operation_type="t")
        assert a.recorder.flush(30) and b.recorder.flush(30)
        assert snapshot()["recorded"] == before["recorded"] + 3


def test_failed_downloads_and_save_latency_reach_opentelemetry(
    tmp_path: Path, file_server: FileServer
) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    assert register_opentelemetry(provider)
    before = snapshot()
    with genstore.open_store(tmp_path / "s", **DOWNLOAD_OPTIONS) as store:
        recorder = store.recorder
        failures, records = submit_failing_downloads(recorder, file_server)
        assert recorder.flush(WAIT)
        errors = sorted(r.result_error or "" for r in store.iter_operations())
        counters, latency = recorder.counters, recorder.save_latency
        points = otel_points(reader)
    provider.shutdown()
    assert (failures, records) == (4, 7)
    assert [e for e in errors if e] and all(
        any(f in e for e in errors) for f in FAILURES
    )  # each download failed for its own reason
    assert counters.download_failures == 4
    assert counters.recorded == 7 and counters.spooled == 0
    assert latency.count == 7  # one save per record, batched or not
    assert points["genstore.recorder.download_failures"].value == before["download_failures"] + 4
    histogram = points[SAVE_DURATION.name]
    assert isinstance(histogram, HistogramDataPoint)
    assert histogram.count == 7
    assert tuple(histogram.explicit_bounds) == SAVE_SECONDS_BUCKETS
    assert tuple(histogram.bucket_counts) == latency.counts
    assert histogram.sum == pytest.approx(latency.sum)


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[Store, SwitchableBlobs]]:
    """A local store whose blob writes the test can hold (``gate``)."""
    opened = genstore.open_store(tmp_path / "store")
    blobs = SwitchableBlobs(opened.blobs)
    store = Store(blobs, opened.catalog, opened.options)
    yield store, blobs
    blobs.gate.set()
    store.close()


def test_queue_depth_is_exported_and_a_batch_counts_each_record(
    gated: tuple[Store, SwitchableBlobs], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, blobs = gated
    batches: list[int] = []
    save_batch = store.save_batch

    def counted(requests: Sequence[Any]) -> Any:
        batches.append(len(requests))
        return save_batch(requests)

    monkeypatch.setattr(store, "save_batch", counted)
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    assert register_opentelemetry(provider)
    before = snapshot()
    recorder = Recorder(store, poll_interval=0.05, fsync=False)
    try:
        blobs.gate.clear()  # the first save hangs while the others queue up behind it
        recorder.submit(operation_type="t", prompt="first")
        wait_until(lambda: recorder.counters.queued == 0, "the worker to take the first record")
        for i in range(5):
            recorder.submit(operation_type="t", prompt=f"p{i}")
        assert (recorder.counters.queued, recorder.counters.pending) == (5, 6)
        assert snapshot()["queued"] == before["queued"] + 5
        assert otel_values(reader)["genstore.recorder.queued"] == before["queued"] + 5
        blobs.gate.set()
        assert recorder.flush(WAIT)
        assert recorder.counters.queued == 0 and recorder.counters.recorded == 6
        assert batches == [5]  # the five queued ones in one save_batch call
        assert recorder.save_latency.count == 6  # the batch is observed once per record
        assert otel_points(reader)[SAVE_DURATION.name].count == 6
    finally:
        blobs.gate.set()
        recorder.close(timeout=5)
        provider.shutdown()


def test_failed_save_attempts_are_timed_too(gated: tuple[Store, SwitchableBlobs]) -> None:
    """A record breaking a plugin: its first save and the three replays before it is quarantined
    are four attempts, each in the histogram."""

    class Poison:
        @genstore.hookimpl
        def genstore_before_save(self, record: OperationRecord) -> None:
            if record.prompt == "poison":
                raise RuntimeError("this record always breaks a plugin")

    store, _ = gated
    register_plugin(Poison(), name="metrics-poison")
    recorder = Recorder(store, base_backoff=0.01, max_backoff=0.05, poll_interval=0.05, fsync=False)
    try:
        recorder.submit(operation_type="t", prompt="poison")
        assert recorder.flush(WAIT)
        wait_until(lambda: recorder.counters.quarantined == 1, "the poison to be quarantined")
        assert recorder.save_latency.count == 4
        assert recorder.counters.recorded == 0 and recorder.counters.replayed == 0
    finally:
        unregister_plugin("metrics-poison")
        recorder.close(timeout=5)


def test_the_histogram_buckets_are_inclusive_upper_bounds() -> None:
    latency = SaveLatency()
    latency.observe(0.001)  # on a bound: that bucket (Prometheus' "le")
    latency.observe(0.0011)
    latency.observe(0.02, times=3)  # a batch of three, each its share
    latency.observe(61.0)  # slower than the last bound
    shot = latency.snapshot()
    assert shot.counts[0] == 1 and shot.counts[1] == 1
    assert shot.counts[SAVE_SECONDS_BUCKETS.index(0.025)] == 3
    assert shot.counts[-1] == 1 and shot.count == 6
    assert shot.sum == pytest.approx(0.001 + 0.0011 + 0.06 + 61.0)
    assert (shot + shot).counts == tuple(2 * c for c in shot.counts)
    assert LatencySnapshot().count == 0


def test_save_latency_sums_every_open_recorder(tmp_path: Path) -> None:
    before = save_latency().count
    with genstore.open_store(tmp_path / "a") as a, genstore.open_store(tmp_path / "b") as b:
        a.recorder.submit(operation_type="t")
        b.recorder.submit(operation_type="t")
        assert a.recorder.flush(30) and b.recorder.flush(30)
        assert save_latency().count == before + 2
