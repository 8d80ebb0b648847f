"""Ids: time-sortable, strictly increasing within a process, and checked before they touch a key."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from datetime import UTC, datetime

from .exceptions import InvalidInput

__all__ = [
    "check_id",
    "new_image_id",
    "new_operation_id",
    "new_ulid",
    "operation_id_from",
    "ulid_time",
]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@:+=-]*")
MAX_ID_LENGTH = 128


class _Monotonic:
    """ULID generator whose output strictly increases within the process.

    Within one millisecond the 80-bit random part is incremented instead of redrawn, as the ULID
    spec's monotonic mode says, so ids made in a tight loop still sort in creation order.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def next(self) -> tuple[int, int]:
        with self._lock:
            ms = time.time_ns() // 1_000_000
            if ms <= self._last_ms:
                ms = self._last_ms
                rand = self._last_rand + 1
                if rand >= 1 << 80:  # 2**80 ids in one millisecond: borrow the next millisecond
                    ms, rand = ms + 1, int.from_bytes(os.urandom(10), "big") >> 1
            else:
                # Top bit clear leaves 2**79 increments of room within the millisecond.
                rand = int.from_bytes(os.urandom(10), "big") >> 1
            self._last_ms, self._last_rand = ms, rand
            return ms, rand


_generator = _Monotonic()


def _encode(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def ulid_time(ulid: str) -> datetime | None:
    """The instant a ULID's first 10 characters encode, or None if they are not Crockford."""
    value = 0
    for char in ulid[:10]:
        index = _CROCKFORD.find(char)
        if index < 0:
            return None
        value = value * 32 + index
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def new_ulid() -> tuple[datetime, str]:
    """A new ULID (26 Crockford base-32 characters) and the instant it encodes."""
    ms, rand = _generator.next()
    return datetime.fromtimestamp(ms / 1000, tz=UTC), _encode(ms, 10) + _encode(rand, 16)


def new_operation_id() -> tuple[datetime, str]:
    """``YYYYMMDD_<ULID>``, and its creation instant (UTC)."""
    when, ulid = new_ulid()
    return when, f"{when:%Y%m%d}_{ulid}"


def operation_id_from(ms: int, seed: bytes) -> str:
    """``YYYYMMDD_<ULID>`` for the instant ``ms`` (Unix milliseconds) whose random part is drawn
    from ``seed``: the same seed always names the same operation (a write-ahead journal entry
    replayed after a crash finds the record its first attempt saved)."""
    rand = int.from_bytes(hashlib.blake2b(seed, digest_size=10).digest(), "big")
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return f"{when:%Y%m%d}_{_encode(ms, 10)}{_encode(rand, 16)}"


def new_image_id() -> tuple[datetime, str]:
    """``img_<ulid>`` (lower case), and its creation instant (UTC)."""
    when, ulid = new_ulid()
    return when, f"img_{ulid.lower()}"


def check_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it is safe inside a storage key, else raise ``InvalidInput``.

    Safe: 1 to 128 characters of letters, digits and ``_ . @ : + = -``, not starting with a dot,
    never ``..``: no separators, no NUL, nothing that climbs out of its folder.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if ".." in value or not _SAFE_ID.fullmatch(value):
        raise InvalidInput(f"{what} {value[:40]!r} has characters not allowed in a storage key")
    return value
