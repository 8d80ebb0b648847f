"""Streaming a provider's result URL into the store: bounded in time and size, never whole in memory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

__all__ = ["Download", "DownloadError", "open_download"]


class DownloadError(Exception):
    """The result URL could not be fetched; the message goes into ``result_error``."""


@dataclass
class Download:
    """An open download: its declared type and its body as chunks (checked against the limit)."""

    content_type: str | None
    chunks: Iterator[bytes]


def _limited(response: httpx.Response, limit: int) -> Iterator[bytes]:
    received = 0
    try:
        for chunk in response.iter_bytes(1024 * 1024):
            received += len(chunk)
            if received > limit:
                raise DownloadError(f"result is larger than the limit of {limit} bytes")
            yield chunk
    except httpx.TimeoutException as exc:
        raise DownloadError(f"timed out while downloading the result: {exc}") from exc
    except httpx.HTTPError as exc:
        raise DownloadError(f"download failed: {type(exc).__name__}: {exc}") from exc


@contextmanager
def open_download(client: httpx.Client, url: str, *, limit: int) -> Iterator[Download]:
    """GET ``url`` streaming; ``DownloadError`` for bad URLs, HTTP errors, timeouts and oversize."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise DownloadError(f"result URL scheme {scheme or '(none)'!r} is not http or https")
    try:
        with client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise DownloadError(f"result URL answered HTTP {response.status_code}")
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise DownloadError(f"result is {length} bytes, over the limit of {limit} bytes")
            yield Download(response.headers.get("content-type"), _limited(response, limit))
    except httpx.TimeoutException as exc:
        raise DownloadError(f"timed out fetching the result URL: {exc}") from exc
    except httpx.HTTPError as exc:
        raise DownloadError(f"could not fetch the result URL: {type(exc).__name__}: {exc}") from exc
