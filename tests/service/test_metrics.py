"""``GET /metrics``: the recorders' counters in Prometheus' text format, through a real uvicorn."""

from __future__ import annotations

from pathlib import Path

import genstore
from genstore_asgi.service import JWTAuthenticator, create_app
from helpers import free_port
from prometheus_client.parser import text_string_to_metric_families

from .service_harness import serve


def scrape(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
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
