"""S3 objects as a BlobStore: the generic fsspec backend over s3fs, changed where S3 differs.

What S3 does differently from a filesystem, and so what this class overrides:

- ``write``: one PUT for blobs up to ``block_size``, a multipart upload of ``block_size`` parts
  for larger ones
  (s3fs's buffered writer: memory stays near one part however big the blob); the content type is
  set on every object; ``exclusive`` is an S3 conditional write (``If-None-Match: *``), atomic on
  the server, for single PUTs and multipart uploads alike. A failed upload is aborted, so nothing
  partial ever becomes visible (when the server is unreachable the abort cannot be sent either:
  the incomplete upload stays invisible until a bucket lifecycle rule removes it).
- ``exists``: one HEAD, never cached (the Store remembers the inputs it knows exist);
  ``list``: ``list_objects_v2`` page by page, never cached;
  ``open``: ranged GETs of ``block_size`` with errors translated on every read;
  ``url_for``: a presigned GET.
"""

from __future__ import annotations

import io
import itertools
import logging
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import IO, Any, cast

from genstore.exceptions import NotFound
from genstore.plugin import BlobInfo, StoreURL

from ..fsspec.blobs import FsspecBlobStore, write_buffered
from .config import S3Config
from .errors import is_connection_error, translate_s3_errors
from .filesystem import make_filesystem

__all__ = ["S3BlobStore", "open_s3"]

logger = logging.getLogger(__name__)


class S3BlobStore(FsspecBlobStore):
    """Blobs as objects under ``s3://bucket/prefix``."""

    exclusive_writes_are_atomic = True  # If-None-Match: * is a conditional write

    list_page_size = 1000
    """Keys asked for per listing request (S3 answers at most 1,000)."""

    def __init__(self, config: S3Config, *, url: str | None = None, fs: Any = None) -> None:
        super().__init__(
            fs if fs is not None else make_filesystem(config),
            config.root,
            url=url or f"s3://{config.root}",
        )
        self.config = config
        self.bucket = config.bucket
        self._key_prefix = f"{config.prefix}/" if config.prefix else ""

    def _translate(self, key: str) -> AbstractContextManager[None]:
        return translate_s3_errors(key)

    def _object_key(self, key: str) -> str:
        return self._key_prefix + key

    def _write(
        self, key: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        path = self._path(key)
        with translate_s3_errors(key, writing=True):
            return self._put(path, chunks, content_type=content_type, exclusive=exclusive)

    def _put(
        self, path: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        condition = {"IfNoneMatch": "*"} if exclusive else {}
        rest = iter(chunks)
        head: list[bytes] = []
        size = 0
        for chunk in rest:
            if chunk:
                head.append(bytes(chunk) if not isinstance(chunk, bytes) else chunk)
                size += len(chunk)
                if size >= self.config.block_size:
                    break
        else:
            # All of it fits in one part: one PUT, as s3fs would send at close, without its
            # file object (and, for an empty blob, with the content type and the condition
            # that s3fs's empty-file shortcut would drop).
            self.fs.call_s3(
                "put_object",
                Bucket=self.bucket,
                Key=path.split("/", 1)[1],
                Body=head[0] if len(head) == 1 else b"".join(head),
                ContentType=content_type,
                **condition,
            )
            return size
        f = self.fs.open(
            path,
            "xb" if exclusive else "wb",
            block_size=self.config.block_size,
            ContentType=content_type,
        )
        return write_buffered(f, itertools.chain(head, rest), discard=_abort_upload)

    def _exists(self, key: str) -> bool:
        with translate_s3_errors(key):
            try:
                self.fs.call_s3("head_object", Bucket=self.bucket, Key=self._object_key(key))
            except FileNotFoundError:
                return False
        return True

    def _open(self, key: str) -> IO[bytes]:
        with translate_s3_errors(key):
            f = self.fs.open(
                self._path(key), "rb", block_size=self.config.block_size, cache_type="readahead"
            )
        if f.details.get("type") != "file":  # a prefix other keys live under, not a blob
            f.close()
            raise NotFound(f"no blob at {key!r}")
        return cast(IO[bytes], io.BufferedReader(_Reader(f, key), buffer_size=256 * 1024))

    def _list(self, prefix: str) -> Iterator[BlobInfo]:
        folder = prefix.strip("/")
        s3_prefix = self._key_prefix + (folder + "/" if folder else "")
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": s3_prefix,
            "MaxKeys": self.list_page_size,
        }
        while True:
            with translate_s3_errors(prefix or "/"):
                page = self.fs.call_s3("list_objects_v2", **request)
            for obj in page.get("Contents", ()):
                key = str(obj["Key"])[len(self._key_prefix) :]
                if not key or key.endswith("/") or key.startswith(".") or "/." in key:
                    continue  # folder placeholders and hidden housekeeping objects
                yield BlobInfo(key, int(obj.get("Size") or 0), _utc(obj.get("LastModified")))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            request["ContinuationToken"] = token

    def close(self) -> None:
        creator = getattr(self.fs, "_s3creator", None)
        if getattr(self.fs, "_s3", None) is None or creator is None:
            return
        try:
            type(self.fs).close_session(self.fs.loop, creator)
        except Exception:  # closing is best effort: the connections die with the process anyway
            logger.debug("closing the S3 session failed", exc_info=True)
        self.fs._s3 = None


def open_s3(url: StoreURL) -> S3BlobStore:
    """``s3://bucket/prefix`` and ``s3a://`` (the spec's factory)."""
    config = S3Config.from_url(url.location, dict(url.options))
    return S3BlobStore(config, url=url.without_options())


def _utc(value: Any) -> datetime | None:
    return value.astimezone(UTC) if isinstance(value, datetime) else None


def _abort_upload(f: Any, error: BaseException) -> None:
    """Abort a failed multipart upload (single PUTs leave nothing behind to abort)."""
    try:
        if getattr(f, "mpu", None) is None:
            return
        if is_connection_error(error):
            logger.warning(
                "S3 unreachable: multipart upload of %s left incomplete (invisible to readers; "
                "a lifecycle rule with AbortIncompleteMultipartUpload removes its parts)",
                f.path,
            )
            return
        try:
            f.discard()
        except Exception:  # the write already failed; its error is the one to raise
            logger.warning("could not abort the multipart upload of %s", f.path, exc_info=True)
    finally:
        # Closed for good: otherwise the file would try to commit itself when collected.
        f.closed = True


class _Reader(io.RawIOBase):
    """An S3File whose read errors come out as genstore errors."""

    def __init__(self, f: Any, key: str) -> None:
        self._f = f
        self._key = key

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        with translate_s3_errors(self._key):
            data = self._f.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        with translate_s3_errors(self._key):
            return bytes(self._f.read())

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with translate_s3_errors(self._key):
            return int(self._f.seek(offset, whence))

    def tell(self) -> int:
        return int(self._f.tell())

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()
