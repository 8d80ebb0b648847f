"""``GET /metrics``: the recorders' counters and save-latency histogram in Prometheus' text
format, through ``prometheus-client`` (a collector that reads them at scrape time, in a registry of
its own)."""

from __future__ import annotations

from collections.abc import Iterator

from genstore._recording.latency import SAVE_SECONDS_BUCKETS
from genstore._recording.metrics import METRICS, SAVE_DURATION, save_latency, snapshot
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from ._deps import ServiceDeps

__all__ = ["CONTENT_TYPE", "MetricsPage", "le_label"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def le_label(bound: float) -> str:
    """A bucket's ``le`` label: ``0.001``, ``60.0``, ``+Inf`` (as Prometheus' own clients write it)."""
    return "+Inf" if bound == float("inf") else repr(bound)


class _RecorderCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        values = snapshot()
        for metric in METRICS:
            name = metric.name.replace(".", "_")
            family = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
            yield family(name, metric.description, value=values[metric.field])
        yield _latency_family()


def _latency_family() -> HistogramMetricFamily:
    """The save latency, with cumulative ``le`` buckets as Prometheus wants them."""
    latency = save_latency()
    buckets: list[tuple[str, float]] = []
    seen = 0
    for bound, count in zip((*SAVE_SECONDS_BUCKETS, float("inf")), latency.counts, strict=True):
        seen += count
        buckets.append((le_label(bound), seen))
    name = SAVE_DURATION.name.replace(".", "_") + "_seconds"
    return HistogramMetricFamily(
        name, SAVE_DURATION.description, buckets=buckets, sum_value=latency.sum
    )


class MetricsPage:
    """The ``/metrics`` endpoint (counts only: no path, URL or user id)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_RecorderCollector())

    async def __call__(self, request: Request, deps: ServiceDeps) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE)
