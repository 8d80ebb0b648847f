"""Content types from the bytes themselves, with the file extension genstore stores them under."""

from __future__ import annotations

import mimetypes

__all__ = ["extension_for", "sniff_content_type"]

_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"\x1a\x45\xdf\xa3", 0, "video/webm"),
    (b"%PDF-", 0, "application/pdf"),
)

_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/avif": "avif",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "application/pdf": "pdf",
    "application/json": "json",
    "text/plain": "txt",
}


def sniff_content_type(head: bytes, fallback: str | None = None) -> str:
    """The MIME type the first bytes show; else ``fallback``; else application/octet-stream."""
    for signature, offset, mime in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if fallback:
        return fallback.split(";", 1)[0].strip().lower() or "application/octet-stream"
    return "application/octet-stream"


def extension_for(content_type: str) -> str:
    """The extension genstore uses for a MIME type (``bin`` when unknown)."""
    ext = _EXTENSIONS.get(content_type)
    if ext:
        return ext
    guessed = mimetypes.guess_extension(content_type, strict=False)
    if guessed and guessed[1:].isalnum() and len(guessed) <= 9:
        return guessed[1:].lower()
    return "bin"
