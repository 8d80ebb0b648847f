"""Result downloads off the worker's path: a bounded pool fetches a record's result URLs into
files, then the record goes back in line, so a slow provider never holds back other records.

Each download has its own total deadline (``StoreOptions.download_deadline``); at most
``MAX_DOWNLOADS`` run at once. What could not be fetched is kept as a ``FetchFailed`` output (its
error goes into the record's ``result_error``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .._redaction import strip_signing
from .._save_request import Fetched, FetchFailed, JobCompletion, ResultSource, ResultURL
from .items import Recordable

__all__ = ["MAX_DOWNLOADS", "Downloads", "needs_download"]

logger = logging.getLogger("genstore._recording.recorder")

MAX_DOWNLOADS = 4
"""Result downloads running at once (each bounded by its own total deadline)."""

Fetch = Callable[[str, Path], "str | None"]


def needs_download(request: Recordable) -> bool:
    """Whether ``request`` has a result URL (http or https) still to download."""
    saved = request.fallback if isinstance(request, JobCompletion) else request
    return any(isinstance(o, ResultURL) and _is_http(o.url) for o in saved.outputs)


class Downloads:
    """The pool, made on first use; files go into ``folder`` (beside the spool, so a record
    spooled afterwards moves them in on the same filesystem)."""

    def __init__(self, folder: Path, fetch: Fetch) -> None:
        self.folder = folder
        self._fetch = fetch
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, task: Callable[[], None]) -> None:
        """Run ``task`` on the pool."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(MAX_DOWNLOADS, thread_name_prefix="genstore-download")
        self._pool.submit(task)

    def fetch_all(self, request: Recordable) -> tuple[Recordable, list[str]]:
        """``request`` with its result URLs downloaded (``Fetched``, or ``FetchFailed``), and the
        files made for them."""
        saved = request.fallback if isinstance(request, JobCompletion) else request
        self.folder.mkdir(parents=True, exist_ok=True)
        paths: list[str] = []
        outputs = [self._one(output, paths) for output in saved.outputs]
        fetched = dataclasses.replace(saved, outputs=tuple(outputs))
        if isinstance(request, JobCompletion):
            return dataclasses.replace(request, fallback=fetched), paths
        return fetched, paths

    def _one(self, output: ResultSource, paths: list[str]) -> ResultSource:
        if not (isinstance(output, ResultURL) and _is_http(output.url)):
            return output
        target = self.folder / f"{uuid.uuid4().hex}.bin"
        error = self._fetch(output.url, target)
        if error is not None:
            return FetchFailed(strip_signing(output.url), error)
        paths.append(os.fspath(target))
        return Fetched(os.fspath(target), strip_signing(output.url))

    def close(self) -> None:
        """Stop taking work (running downloads finish on their own, within their deadline)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=False)


def _is_http(url: str) -> bool:
    return url[:7].lower() == "http://" or url[:8].lower() == "https://"
