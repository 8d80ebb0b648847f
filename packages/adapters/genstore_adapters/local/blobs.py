"""Local files: the fsspec backend on the local filesystem, with atomic replace and exclusive create.

Writes go to ``<root>/.tmp/`` then ``os.replace`` into place (same filesystem, so atomic);
exclusive creates use ``os.link``, which fails rather than replace. ``?fsync=true`` also flushes
each blob and its folder to disk before it becomes visible (off by default, like most stores).
A folder that cannot be written when the store opens (permissions, a full or read-only disk) does
not stop it opening: writes fail ``BackendUnavailable`` until it can (the recorder spools them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from fsspec.implementations.local import LocalFileSystem
from genstore.exceptions import AlreadyExists, BackendUnavailable
from genstore.plugin import StoreURL

from .._options import UrlOptions
from ..fsspec.blobs import FsspecBlobStore
from ..fsspec.errors import translate_os_errors

__all__ = ["LocalBlobStore", "open_local"]

logger = logging.getLogger(__name__)

_TMP = ".tmp"


class LocalBlobStore(FsspecBlobStore):
    """Blobs as files under ``root``."""

    exclusive_writes_are_atomic = True  # os.link refuses an existing name

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        root = root.expanduser().resolve()
        try:
            with translate_os_errors(str(root)):
                (root / _TMP).mkdir(parents=True, exist_ok=True)
        except BackendUnavailable as exc:  # the first write that can makes it
            logger.warning("genstore: the store folder %s cannot be written now: %s", root, exc)
        super().__init__(LocalFileSystem(), root.as_posix(), url=str(root))
        self.path = root
        self.fsync = fsync
        self.default_catalog = f"sqlite:///{root.as_posix()}/catalog.sqlite3"
        self._made_dirs: set[str] = set()

    def _file(self, key: str) -> str:
        return os.path.join(self.root, key)

    def local_root(self) -> Path:
        """The folder the blobs live in, as plain files."""
        return self.path

    def _write(
        self, key: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        dest = self._file(key)
        tmp = os.path.join(self.root, _TMP, uuid.uuid4().hex)
        size = 0
        replaced = False
        with translate_os_errors(key):
            try:
                with _create(tmp) as f:
                    for chunk in chunks:
                        f.write(chunk)
                        size += len(chunk)
                    if self.fsync:
                        f.flush()
                        os.fsync(f.fileno())
                parent = os.path.dirname(dest)
                if parent not in self._made_dirs:
                    os.makedirs(parent, exist_ok=True)
                    self._made_dirs.add(parent)
                if exclusive:
                    try:
                        os.link(tmp, dest)
                    except FileExistsError:
                        raise AlreadyExists(f"a blob already exists at {key!r}") from None
                else:
                    os.replace(tmp, dest)
                    replaced = True
                if self.fsync:
                    _fsync_dir(parent)
            finally:
                if not replaced:
                    _unlink_quietly(tmp)
        return size

    def _open(self, key: str) -> IO[bytes]:
        with translate_os_errors(key):
            return open(self._file(key), "rb")

    def _read(self, key: str) -> bytes:
        with translate_os_errors(key), open(self._file(key), "rb") as f:
            return f.read()

    def _exists(self, key: str) -> bool:
        return os.path.isfile(self._file(key))

    def _delete(self, key: str) -> None:
        with translate_os_errors(key):
            _unlink_quietly(self._file(key))

    def _url_for(self, key: str, *, expires: int) -> str | None:
        return Path(self._file(key)).as_uri()

    def sweep_temporaries(self, older_than: float = 3600.0) -> int:
        """Remove temporary files left by writes that were killed; return how many."""
        removed = 0
        cutoff = time.time() - older_than
        tmp_dir = os.path.join(self.root, _TMP)
        with translate_os_errors(_TMP), os.scandir(tmp_dir) as entries:
            for entry in entries:
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    _unlink_quietly(entry.path)
                    removed += 1
        return removed


def _create(tmp: str) -> IO[bytes]:
    """Open the new temporary file ``tmp``, making its folder if the store opened without it
    (never the store's own folder: one that went away is unavailable, not made again)."""
    try:
        return open(tmp, "wb")
    except FileNotFoundError:
        folder = os.path.dirname(tmp)
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"the store folder {os.path.dirname(folder)} is gone") from exc
        return open(tmp, "wb")


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_local(url: StoreURL) -> LocalBlobStore:
    """``file://`` URLs and plain paths; option ``fsync`` (default false)."""
    options = UrlOptions(url.options, "local store")
    options.check_known({"fsync"})
    return LocalBlobStore(url.path, fsync=options.flag("fsync"))
