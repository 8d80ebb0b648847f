"""Input checks for the images API: pure functions that return a clean value or raise
``InvalidInput`` / ``PayloadTooLarge`` (nothing else, whatever they are handed).

Decisions a caller may rely on:

- ``decode_image_data``: a ``str`` is base64 (standard or URL-safe alphabet, optional
  ``data:<type>;base64,`` prefix, whitespace and missing padding tolerated); ``bytes``-like values
  are the image itself, taken as they are. The size limit is checked from the encoded length
  before anything is decoded.
- ``check_png``: PNG only. The pixel limit is ours (``max_pixels``) and is checked from the PNG
  header before Pillow sees the image; Pillow's process-wide ``Image.MAX_IMAGE_PIXELS`` is left
  alone (it belongs to the host application) but never lets a bomb through either.
- ``sanitize_prompt``: NFC-normalised, control characters removed except newline and tab, line
  endings made ``\\n``, trimmed; an empty result or one longer than ``max_length`` characters is
  refused (``InvalidInput``), never silently truncated: a cut prompt would misdescribe the image.
- ``check_metadata``: a JSON object (``None`` means ``{}``), at most 64 KiB serialised by default,
  returned as a fresh copy of plain JSON values.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import re
import struct
import unicodedata
from collections.abc import Collection, Mapping

from PIL import Image, UnidentifiedImageError
from pydantic import JsonValue

from ._records import ImageStatus
from ._sniff import sniff_content_type
from .exceptions import InvalidInput, PayloadTooLarge

__all__ = [
    "MAX_METADATA_BYTES",
    "PNG_SIGNATURE",
    "check_metadata",
    "check_png",
    "check_status",
    "decode_image_data",
    "sanitize_prompt",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_METADATA_BYTES = 64 * 1024
"""Default cap on an image's metadata, serialised as compact UTF-8 JSON."""

_MAX_DEPTH = 32
_DATA_URL_HEADER_MAX = 256
_WHITESPACE = b" \t\r\n\f\v"
_IGNORED_CHARS = " \t\r\n\f\v="
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_NEWLINES = re.compile(r"\r\n?|[\x85\u2028\u2029]")
# C0 controls but tab and newline, DEL, C1 controls (together: Unicode category Cc), and lone
# surrogates, which cannot be encoded and would break the JSON record and the catalog.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n} bytes"


def _too_large(max_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"image data is larger than the limit of {max_bytes} bytes ({_mib(max_bytes)})",
        limit=max_bytes,
    )


