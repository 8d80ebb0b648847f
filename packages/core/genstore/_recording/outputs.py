"""One output of a generation, as found in what a function returned or a route answered.

An ``Output`` is one of five kinds, each holding what the store needs to keep it:

- ``"url"``: a ``str``, absolute (``http(s)://``) or relative to the service (``/files/x.png``).
  Resolving a relative URL is the caller's job (against a configured base URL or the app itself,
  never a request's ``Host`` header); downloading it too.
- ``"bytes"``: the content itself (from base64 fields, ``data:`` URLs or raw bytes), with its
  ``content_type`` (declared by a ``data:`` URL, else sniffed; ``application/octet-stream`` when
  neither says).
- ``"path"``: a local file path (``str``), from a ``pathlib`` path.
- ``"image"``: a PIL image.
- ``"file"``: a binary file object, to be read once.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_to_bytes, urlsplit

from .._redaction import redact_url
from .._save_request import ResultSource, ResultURL
from .._sniff import sniff_content_type

__all__ = [
    "Output",
    "OutputKind",
    "decode_base64_media",
    "decode_data_url",
    "resolve_relative",
    "result_sources",
    "string_output",
]

OutputKind = Literal["url", "bytes", "path", "image", "file"]

_OCTET = "application/octet-stream"
_B64_CHARS = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_MIN_B64_MEDIA = 24
"""Shorter strings are never taken for base64 media (no image or video fits in 18 bytes)."""


@dataclass(frozen=True, slots=True)
class Output:
    """One output: ``kind`` says what ``value`` is (see the module documentation)."""

    kind: OutputKind
    value: Any
    """A URL or path (``str``), ``bytes``, a PIL image, or a binary file object."""
    content_type: str | None = None
    """The media type of ``bytes`` outputs; None for the other kinds."""

    @property
    def is_relative_url(self) -> bool:
        """A URL with no scheme and host: to resolve against a base the caller trusts."""
        return self.kind == "url" and not _is_absolute_url(self.value)

    def __repr__(self) -> str:
        if self.kind == "bytes":
            shown = f"<{len(self.value)} bytes>"
        elif self.kind == "url":
            shown = repr(self.value if len(self.value) <= 200 else self.value[:197] + "...")
        else:
            shown = f"<{type(self.value).__name__}>"
        return f"Output({self.kind}, {shown}, {self.content_type!r})"


def _is_absolute_url(value: str) -> bool:
    return value[:8].lower().startswith(("http://", "https://"))


def _is_relative_url(value: str) -> bool:
    # "//host/x" is scheme-relative: it names a host, so it is not the service's own path.
    return value.startswith("/") and not value.startswith("//")


def string_output(value: str, *, base64_field: bool = False) -> Output | None:
    """The output a string stands for, or None.

    An ``http(s)://`` URL is a URL; a ``data:`` URL is decoded to bytes; base64 is decoded when
    ``base64_field`` (a field that holds base64 by its provider's definition, such as
    ``b64_json``) or when its first bytes show a known image or video signature (so plain text
    is never mistaken for content); else a path-relative URL (``/x``, not ``//host``) is a URL.
    """
    if _is_absolute_url(value):
        return Output("url", value)
    if value[:5].lower() == "data:":
        decoded = decode_data_url(value)
        return None if decoded is None else Output("bytes", decoded[0], decoded[1])
    # Base64 may start with "/" (every JPEG's does: "/9j/"), so it is tried before taking the
    # string for a relative URL; a path never decodes to a media signature.
    media = decode_base64_media(value, require_signature=not base64_field)
    if media is not None:
        return Output("bytes", media[0], media[1])
    if _is_relative_url(value) and not base64_field:
        return Output("url", value)
    return None


def decode_data_url(value: str) -> tuple[bytes, str] | None:
    """The bytes and media type of a ``data:`` URL, or None if it is not a valid one.

    The declared media type is kept unless it is missing or generic, then the bytes are sniffed.
    """
    if value[:5].lower() != "data:":
        return None
    header, sep, payload = value[5:].partition(",")
    if not sep:
        return None
    media_type, _, options = header.partition(";")
    try:
        if options.split(";")[-1].strip().lower() == "base64":
            data = _b64decode(payload)
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, ValueError):
        return None
    declared = media_type.strip().lower()
    if not declared or declared == _OCTET:
        declared = sniff_content_type(data[:64])
    return data, declared


def decode_base64_media(value: str, *, require_signature: bool) -> tuple[bytes, str] | None:
    """Bytes and sniffed media type of a base64 string (standard or URL-safe alphabet), or None.

    ``require_signature``: only accept it when the decoded bytes start with a known media
    signature; the head is checked before the whole string is decoded, so text costs little.
    """
    text = "".join(value.split())  # base64 wrapped at 76 columns is still base64
    if len(text) < (_MIN_B64_MEDIA if require_signature else 4):
        return None
    if require_signature:
        head = text[:64]
        try:
            sniffed = sniff_content_type(_b64decode(head[: len(head) // 4 * 4]))
        except (binascii.Error, ValueError):
            return None
        if sniffed == _OCTET:
            return None
    if not text.isascii() or not _B64_CHARS.fullmatch(text):
        return None
    try:
        data = _b64decode(text)
    except (binascii.Error, ValueError):
        return None
    if not data:
        return None
    return data, sniff_content_type(data[:64])


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64, padding optional (providers differ on both)."""
    cleaned = "".join(text.split())
    cleaned += "=" * (-len(cleaned) % 4)
    if "-" in cleaned or "_" in cleaned:
        return base64.urlsafe_b64decode(cleaned)
    return base64.b64decode(cleaned, validate=True)


def result_sources(
    outputs: list[Output], *, base_url: str | None
) -> tuple[list[ResultSource], list[str]]:
    """What the store saves for ``outputs`` (URLs to download, or the outputs themselves), and a
    note for each output it cannot take: a relative URL with no ``base_url`` to resolve it."""
    found: list[ResultSource] = []
    notes: list[str] = []
    for output in outputs:
        if output.kind != "url":
            found.append(output.value)
        elif not output.is_relative_url:
            found.append(ResultURL(output.value))
        elif base_url is not None:
            found.append(ResultURL(resolve_relative(output.value, base_url)))
        else:
            shown = redact_url(output.value)[:100]
            notes.append(f"relative result URL {shown!r} needs a base_url to fetch")
    return found, notes


def resolve_relative(path: str, base_url: str) -> str:
    """The absolute URL of a path-relative result URL (``/x``) under ``base_url``.

    A path already under the base's own path (``url_for`` includes the root path) is joined to
    the base's origin; any other path is put under the base path.
    """
    parts = urlsplit(base_url)
    origin = f"{parts.scheme}://{parts.netloc}"
    root = parts.path.rstrip("/")
    if not root or path == root or path.startswith(root + "/") or path.startswith(root + "?"):
        return origin + path
    return origin + root + path
