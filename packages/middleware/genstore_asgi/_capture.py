"""A copy of a body taken while it streams past: in memory while small, spooled to a file beyond.

The tee never changes, joins or delays the chunks it sees; it keeps references to them (bytes are
immutable) until the in-memory limit, then writes them to a temporary file, so a 100 MB upload costs
at most ``max_in_memory`` bytes of memory however it is chunked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

__all__ = ["BodyTee", "CapturedBody"]

logger = logging.getLogger(__name__)

_READ_CHUNK = 256 * 1024


@dataclass(slots=True)
class CapturedBody:
    """What a tee saw: its bytes (``chunks`` in memory, or the file at ``path``), how it ended."""

    chunks: list[bytes] = field(default_factory=list)
    """The body's chunks, when it stayed in memory."""
    path: str | None = None
    """The spool file holding the body, when it outgrew memory (the holder must delete it)."""
    size: int = 0
    """Bytes seen, including any past ``max_body``."""
    complete: bool = False
    """Whether the last chunk (``more_body`` False) was seen."""
    overflow: bool = False
    """Whether the body passed ``max_body``; nothing of it was kept then."""

    @property
    def usable(self) -> bool:
        """Whether the whole body was captured."""
        return self.complete and not self.overflow

    def read(self) -> bytes:
        """The whole body (reads the spool file when there is one)."""
        if self.path is None:
            return b"".join(self.chunks)
        with open(self.path, "rb") as f:
            return f.read()

    def iter_chunks(self) -> Iterator[bytes]:
        """The body again, in chunks, without holding it whole."""
        if self.path is None:
            yield from self.chunks
            return
        with open(self.path, "rb") as f:
            while chunk := f.read(_READ_CHUNK):
                yield chunk

    def discard(self) -> None:
        """Forget the bytes and delete the spool file, if any."""
        self.chunks = []
        if self.path is not None:
            _unlink(self.path)
            self.path = None


class BodyTee:
    """Collects the chunks of one body as they pass.

    ``max_in_memory``: bytes kept in memory before spooling to ``spool_dir`` (a temporary file).
    ``max_body``: beyond this many bytes nothing is kept (the spool is deleted) — only counted.
    """

    __slots__ = ("_file", "_in_memory", "body", "max_body", "max_in_memory", "spool_dir")

    def __init__(self, *, max_in_memory: int, max_body: int | None, spool_dir: str | None) -> None:
        self.max_in_memory = max_in_memory
        self.max_body = max_body
        self.spool_dir = spool_dir
        self.body = CapturedBody()
        self._file: IO[bytes] | None = None
        self._in_memory = 0

    def feed(self, chunk: bytes, *, more: bool) -> None:
        """Take a copy of ``chunk``; ``more`` False marks the last one."""
        body = self.body
        if not more:
            body.complete = True
        if not chunk:
            if not more:
                self._close_file()
            return
        body.size += len(chunk)
        if body.overflow:
            return
        if self.max_body is not None and body.size > self.max_body:
            body.overflow = True
            self._drop()
            return
        if type(chunk) is not bytes:  # a server reusing a bytearray must not change our copy
            chunk = bytes(chunk)
        try:
            if self._file is None:
                body.chunks.append(chunk)
                self._in_memory += len(chunk)
                if self._in_memory > self.max_in_memory:
                    self._spill()
            else:
                self._file.write(chunk)
            if not more:
                self._close_file()
        except OSError as exc:
            # Recording must never break the request: give up on this copy, keep serving.
            logger.warning("genstore: could not spool a body to disk (%s); not recording it", exc)
            body.overflow = True
            self._drop()

    def finish(self) -> CapturedBody:
        """Stop capturing and hand over what was seen (the caller now owns any spool file)."""
        self._close_file()
        return self.body

    def discard(self) -> None:
        """Drop everything captured (spool file included)."""
        self._drop()

    def _spill(self) -> None:
        fd, path = tempfile.mkstemp(prefix="genstore-asgi-", suffix=".body", dir=self.spool_dir)
        self.body.path = path
        self._file = os.fdopen(fd, "wb")
        for chunk in self.body.chunks:
            self._file.write(chunk)
        self.body.chunks = []
        self._in_memory = 0

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
        except OSError as exc:
            logger.warning("genstore: could not finish a spooled body (%s); not recording it", exc)
            self.body.overflow = True
            self._drop()

    def _drop(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):  # the file is being deleted anyway
                file.close()
        self.body.discard()
        self._in_memory = 0


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("genstore: could not delete spool file %s: %s", path, exc)