def decode_image_data(data: str | bytes | bytearray | memoryview, *, max_bytes: int) -> bytes:
    """The image bytes from base64 text (optionally a ``data:`` URL) or from raw bytes.

    ``PayloadTooLarge`` (``.limit`` = ``max_bytes``) when the decoded image would exceed
    ``max_bytes``, found from the length alone before decoding; ``InvalidInput`` for empty data,
    bad base64, a non-base64 ``data:`` URL, or another type.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            size = data.nbytes if isinstance(data, memoryview) else len(data)
        except ValueError:  # a released memoryview
            raise InvalidInput("image data is a released memoryview") from None
        if size > max_bytes:
            raise _too_large(max_bytes)
        if size == 0:
            raise InvalidInput("image data is empty")
        return bytes(data)
    if not isinstance(data, str):
        raise InvalidInput(f"image data must be base64 text or bytes, not {type(data).__name__}")
    # Cheap refusal of absurd payloads before touching a character: whitespace is tolerated, so
    # allow the text to be up to twice the encoded limit (newlines every 76 characters add ~3%).
    max_encoded = 4 * math.ceil(max_bytes / 3)
    if len(data) > 2 * max_encoded + _DATA_URL_HEADER_MAX:
        raise _too_large(max_bytes)
    start, header_error = _data_url_payload_start(data)
    # Exact decoded size from the count of base64 characters (whitespace and padding do not
    # count), found with str.count passes: no copy, no decoding, whatever the characters are.
    chars = len(data) - start - sum(data.count(c, start) for c in _IGNORED_CHARS)
    if chars * 3 // 4 > max_bytes:
        raise _too_large(max_bytes)
    if header_error:
        raise InvalidInput(header_error)
    payload = data[start:] if start else data
    try:
        raw = payload.encode("ascii")
    except UnicodeEncodeError:
        raise InvalidInput("image data is not base64: it has non-ASCII characters") from None
    raw = raw.translate(None, _WHITESPACE)
    if not raw:
        raise InvalidInput("image data is empty")
    raw = raw.translate(_URLSAFE_TO_STANDARD)
    unpadded = raw.rstrip(b"=")
    if len(unpadded) % 4 == 1:
        raise InvalidInput("image data is not valid base64 (its length is impossible)")
    raw = unpadded + b"=" * (-len(unpadded) % 4)
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("image data is not valid base64") from None
    if not decoded:
        raise InvalidInput("image data is empty")
    return decoded


def _data_url_payload_start(text: str) -> tuple[int, str | None]:
    """Where the base64 starts: after a leading ``data:<type>[;params];base64,``, else 0.

    Also says why a ``data:`` URL is refused (not base64, no comma), for the caller to raise once
    the size has been checked.
    """
    window = text[:_DATA_URL_HEADER_MAX]
    head = window.lstrip()
    if head[:5].lower() != "data:":
        return 0, None
    comma = head.find(",")
    if comma < 0:
        return 0, "image data is a data: URL without a ',' after its header"
    start = len(window) - len(head) + comma + 1
    if not head[5:comma].lower().rstrip().endswith(";base64"):
        return start, "image data is a data: URL that is not base64-encoded"
    return start, None


def _describe(data: bytes) -> str:
    kind = sniff_content_type(data[:16])
    if kind != "application/octet-stream":
        return kind
    if data[:5].lower() == b"data:" or data[:11] == b"iVBORw0KGgo":
        return "base64 text (pass base64 as str, raw image bytes as bytes)"
    if data[:1] in (b"{", b"[") or data[:5].lower() in (b"<?xml", b"<!doc", b"<html"):
        return "text"
    return "unrecognised bytes"


def check_png(data: bytes, *, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` of a valid PNG; ``InvalidInput`` for anything else.

    Checked in order: the PNG signature (a JPEG, GIF, ... is named in the message), the IHDR
    header and the pixel limit (a decompression bomb is refused before any decoding), then
    Pillow's ``Image.open`` + ``verify()`` (chunk CRCs, structure) and a re-open for the size.
    """
    if not data:
        raise InvalidInput("image data is empty")
    if data[:8] != PNG_SIGNATURE:
        raise InvalidInput(f"image data must be a PNG, but it looks like {_describe(data)}")
    # The IHDR chunk must come first: 4-byte length (13), b"IHDR", width, height (big-endian).
    if len(data) < 33 or data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise InvalidInput("image data is not a valid PNG: its IHDR header is missing")
    width, height = struct.unpack(">II", data[16:24])
    if width == 0 or height == 0:
        raise InvalidInput("image data is not a valid PNG: zero width or height")
    pixels = width * height
    # Pillow warns above its own process-wide limit (and raises above twice it). Staying under it as
    # well means Pillow never emits DecompressionBombWarning, which a host running with warnings as
    # errors would otherwise see raised; wrapping calls in warnings.catch_warnings() instead would
    # touch the process-global filter list, which is not thread-safe.
    pillow_limit = Image.MAX_IMAGE_PIXELS
    limit = max_pixels if pillow_limit is None else min(max_pixels, pillow_limit)
    if pixels > limit:
        raise InvalidInput(
            f"image is {width}x{height} = {pixels} pixels, over the limit of {limit} pixels "
            "(refused as a possible decompression bomb)"
        )
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            im.verify()
        # verify() leaves the image unusable; a fresh open reads the size Pillow agrees on.
        with Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            size: tuple[int, int] = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Only if the host lowered Image.MAX_IMAGE_PIXELS between the check above and here.
        raise InvalidInput(f"image refused as a possible decompression bomb: {exc}") from None
    except MemoryError:
        raise
    except UnidentifiedImageError:
        raise InvalidInput("image data is not a valid PNG: Pillow cannot read it") from None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ...
        raise InvalidInput(f"image data is not a valid PNG: {exc}") from None
    if size != (width, height):
        raise InvalidInput("image data is not a valid PNG: inconsistent header")
    return size


IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
"""The user image types a store can accept, and their Pillow format names."""


def check_image(data: bytes, *, accepted: Collection[str], max_pixels: int) -> tuple[str, int, int]:
    """``(content_type, width, height)`` of a valid image of an ``accepted`` type.

    The type is told by the bytes' signature, never by what the caller says. PNGs are checked as
    ``check_png`` does; JPEG and WebP by their header's size (the pixel limit refuses a
    decompression bomb before any decoding) and then a full decode by Pillow.
    """
    if not data:
        raise InvalidInput("image data is empty")
    kind = sniff_content_type(data[:16])
    if kind not in accepted or kind not in IMAGE_TYPES:
        names = " or ".join(IMAGE_TYPES[t] for t in accepted if t in IMAGE_TYPES) or "none"
        raise InvalidInput(f"image data must be {names}, but it looks like {_describe(data)}")
    if kind == "image/png":
        return (kind, *check_png(data, max_pixels=max_pixels))
    return kind, *_check_decoded(data, IMAGE_TYPES[kind], max_pixels)


