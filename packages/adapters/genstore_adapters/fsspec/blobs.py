"""The generic fsspec backend: any fsspec protocol (memory://, gs://, az://, ...) as a BlobStore.

Local files and S3 subclass it and change only what their filesystem does differently
(atomic replace, exclusive create, signed URLs). Keys arrive checked by ``BlobStore``.
"""

from __future__ import annotations

import logging
import posixpath
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, suppress
from datetime import UTC, datetime
from typing import IO, Any

import fsspec
from fsspec.registry import known_implementations, registry
from genstore.exceptions import AlreadyExists, MissingDependency
from genstore.plugin import BlobInfo, BlobStore, StoreURL

from .errors import translate_os_errors

__all__ = ["FsspecBlobStore", "open_fsspec", "write_buffered"]

logger = logging.getLogger(__name__)

STAGE_IN_MEMORY = 8 * 1024 * 1024
"""Bytes of a write the generic backend stages in memory before spilling to a temporary file."""


class FsspecBlobStore(BlobStore):
    """A BlobStore over an fsspec filesystem rooted at ``root`` (a path in that filesystem)."""

    default_catalog = "sidecar"
    exclusive_writes_are_atomic = False
    """Exclusive writes here check, then write (``_put``); local and S3 override with atomic ones."""

    def __init__(self, fs: Any, root: str, *, url: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.url = url

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _key(self, path: str) -> str:
        path = path.rstrip("/")
        root = self.fs._strip_protocol(self.root).rstrip("/")
        path = self.fs._strip_protocol(path)
        return path[len(root) + 1 :] if path.startswith(root + "/") else path

    def _translate(self, key: str) -> AbstractContextManager[None]:
        """The context turning this filesystem's errors into genstore errors (one table per
        backend family: OSError-like here, botocore for S3)."""
        return translate_os_errors(key)

    def _write(
        self, key: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        path = self._path(key)
        with self._translate(key):
            return self._put(path, chunks, content_type=content_type, exclusive=exclusive)

    def _put(
        self, path: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        # The source is staged first (memory, then a temporary file past STAGE_IN_MEMORY): some
        # fsspec writers publish the file as soon as it is opened, so a source failing midway
        # must fail before the destination is touched. Filesystems without an atomic exclusive
        # create get this check-then-write; the ones that have one (local, S3) override _put.
        with tempfile.SpooledTemporaryFile(max_size=STAGE_IN_MEMORY) as staged:
            for chunk in chunks:
                staged.write(chunk)
            staged.seek(0)
            if exclusive and self.fs.exists(path):
                raise AlreadyExists(f"a blob already exists at {self._key(path)!r}")
            parent = posixpath.dirname(path)
            if parent:
                self.fs.makedirs(parent, exist_ok=True)
            return write_buffered(self.fs.open(path, "wb"), iter(lambda: staged.read(1 << 20), b""))

    def _open(self, key: str) -> IO[bytes]:
        with self._translate(key):
            return self.fs.open(self._path(key), "rb")  # type: ignore[no-any-return]

    def _read(self, key: str) -> bytes:
        with self._translate(key):
            return self.fs.cat_file(self._path(key))  # type: ignore[no-any-return]

    def _exists(self, key: str) -> bool:
        with self._translate(key):
            return bool(self.fs.isfile(self._path(key)))

    def _delete(self, key: str) -> None:
        path = self._path(key)
        with self._translate(key), suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def _list(self, prefix: str) -> Iterator[BlobInfo]:
        base = f"{self.root}/{prefix.rstrip('/')}" if prefix else self.root
        with self._translate(prefix or "/"):
            try:
                found = self.fs.find(base, detail=True)
            except FileNotFoundError:
                return
        for path, info in sorted(found.items()):
            if info.get("type") == "directory":
                continue
            key = self._key(path)
            if key.startswith(".") or "/." in key:
                continue  # temporaries and hidden housekeeping files
            yield BlobInfo(key, int(info.get("size") or 0), _modified(info))

    def _url_for(self, key: str, *, expires: int) -> str | None:
        try:
            with self._translate(key):
                return str(self.fs.sign(self._path(key), expiration=expires))
        except NotImplementedError:
            return None


def write_buffered(
    f: Any, chunks: Iterable[bytes], *, discard: Callable[[Any, BaseException], None] | None = None
) -> int:
    """Write ``chunks`` to an open fsspec writer and close it (publishing the blob); return the
    size. fsspec buffered writers publish on close; a failure while writing *or* closing (a
    refused commit, a lost connection) discards the file (``discard(f, error)``, by default its
    ``discard``/``abort`` method), so readers never see a partial blob."""
    size = 0
    try:
        for chunk in chunks:
            f.write(chunk)
            size += len(chunk)
        f.close()
    except BaseException as exc:
        (discard or _discard)(f, exc)
        raise
    return size


def _discard(f: Any, error: BaseException | None = None) -> None:
    for method in ("discard", "abort"):
        fn = getattr(f, method, None)
        if callable(fn):
            try:
                fn()
            except Exception:  # the write already failed; the original error matters
                logger.debug("discarding a failed write failed", exc_info=True)
            return


def _modified(info: dict[str, Any]) -> datetime | None:
    for name in ("LastModified", "mtime", "created", "last_modified"):
        value = info.get(name)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, tz=UTC)
    return None


def open_fsspec(url: StoreURL) -> BlobStore | None:
    """Any protocol fsspec knows (the catch-all spec's factory); None for one it does not know.

    The URL's options are handed to ``fsspec.filesystem`` as storage options, unchanged.
    """
    if url.scheme not in known_implementations and url.scheme not in registry:
        return None
    try:
        fs = fsspec.filesystem(url.scheme, **url.options)
    except ImportError as exc:
        hint = known_implementations.get(url.scheme, {}).get("err", str(exc))
        raise MissingDependency(
            f"the {url.scheme}:// backend ({hint})", extra="all", package=url.scheme
        ) from exc
    root = fs._strip_protocol(f"{url.scheme}://{url.location}").rstrip("/")
    if url.scheme == "memory" and not root.startswith("/"):
        root = "/" + root
    return FsspecBlobStore(fs, root, url=url.without_options())
