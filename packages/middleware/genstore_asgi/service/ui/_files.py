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
    "parse_range",
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


class Unsatisfiable(ValueError):
    """The Range header names no byte of the blob (HTTP 416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range ``header`` asks for, as ``(start, end)`` inclusive and clamped to
    ``size``; None to send the whole blob (no header, several ranges, or a form not understood,
    as RFC 9110 allows); ``Unsatisfiable`` when no byte of the blob is named."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, sep, last = header[6:].strip().partition("-")
    digits = (first == "" or first.isdigit()) and (last == "" or last.isdigit())
    if not sep or not digits or first == last == "" or len(first) + len(last) > 30:
        return None
    if first == "":  # "-n": the last n bytes
        if int(last) == 0 or size == 0:
            raise Unsatisfiable("empty suffix range")
        return max(0, size - int(last)), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise Unsatisfiable(f"range starts at byte {start} of {size}")
    return start, min(end, size - 1)


def _chunks(file: IO[bytes], start: int, length: int | None) -> Iterator[bytes]:
    with file:
        if start:
            file.seek(start)
        left = length
        while left is None or left > 0:
            chunk = file.read(_CHUNK if left is None else min(_CHUNK, left))
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk


def stream_blob(
    request: Request,
    file: IO[bytes],
    *,
    content_type: str | None,
    size: int,
    etag: str,
    filename: str,
    download: bool,
) -> Response:
    """Stream an opened blob (read in a worker thread), inline if its type is safe to show.

    A single ``Range`` is answered 206 (videos seek with it); ``If-Range`` naming another
    version gets the whole blob.
    """
    media = inline_type(content_type)
    disposition = "attachment" if download or media is None else "inline"
    headers = {
        **_SANDBOX,
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "Content-Disposition": f'{disposition}; filename="{filename}"',
        "Accept-Ranges": "bytes",
    }
    if_range = request.headers.get("if-range")
    try:
        wanted = (
            None
            if if_range not in (None, etag)
            else parse_range(request.headers.get("range"), size)
        )
    except Unsatisfiable:
        file.close()
        headers["Content-Range"] = f"bytes */{size}"
        return Response(status_code=416, headers=headers)
    start, length, status = 0, size, 200
    if wanted is not None:
        start, length, status = wanted[0], wanted[1] - wanted[0] + 1, 206
        headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1]}/{size}"
    headers["Content-Length"] = str(length)
    return StreamingResponse(
        _chunks(file, start, length),
        status_code=status,
        media_type=media or "application/octet-stream",
        headers=headers,
    )


def image_response(data: bytes, *, media_type: str, etag: str) -> Response:
    """Small in-memory image bytes (thumbnails), cacheable."""
    return Response(
        data,
        media_type=media_type,
        headers={**_SANDBOX, "ETag": etag, "Cache-Control": CACHE_CONTROL},
    )
