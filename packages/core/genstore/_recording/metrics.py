"""The recorders' counters as metrics, read when they are collected (nothing is added to the save
path): ``snapshot`` sums every open recorder of the process; ``register_opentelemetry`` exports
them as OpenTelemetry observable instruments. It is called when a store's recorder is made and does
nothing unless ``opentelemetry-api`` is installed (``pip install 'genstore-core[otel]'``). The
reference service serves the same counters in Prometheus' format at ``/metrics``.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .hooks import _live

__all__ = ["METRICS", "Metric", "register_opentelemetry", "snapshot"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Metric:
    """One counter of ``RecorderCounters``, as exported."""

    field: str
    """The ``RecorderCounters`` field."""
    name: str
    """The metric's name (OpenTelemetry; Prometheus adds ``_total`` to counters)."""
    kind: str
    """``counter`` (only grows) or ``gauge``."""
    description: str


METRICS = (
    Metric("recorded", "genstore.recorder.recorded", "counter", "records saved from the queue"),
    Metric("spooled", "genstore.recorder.spooled", "counter", "records written to the spool"),
    Metric("replayed", "genstore.recorder.replayed", "counter", "spooled records saved later"),
    Metric("dropped", "genstore.recorder.dropped", "counter", "records neither saved nor spooled"),
    Metric("rejected", "genstore.recorder.rejected", "counter", "records refused as invalid"),
    Metric("quarantined", "genstore.recorder.quarantined", "counter", "records set aside"),
    Metric("pending", "genstore.recorder.pending", "gauge", "records queued or being saved"),
)
"""What is exported, in order."""


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


_registered: set[int] = set()
_lock = threading.Lock()


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
    return True


def _observer(otel: Any, field: str) -> Callable[[Any], Iterable[Any]]:
    def observe(options: Any) -> Iterable[Any]:
        try:
            return [otel.Observation(snapshot()[field])]
        except Exception:  # a metrics callback must never break the exporter
            logger.exception("genstore: reading the recorder counters failed")
            return []

    return observe
