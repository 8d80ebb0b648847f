"""The save-latency histogram of a recorder: how long each record's save took, in fixed buckets.

The worker observes every save it attempts (saved or failed; queued records and replays), under
the recorder's own lock: an observation is a bisection and two additions. A batch saved in one
``save_batch`` call is observed once per record it attempted, each with an equal share of the
call's wall time, so ``sum`` is the time spent saving and ``count`` the records tried.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

__all__ = ["SAVE_SECONDS_BUCKETS", "LatencySnapshot", "SaveLatency"]

SAVE_SECONDS_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds (seconds, inclusive) of the buckets; one more bucket holds what is slower."""


@dataclass(frozen=True, slots=True)
class LatencySnapshot:
    """The histogram at one moment."""

    counts: tuple[int, ...] = (0,) * (len(SAVE_SECONDS_BUCKETS) + 1)
    """Saves per bucket (not cumulative): ``counts[i]`` took at most ``SAVE_SECONDS_BUCKETS[i]``
    and more than the bound before it; the last one, more than 60 s."""
    sum: float = 0.0
    """Seconds spent in all of them."""

    @property
    def count(self) -> int:
        """Saves observed."""
        return sum(self.counts)

    def __add__(self, other: LatencySnapshot) -> LatencySnapshot:
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return LatencySnapshot(counts, self.sum + other.sum)


class SaveLatency:
    """The mutable histogram; not thread-safe by itself (the recorder's lock guards it)."""

    __slots__ = ("_counts", "_sum")

    def __init__(self) -> None:
        self._counts = [0] * (len(SAVE_SECONDS_BUCKETS) + 1)
        self._sum = 0.0

    def observe(self, seconds: float, times: int = 1) -> None:
        """Count ``times`` saves of ``seconds`` each."""
        self._counts[bisect_left(SAVE_SECONDS_BUCKETS, seconds)] += times
        self._sum += seconds * times

    def snapshot(self) -> LatencySnapshot:
        """A copy of the histogram now."""
        return LatencySnapshot(tuple(self._counts), self._sum)
