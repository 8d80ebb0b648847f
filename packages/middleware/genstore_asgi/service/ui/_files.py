"""Responses carrying stored bytes: artefacts and thumbnails, with ETag and Cache-Control.

Only the owner reaches these (the caller looks the record up with the signed-in user's id before
anything is read). Stored bytes come from providers and users, so they are served inline only for
media types a browser cannot run script from, with a sandboxing CSP; anything else downloads.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

__all__ = [
    "CACHE_CONTROL",
    "etag_matches",
    "image_response",
    "inline_type",
    "not_modified",
    "stream_blob",
]

CACHE_CONTROL = "private, max-age=3600"
"""Private: the bytes are one user's. An hour, then revalidated by ETag (cheap: no read)."""

_INLINE = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
        "audio/flac",
    }
)
_CHUNK = 256 * 1024
_SANDBOX = {
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Cookie",
}


def inline_type(content_type: str | None) -> str | None:
    """The media type to serve inline, or None when the bytes must be downloaded instead
    (HTML, SVG, anything unknown: a browser could run script from them)."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    return base if base in _INLINE else None


def etag_matches(request: Request, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (or ``*``)."""
    header = request.headers.get("if-none-match")
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags or "*" in tags


def not_modified(etag: str) -> Response:
    """A 304 with the validators a cache needs to keep using its copy."""
    return Response(status_code=304, headers={"ETag": etag, "Cache-Control": CACHE_CONTROL})


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    with file:
        while chunk := file.read(_CHUNK):
            yield chunk


def stream_blob(
    file: IO[bytes],
    *,
    content_type: str | None,
    size: int | None,
    etag: str,
    filename: str,
    download: bool,
) -> Response:
    """Stream an opened blob (read in a worker thread), inline if its type is safe to show."""
    media = inline_type(content_type)
    disposition = "attachment" if download or media is None else "inline"
    headers = {
        **_SANDBOX,
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "Content-Disposition": f'{disposition}; filename="{filename}"',
    }
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(
        _chunks(file), media_type=media or "application/octet-stream", headers=headers
    )


def image_response(data: bytes, *, media_type: str, etag: str) -> Response:
    """Small in-memory image bytes (thumbnails), cacheable."""
    return Response(
        data,
        media_type=media_type,
        headers={**_SANDBOX, "ETag": etag, "Cache-Control": CACHE_CONTROL},
    )
