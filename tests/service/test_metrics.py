"""``GET /metrics``: the recorders' counters in Prometheus' text format, through a real uvicorn."""

from __future__ import annotations

import re
from pathlib import Path

import genstore
from genstore_asgi.service import JWTAuthenticator, create_app
from helpers import FileServer, free_port
from prometheus_client.parser import text_string_to_metric_families
from recorder_scenarios import DOWNLOAD_OPTIONS, submit_failing_downloads

from .service_harness import serve


def scrape(text: str) -> dict[str, float]:
    """Each sample by its name (and ``le`` label, for histogram buckets)."""
    return {
        sample.name
        + (f"{{le={sample.labels['le']}}}" if "le" in sample.labels else ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_are_served_in_prometheus_format(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path / "s") as store:
        app = create_app(store, auth=JWTAuthenticator(secret="m" * 40))
        with serve(app, free_port()) as http:
            before = scrape(http.get("/metrics").text)
            store.recorder.submit(operation_type="t", prompt="x")
            assert store.recorder.flush(30)
            response = http.get("/metrics")
            after = scrape(response.text)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert (
        after["genstore_recorder_recorded_total"]
        == before.get("genstore_recorder_recorded_total", 0) + 1
    )
    assert after["genstore_recorder_pending"] == 0
    assert str(tmp_path) not in response.text  # counts only, never where the data lives


SAVES = "genstore_recorder_save_duration_seconds"
BOUNDS = ("0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
          "2.5", "5.0", "10.0", "30.0", "60.0", "+Inf")  # fmt: skip
"""The ``le`` labels of its buckets, in order."""


def test_download_failures_and_the_save_latency_histogram_are_served(
    tmp_path: Path, file_server: FileServer
) -> None:
    with genstore.open_store(tmp_path / "s", **DOWNLOAD_OPTIONS) as store:
        app = create_app(store, auth=JWTAuthenticator(secret="m" * 40))
        with serve(app, free_port()) as http:
            before = scrape(http.get("/metrics").text)
            failures, records = submit_failing_downloads(store.recorder, file_server)
            assert store.recorder.flush(30)
            latency = store.recorder.save_latency
            text = http.get("/metrics").text
    after = scrape(text)
    assert (failures, records) == (4, 7)
    failed = before.get("genstore_recorder_download_failures_total", 0) + 4
    saves = before.get(f"{SAVES}_count", 0) + 7
    lines = text.splitlines()
    assert f"genstore_recorder_download_failures_total {failed:.1f}" in lines
    assert f"{SAVES}_count {saves:.1f}" in lines
    assert after[f"{SAVES}_sum"] >= latency.sum > 0
    buckets = [line for line in lines if line.startswith(f"{SAVES}_bucket")]
    assert [re.sub(r'.*le="([^"]+)".*', r"\1", line) for line in buckets] == list(BOUNDS)
    cumulative = [after[f"{SAVES}_bucket{{le={b}}}"] for b in BOUNDS]
    assert cumulative == sorted(cumulative) and cumulative[-1] == saves
    assert after["genstore_recorder_queued"] == 0
