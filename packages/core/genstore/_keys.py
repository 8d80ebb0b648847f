"""Key naming: the same layout on every backend.

operations/YYYYMMDD/<operation_id>.json        the record (written last: the commit point)
operations/YYYYMMDD/<operation_id>_out.<ext>   the first result; ``_out-<n>.<ext>`` the n-th after it
inputs/sha256/<ab>/<sha256>.<ext>              input images, content-addressed
images/<user_id>/<ts>_generated_<ts>[-n].png   user images (the seed's naming)
images/<user_id>/<image_id>.json               image records

Every key a ``BlobStore`` is handed passes ``check_blob_key`` first (the base class calls it), so
every backend accepts exactly the same keys. The rule refuses up front, never rewrites:

- 1 to 1,024 characters; ``/``-separated segments, none empty, ``.`` or ``..``, none starting
  with ``.`` (hidden: backends keep their temporaries there, and listings leave them out);
- each segment made of ASCII letters, digits and ``_ - . @ : + = ,`` only. Refused, because some
  backend refuses or silently rewrites them: ``%`` (Supabase decodes ``%XX``), ``#`` and ``?``
  (URL syntax), ``~``, ``[``, ``]``, ``\\`` (a separator on Windows and fsspec), ``*``, quotes,
  spaces, control characters, and anything non-ASCII (S3 and Supabase normalise or refuse it).

genstore's own keys are built from checked ids (``genstore._ids.check_id``: the same alphabet),
so no key it makes is refused; a caller with names outside it encodes them (hex, base32) first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ._ids import check_id
from .exceptions import InvalidInput

__all__ = [
    "IMAGES_PREFIX",
    "INPUTS_PREFIX",
    "MAX_KEY_LENGTH",
    "OPERATIONS_PREFIX",
    "ParsedKey",
    "check_blob_key",
    "check_blob_prefix",
    "image_blob_key",
    "image_record_key",
    "input_key",
    "operation_record_key",
    "operation_result_key",
    "parse_key",
]

OPERATIONS_PREFIX = "operations/"
INPUTS_PREFIX = "inputs/sha256/"
IMAGES_PREFIX = "images/"

MAX_KEY_LENGTH = 1024
"""Longest key, in characters (ASCII only, so bytes too): S3's limit."""

_SEGMENT = re.compile(r"[A-Za-z0-9_@:+=,-][A-Za-z0-9_.@:+=,-]*")
_EXT = re.compile(r"[a-z0-9]{1,8}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_OP_ID = re.compile(r"(\d{8})_[0-9A-Z]{26}")
_RESULT_STEM = re.compile(r"(\d{8}_[0-9A-Z]{26})_out(?:-[1-9][0-9]{0,5})?")


def check_blob_key(key: object) -> str:
    """Return ``key`` if every backend can store it unchanged, else raise ``InvalidInput``."""
    if not isinstance(key, str):
        raise InvalidInput(f"a blob key must be a string, not {type(key).__name__}")
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"a blob key has 1 to {MAX_KEY_LENGTH} characters, not {len(key)}")
    for segment in key.split("/"):
        if ".." in segment or not _SEGMENT.fullmatch(segment):
            raise InvalidInput(
                f"{key[:80]!r} is not a valid blob key: segments of ASCII letters, digits and "
                "_ - . @ : + = , only, none empty or starting with a dot"
            )
    return key


def check_blob_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is ``""`` or a valid key, optionally ending in ``/``."""
    if prefix == "":
        return ""
    if not isinstance(prefix, str):
        raise InvalidInput(f"a blob prefix must be a string, not {type(prefix).__name__}")
    check_blob_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _ext(ext: str) -> str:
    ext = ext.lower().lstrip(".")
    if not _EXT.fullmatch(ext):
        raise InvalidInput(f"file extension {ext[:20]!r} is not allowed")
    return ext


def _day(operation_id: str) -> str:
    check_id(operation_id, "operation_id")
    day = operation_id[:8]
    return day if day.isdigit() and len(day) == 8 else "other"


def operation_record_key(operation_id: str) -> str:
    """Key of an operation's JSON record."""
    return f"{OPERATIONS_PREFIX}{_day(operation_id)}/{operation_id}.json"


