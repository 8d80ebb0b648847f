"""The recorders' counters as OpenTelemetry instruments (read by the SDK's in-memory reader)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import genstore
from genstore._recording.metrics import METRICS, register_opentelemetry, snapshot
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint


def otel_values(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    values: dict[str, Any] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                (point,) = metric.data.data_points
                assert isinstance(point, NumberDataPoint)
                values[metric.name] = point.value
    return values


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
