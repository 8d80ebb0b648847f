"""A blob store wrapper tests switch off (``down``) or hold (``gate``): a store going down."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from genstore import BackendUnavailable
from genstore.plugin import BlobInfo, BlobStore

WAIT = 30.0
"""Longest a write waits on a closed ``gate``."""


class SwitchableBlobs(BlobStore):
    """The store's real BlobStore, failing on command (``down``) or waiting on ``gate`` to write."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.url = inner.url
        self.default_catalog = inner.default_catalog
        self.down = threading.Event()
        self.gate = threading.Event()
        self.gate.set()

    def local_root(self) -> Path | None:
        return self.inner.local_root()

    def _check(self) -> None:
        if self.down.is_set():
            raise BackendUnavailable("backend switched off by the test")

    def _write(
        self, key: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        self.gate.wait(WAIT)
        self._check()
        return self.inner.write(key, chunks, content_type=content_type, exclusive=exclusive)

    def _open(self, key: str) -> IO[bytes]:
        self._check()
        return self.inner.open(key)

    def _exists(self, key: str) -> bool:
        self._check()
        return self.inner.exists(key)

    def _delete(self, key: str) -> None:
        self._check()
        self.inner.delete(key)

    def _list(self, prefix: str) -> Iterator[BlobInfo]:
        self._check()
        return self.inner.list(prefix)

    def close(self) -> None:
        self.inner.close()