def operation_result_key(operation_id: str, ext: str, index: int = 0) -> str:
    """Key of an operation's stored result: ``_out`` for the first (``index`` 0), ``_out-<n>`` for
    the n-th after it, so the keys keep the provider's order."""
    if not isinstance(index, int) or index < 0:
        raise InvalidInput("a result index is a non-negative integer")
    suffix = f"-{index}" if index else ""
    return f"{OPERATIONS_PREFIX}{_day(operation_id)}/{operation_id}_out{suffix}.{_ext(ext)}"


def input_key(sha256: str, ext: str) -> str:
    """Content-addressed key of an input image."""
    if not _SHA256.fullmatch(sha256):
        raise InvalidInput("sha256 must be 64 lower-case hex digits")
    return f"{INPUTS_PREFIX}{sha256[:2]}/{sha256}.{_ext(ext)}"


IMAGE_EXTENSIONS = frozenset({"png", "jpg", "webp"})
"""The extensions of user images (PNG as the seed has them; JPEG and WebP where accepted)."""


def image_blob_key(user_id: str, timestamp_ms: int, n: int = 0, ext: str = "png") -> str:
    """Key of a user's image: ``<ts>_generated_<ts>.png``, ``-<n>`` added on a same-millisecond
    clash; ``ext`` ``jpg`` or ``webp`` for the other accepted types."""
    check_id(user_id, "user_id")
    if ext not in IMAGE_EXTENSIONS:
        raise InvalidInput(f"a user image is one of {sorted(IMAGE_EXTENSIONS)}, not {ext[:20]!r}")
    suffix = f"-{n}" if n else ""
    return f"{IMAGES_PREFIX}{user_id}/{timestamp_ms}_generated_{timestamp_ms}{suffix}.{ext}"


def image_record_key(user_id: str, image_id: str) -> str:
    """Key of a user image's JSON record."""
    check_id(user_id, "user_id")
    check_id(image_id, "image_id")
    return f"{IMAGES_PREFIX}{user_id}/{image_id}.json"


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """What a key names: ``kind`` is one of operation, result, input, image, image_record."""

    kind: str
    operation_id: str | None = None
    user_id: str | None = None
    image_id: str | None = None
    sha256: str | None = None


def parse_key(key: str) -> ParsedKey | None:
    """Tell what a key in the layout names, or None for anything else (temp files, strangers)."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "operations":
        name = parts[2]
        if name.endswith(".json") and _OP_ID.fullmatch(name[:-5]):
            return ParsedKey("operation", operation_id=name[:-5])
        stem, _, ext = name.rpartition(".")
        match = _RESULT_STEM.fullmatch(stem)
        if match and _EXT.fullmatch(ext):
            return ParsedKey("result", operation_id=match.group(1))
        return None
    if len(parts) == 4 and parts[0] == "inputs" and parts[1] == "sha256":
        stem, _, ext = parts[3].rpartition(".")
        if _SHA256.fullmatch(stem) and parts[2] == stem[:2] and _EXT.fullmatch(ext):
            return ParsedKey("input", sha256=stem)
        return None
    if len(parts) == 3 and parts[0] == "images":
        user, name = parts[1], parts[2]
        try:
            check_id(user)
        except InvalidInput:
            return None
        if name.endswith(".json"):
            try:
                check_id(name[:-5])
            except InvalidInput:
                return None
            return ParsedKey("image_record", user_id=user, image_id=name[:-5])
        if name.rpartition(".")[2] in IMAGE_EXTENSIONS and "_generated_" in name:
            return ParsedKey("image", user_id=user)
    return None
