"""``KnownInputs``: the input keys a store wrote or found, trusted to exist for a while, so a
repeated input costs no existence check (shared by the saver and maintenance, which forgets
what it deletes)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

__all__ = ["KnownInputs"]


class KnownInputs:
    """Input keys known to exist: each is trusted for ``ttl`` seconds after it was last seen to.

    Only "it exists" is remembered, never "it does not". Bounded: past ``capacity`` keys the
    least recently used are dropped (and asked about again when next needed). Thread-safe.
    """

    def __init__(self, ttl: float, capacity: int = 10_000) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._seen_at: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def known(self, key: str) -> bool:
        """Whether ``key`` was seen to exist less than ``ttl`` seconds ago."""
        with self._lock:
            seen_at = self._seen_at.get(key)
            if seen_at is None:
                return False
            if time.monotonic() - seen_at >= self.ttl:
                del self._seen_at[key]
                return False
            self._seen_at.move_to_end(key)
            return True

    def remember(self, key: str) -> None:
        """``key`` exists now (this store wrote it or the backend said so)."""
        if self.ttl <= 0:
            return
        with self._lock:
            self._seen_at[key] = time.monotonic()
            self._seen_at.move_to_end(key)
            while len(self._seen_at) > self.capacity:
                self._seen_at.popitem(last=False)

    def forget(self, key: str) -> None:
        """``key`` was deleted: ask the backend next time."""
        with self._lock:
            self._seen_at.pop(key, None)