def _check_decoded(data: bytes, pillow_format: str, max_pixels: int) -> tuple[int, int]:
    pillow_limit = Image.MAX_IMAGE_PIXELS
    limit = max_pixels if pillow_limit is None else min(max_pixels, pillow_limit)
    try:
        with Image.open(io.BytesIO(data), formats=[pillow_format]) as im:
            width, height = im.size  # read from the header: nothing decoded yet
            if width * height > limit:
                raise InvalidInput(
                    f"image is {width}x{height} = {width * height} pixels, over the limit of "
                    f"{limit} pixels (refused as a possible decompression bomb)"
                )
            im.load()  # a truncated or corrupt body fails here
    except InvalidInput:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error, ...
        raise InvalidInput(f"image data is not a valid {pillow_format}: {exc}") from None
    return width, height


def sanitize_prompt(prompt: object, *, max_length: int) -> str:
    """The prompt, cleaned: ``InvalidInput`` if not a string, empty, or over ``max_length``.

    NFC normalisation; ``\\r\\n``, ``\\r`` and Unicode line separators become ``\\n``; C0/C1 control
    characters (NUL and DEL included) and lone surrogates are removed, newline and tab kept (prompts
    are often multi-line); surrounding whitespace is trimmed. The length limit counts characters of
    the cleaned prompt; raw input far longer than any acceptable prompt is refused before cleaning.
    """
    if not isinstance(prompt, str):
        raise InvalidInput(f"prompt must be a string, not {type(prompt).__name__}")
    if len(prompt) > 4 * max_length + 1024:
        raise InvalidInput(f"prompt is longer than {max_length} characters")
    text = _NEWLINES.sub("\n", prompt)
    text = _CONTROLS.sub("", text)
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise InvalidInput("prompt is empty")
    if len(text) > max_length:
        raise InvalidInput(f"prompt is {len(text)} characters, over the limit of {max_length}")
    return text


def check_status(value: object) -> ImageStatus:
    """The ``ImageStatus`` named by ``value`` (exact, lower case); ``InvalidInput`` otherwise."""
    if isinstance(value, ImageStatus):
        return value
    allowed = ", ".join(s.value for s in ImageStatus)
    if isinstance(value, str):
        try:
            return ImageStatus(value)
        except ValueError:
            pass
        shown = repr(value[:40])
    else:
        shown = f"a {type(value).__name__}"
    raise InvalidInput(f"status {shown} is not one of: {allowed}")


def check_metadata(value: object, *, max_bytes: int = MAX_METADATA_BYTES) -> dict[str, JsonValue]:
    """A fresh copy of ``value`` as a JSON object; ``None`` gives ``{}``.

    ``InvalidInput`` unless it is a mapping with string keys holding only JSON values (str, int,
    finite float, bool, None, lists/tuples, string-keyed mappings; at most 32 levels deep);
    ``PayloadTooLarge`` when its compact UTF-8 JSON is over ``max_bytes``.
    """
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput(f"metadata must be a JSON object, not {type(value).__name__}")
    # Each value and each character serialises to at least one byte, so the checker stops early
    # on an enormous value; the exact size comes from the JSON text.
    copy = _JsonChecker(max_bytes).copy(value, "metadata", 0)
    try:
        text = json.dumps(copy, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        size = len(text.encode("utf-8"))
    except (ValueError, UnicodeEncodeError) as exc:  # over-long ints, lone surrogates
        raise InvalidInput(f"metadata is not valid JSON: {exc}") from None
    if size > max_bytes:
        raise PayloadTooLarge(
            f"metadata is {size} bytes as JSON, over the limit of {max_bytes}", limit=max_bytes
        )
    assert isinstance(copy, dict)
    return copy


class _JsonChecker:
    """Copies a value into plain JSON types (dict, list, ...), refusing anything else."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.budget = max_bytes

    def _spend(self, n: int) -> None:
        self.budget -= n
        if self.budget < 0:
            raise PayloadTooLarge(
                f"metadata is over the limit of {self.max_bytes} bytes as JSON",
                limit=self.max_bytes,
            )

    def copy(self, value: object, where: str, depth: int) -> JsonValue:
        self._spend(1)
        if depth > _MAX_DEPTH:
            raise InvalidInput(f"{where} is nested deeper than {_MAX_DEPTH} levels")
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int):
            return int(value)  # IntEnum and other subclasses become plain ints
        if isinstance(value, str):
            self._spend(len(value))
            return str(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidInput(f"{where} is {value}, which JSON cannot hold")
            return float(value)
        if isinstance(value, Mapping):
            out: dict[str, JsonValue] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInput(f"{where} keys must be text, not {type(key).__name__}")
                self._spend(len(key))
                out[str(key)] = self.copy(item, f"{where}[{key[:40]!r}]", depth + 1)
            return out
        if isinstance(value, list | tuple):
            return [self.copy(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
        raise InvalidInput(f"{where} is not a JSON value but {type(value).__name__}")
