"""Turning what callers hand over (bytes, paths, files, PIL images) into streamed, hashed payloads."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Union

from ._sniff import sniff_content_type
from .exceptions import InvalidInput, PayloadTooLarge

__all__ = [
    "CHUNK",
    "Payload",
    "Source",
    "image_size",
    "is_pil_image",
    "png_size",
    "prepare",
]

CHUNK = 1024 * 1024
_SPOOL_IN_MEMORY = 8 * 1024 * 1024

Source = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]", IO[bytes], Any]
"""bytes-like, a file path, a binary file object, or a PIL image."""


@dataclass
class Payload:
    """A source read once to learn its hash, size and type, and re-readable to store it."""

    sha256: str
    """Hex SHA-256; empty while a deferred hash runs (``digest()`` waits for it)."""
    size: int
    content_type: str
    head: bytes
    _data: bytes | None = None
    _pending: Future[str] | None = None
    _path: Path | None = None
    _file: IO[bytes] | None = None
    _owned: list[IO[bytes]] = field(default_factory=list)

    def digest(self) -> str:
        """The hex SHA-256, waiting for a hash computed in the background if there is one."""
        if self._pending is not None:
            self.sha256 = self._pending.result()
            self._pending = None
        return self.sha256

    def chunks(self) -> Iterator[bytes]:
        """The bytes again, in chunks of at most 1 MiB."""
        if self._data is not None:
            # Already in memory: hand it over whole rather than copy it a chunk at a time.
            if self._data:
                yield self._data
            return
        if self._path is not None:
            with open(self._path, "rb") as f:
                while chunk := f.read(CHUNK):
                    yield chunk
            return
        assert self._file is not None
        self._file.seek(0)
        while chunk := self._file.read(CHUNK):
            yield chunk

    def dimensions(self) -> tuple[int | None, int | None]:
        """Pixel size when this is an image Pillow can read the header of."""
        if not self.content_type.startswith("image/"):
            return None, None
        png = png_size(self.head)
        if png is not None:
            return png
        if self._data is not None:
            return image_size(io.BytesIO(self._data))
        if self._path is not None:
            with open(self._path, "rb") as f:
                return image_size(f)
        assert self._file is not None
        self._file.seek(0)
        return image_size(self._file)

    def close(self) -> None:
        """Release temporary files."""
        for f in self._owned:
            f.close()
        self._owned.clear()


def png_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk (the first 24 bytes), without Pillow."""
    if len(head) >= 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    return None


def image_size(f: IO[bytes]) -> tuple[int | None, int | None]:
    """Width and height from an image header, or (None, None)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            return int(im.width), int(im.height)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None, None


PARALLEL_HASH_MIN = 256 * 1024
"""Below this, handing a hash to another thread costs more than it saves."""

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _hash_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="genstore-hash")
        return _pool


def _sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise PayloadTooLarge(f"{what} is {size} bytes, over the limit of {limit}", limit=limit)


def prepare(
    source: Source, *, limit: int, what: str = "input", defer_hash: bool = False
) -> Payload:
    """Read ``source`` once (hashing, sizing, sniffing) without holding large streams in memory.

    ``defer_hash``: large in-memory bytes are hashed on a worker thread while the caller writes
    them (hashlib releases the GIL), for blobs whose key does not depend on their hash.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        _check(len(data), limit, what)
        pending = None
        if defer_hash and len(data) >= PARALLEL_HASH_MIN:
            pending = _hash_pool().submit(_sha256_hex, data)
        return Payload(
            "" if pending else _sha256_hex(data),
            len(data),
            sniff_content_type(data[:64]),
            data[:64],
            _data=data,
            _pending=pending,
        )
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        try:
            size = path.stat().st_size
            _check(size, limit, what)
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                head = f.read(64)
                digest.update(head)
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
        except FileNotFoundError as exc:
            raise InvalidInput(f"{what} file {str(path)[:200]!r} does not exist") from exc
        except IsADirectoryError as exc:
            raise InvalidInput(f"{what} path {str(path)[:200]!r} is a directory") from exc
        except OSError as exc:
            raise InvalidInput(f"{what} file {str(path)[:200]!r} cannot be read: {exc}") from exc
        return Payload(digest.hexdigest(), size, sniff_content_type(head), head, _path=path)
    if is_pil_image(source):
        image: Any = source
        buf = io.BytesIO()
        try:
            image.save(buf, format=image.format or "PNG")
        except (OSError, ValueError, KeyError):
            buf = io.BytesIO()
            image.save(buf, format="PNG")
        return prepare(buf.getvalue(), limit=limit, what=what)
    if hasattr(source, "read"):
        return _prepare_file(source, limit=limit, what=what)
    raise InvalidInput(
        f"{what} must be bytes, a file path, a binary file or a PIL image, not {type(source).__name__}"
    )


def is_pil_image(obj: object) -> bool:
    cls = type(obj)
    return any(c.__module__.startswith("PIL.") and c.__name__ == "Image" for c in cls.__mro__)


def _prepare_file(f: IO[bytes], *, limit: int, what: str) -> Payload:
    # Copy into a spooled temp file while hashing: the caller's stream may not be seekable, and
    # reading it twice would be wrong for sockets and pipes.
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY)  # noqa: SIM115
    digest = hashlib.sha256()
    size = 0
    head = b""
    try:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            if isinstance(chunk, str):
                raise InvalidInput(f"{what} file was opened in text mode; open it with 'rb'")
            if not head:
                head = chunk[:64]
            size += len(chunk)
            _check(size, limit, what)
            digest.update(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    payload = Payload(digest.hexdigest(), size, sniff_content_type(head), head, _file=spool)
    payload._owned.append(spool)
    return payload
