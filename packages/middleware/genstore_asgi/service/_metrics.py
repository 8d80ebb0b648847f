"""``GET /metrics``: the recorders' counters in Prometheus' text format, through
``prometheus-client`` (a collector that reads them at scrape time, in a registry of its own)."""

from __future__ import annotations

from collections.abc import Iterator

from genstore._recording.metrics import METRICS, snapshot
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from ._deps import ServiceDeps

__all__ = ["CONTENT_TYPE", "MetricsPage"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _RecorderCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        values = snapshot()
        for metric in METRICS:
            name = metric.name.replace(".", "_")
            family = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
            yield family(name, metric.description, value=values[metric.field])


class MetricsPage:
    """The ``/metrics`` endpoint (counts only: no path, URL or user id)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_RecorderCollector())

    async def __call__(self, request: Request, deps: ServiceDeps) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE)
