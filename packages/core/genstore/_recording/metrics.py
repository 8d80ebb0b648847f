"""The recorders' counters and save-latency histogram as metrics.

The counters are read when they are collected (nothing is added to the save path): ``snapshot``
sums every open recorder of the process, ``save_latency`` their histograms.
``register_opentelemetry`` exports the counters as OpenTelemetry observable instruments and the
latency as a Histogram, which the worker feeds through ``record_save_seconds`` (OpenTelemetry has
no observable histogram). It is called when a store's recorder is made and does nothing unless
``opentelemetry-api`` is installed (``pip install 'genstore-core[otel]'``). The reference service
serves the same metrics in Prometheus' format at ``/metrics``.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .hooks import _live
from .latency import SAVE_SECONDS_BUCKETS, LatencySnapshot

__all__ = [
    "METRICS",
    "SAVE_DURATION",
    "Metric",
    "record_save_seconds",
    "register_opentelemetry",
    "save_latency",
    "snapshot",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric of the recorders, as exported."""

    field: str
    """The ``RecorderCounters`` field (``save_latency``: the ``Recorder`` property)."""
    name: str
    """The metric's name (OpenTelemetry; Prometheus adds ``_total`` to counters)."""
    kind: str
    """``counter`` (only grows), ``gauge`` or ``histogram``."""
    description: str


METRICS = (
    Metric("recorded", "genstore.recorder.recorded", "counter", "records saved from the queue"),
    Metric("spooled", "genstore.recorder.spooled", "counter", "records written to the spool"),
    Metric("replayed", "genstore.recorder.replayed", "counter", "spooled records saved later"),
    Metric("dropped", "genstore.recorder.dropped", "counter", "records neither saved nor spooled"),
    Metric("rejected", "genstore.recorder.rejected", "counter", "records refused as invalid"),
    Metric("quarantined", "genstore.recorder.quarantined", "counter", "records set aside"),
    Metric(
        "download_failures",
        "genstore.recorder.download_failures",
        "counter",
        "result downloads that failed",
    ),
    Metric("pending", "genstore.recorder.pending", "gauge", "records queued or being saved"),
    Metric("queued", "genstore.recorder.queued", "gauge", "records waiting in the queue"),
)
"""The counters and gauges exported, in order."""

SAVE_DURATION = Metric(
    "save_latency",
    "genstore.recorder.save.duration",
    "histogram",
    "wall time of each save the recorder attempted, per record (seconds)",
)
"""The save-latency histogram (unit ``s``; Prometheus: ``genstore_recorder_save_duration_seconds``,
buckets ``latency.SAVE_SECONDS_BUCKETS``)."""


def snapshot() -> dict[str, int]:
    """Every metric's value, summed over the process's open recorders."""
    totals = dict.fromkeys((m.field for m in METRICS), 0)
    for recorder in list(_live):
        counters = getattr(recorder, "counters", None)
        if counters is None:
            continue
        values = asdict(counters)
        for name in totals:
            totals[name] += int(values.get(name, 0))
    return totals


def save_latency() -> LatencySnapshot:
    """The save-latency histograms of the process's open recorders, added up."""
    total = LatencySnapshot()
    for recorder in list(_live):
        latency = getattr(recorder, "save_latency", None)
        if isinstance(latency, LatencySnapshot):
            total = total + latency
    return total


_registered: set[int] = set()
_lock = threading.Lock()
_histograms: tuple[Any, ...] = ()
"""The OpenTelemetry Histogram of each provider registered (replaced whole, never changed)."""


def record_save_seconds(seconds: float, records: int = 1) -> None:
    """Record ``records`` saves of ``seconds`` each into every registered OpenTelemetry Histogram
    (the worker calls it; nothing to do until ``register_opentelemetry`` has run)."""
    for histogram in _histograms:
        try:
            for _ in range(records):
                histogram.record(seconds)
        except Exception:  # metrics must never break the worker
            logger.exception("genstore: recording a save's duration failed")


def register_opentelemetry(meter_provider: Any = None) -> bool:
    """Register the counters as observable instruments of ``meter_provider`` (the global one by
    default), once per provider; False when ``opentelemetry-api`` is not installed."""
    try:
        otel = importlib.import_module("opentelemetry.metrics")
    except ImportError:
        return False
    provider = meter_provider if meter_provider is not None else otel.get_meter_provider()
    with _lock:
        if id(provider) in _registered:
            return True
        _registered.add(id(provider))
    meter = provider.get_meter("genstore")
    for metric in METRICS:
        make = (
            meter.create_observable_counter
            if metric.kind == "counter"
            else meter.create_observable_gauge
        )
        make(metric.name, callbacks=[_observer(otel, metric.field)], description=metric.description)
    _add_histogram(meter)
    return True


def _add_histogram(meter: Any) -> None:
    global _histograms
    described = {"unit": "s", "description": SAVE_DURATION.description}
    try:
        histogram = meter.create_histogram(
            SAVE_DURATION.name,
            explicit_bucket_boundaries_advisory=SAVE_SECONDS_BUCKETS,
            **described,
        )
    except TypeError:  # opentelemetry-api before 1.23 takes no bucket advice
        histogram = meter.create_histogram(SAVE_DURATION.name, **described)
    with _lock:
        _histograms = (*_histograms, histogram)


def _observer(otel: Any, field: str) -> Callable[[Any], Iterable[Any]]:
    def observe(options: Any) -> Iterable[Any]:
        try:
            return [otel.Observation(snapshot()[field])]
        except Exception:  # a metrics callback must never break the exporter
            logger.exception("genstore: reading the recorder counters failed")
            return []

    return observe
