"""Streaming both ways: spool an upload's chunks, and read a download as a file object.

storage3 uploads take bytes or a file path, never an iterable, so a large upload is spooled to a
temporary file first (then httpx streams the file from disk); a small one stays in memory.
Downloads stream from the open httpx response.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from genstore.exceptions import BackendUnavailable

if TYPE_CHECKING:
    import httpx

__all__ = ["Spooled", "StreamingReader", "spool"]

MEMORY_LIMIT = 8 * 1024 * 1024
"""Uploads up to this size are sent from memory; larger ones from a temporary file."""


@dataclass(frozen=True, slots=True)
class Spooled:
    """An upload ready to send (and to send again on retry)."""

    data: bytes | str
    """The bytes, or the path of the temporary file holding them."""
    size: int
    md5: str
    """Hex MD5 of the bytes: Supabase's etag, to recognise our own upload after a lost reply."""


@contextmanager
def spool(chunks: Iterable[bytes], *, memory_limit: int = MEMORY_LIMIT) -> Iterator[Spooled]:
    """Consume ``chunks`` once; hold them in memory up to ``memory_limit``, else in a temp file.

    The temporary file is removed when the context exits. At most ``memory_limit`` plus one chunk
    is ever held in memory.
    """
    md5 = hashlib.md5(usedforsecurity=False)
    buffered: list[bytes] = []
    held = 0
    iterator = iter(chunks)
    for chunk in iterator:
        if not chunk:
            continue
        chunk = bytes(chunk)
        md5.update(chunk)
        buffered.append(chunk)
        held += len(chunk)
        if held > memory_limit:
            break
    else:
        yield Spooled(b"".join(buffered), held, md5.hexdigest())
        return
    fd, path = tempfile.mkstemp(prefix="genstore-supabase-", suffix=".upload")
    try:
        with os.fdopen(fd, "wb") as out:
            out.writelines(buffered)
            buffered.clear()
            size = held
            for chunk in iterator:
                md5.update(chunk)
                out.write(chunk)
                size += len(chunk)
        yield Spooled(path, size, md5.hexdigest())
    finally:
        os.unlink(path)


class StreamingReader(io.RawIOBase):
    """A raw binary file over an httpx streaming response; closing it closes the response.

    A connection lost mid-body raises ``BackendUnavailable``: the read is not resumed.
    """

    def __init__(self, response: httpx.Response, *, what: str, chunk_size: int = 64 * 1024):
        super().__init__()
        self._response = response
        self._chunks = response.iter_bytes(chunk_size)
        self._pending = memoryview(b"")
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        import httpx

        if not self._pending:
            try:
                self._pending = memoryview(next(self._chunks, b""))
            except httpx.HTTPError as exc:
                raise BackendUnavailable(f"{self._what}: download interrupted ({exc})") from exc
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()
