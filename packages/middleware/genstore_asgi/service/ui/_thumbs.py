"""Thumbnails made with Pillow and cached in the store, keyed by the source's content.

Key: ``thumbnails/<ab>/<sha256>-<px>.webp``, where ``sha256`` is the source artefact's (from its
record, never from the URL). Content-addressed, so the key is deterministic, never stale (a
thumbnail can only ever belong to those bytes) and shared by an operation's result and the user
image made from it. The ``thumbnails/`` prefix is outside every prefix ``genstore verify``,
``cleanup`` and ``reindex`` scan (``operations/``, ``inputs/``, ``images/``), so the cache never
shows up as orphans or corrupt records; deleting the whole prefix is always safe (it refills).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable

from genstore import Store
from genstore.exceptions import GenstoreError, InvalidInput, NotFound
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["THUMBNAIL_PREFIX", "NotAnImage", "cached_thumbnail", "make_thumbnail", "thumbnail_key"]

logger = logging.getLogger(__name__)

THUMBNAIL_PREFIX = "thumbnails/"
MAX_PIXELS = 64_000_000
"""Sources larger than this are not decoded (a decompression bomb would cost the server memory)."""
_SHA256 = re.compile(r"[0-9a-f]{64}")


class NotAnImage(InvalidInput):
    """The source cannot be decoded as an image, or is too large to decode safely."""


def thumbnail_key(sha256: str, px: int) -> str:
    """The cache key of the ``px`` thumbnail of the bytes whose SHA-256 is ``sha256``."""
    if not _SHA256.fullmatch(sha256):
        raise InvalidInput("sha256 must be 64 lower-case hex digits")
    if not 16 <= px <= 1024:
        raise InvalidInput("thumbnail size must be from 16 to 1024 pixels")
    return f"{THUMBNAIL_PREFIX}{sha256[:2]}/{sha256}-{px}.webp"


def make_thumbnail(data: bytes, px: int) -> bytes:
    """A WebP at most ``px`` on its longer side, EXIF orientation applied; ``NotAnImage`` if the
    bytes are not a decodable image (or decode to more than ``MAX_PIXELS``)."""
    try:
        with Image.open(io.BytesIO(data)) as source:
            if source.width * source.height > MAX_PIXELS:
                raise NotAnImage(f"{source.width}x{source.height} is too large to thumbnail")
            source.draft("RGB", (px, px))  # JPEG decodes at a fraction of full size
            image = ImageOps.exif_transpose(source)
            image.thumbnail((px, px), Image.Resampling.LANCZOS)
            alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
            image = image.convert("RGBA" if alpha else "RGB")
            out = io.BytesIO()
            image.save(out, "WEBP", quality=80, method=4)
            return out.getvalue()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # The warning is raised, not warned, where warnings are errors (as under pytest).
        raise NotAnImage("the image is too large to thumbnail") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise NotAnImage(f"not a decodable image: {type(exc).__name__}") from None


def cached_thumbnail(store: Store, sha256: str, px: int, read_source: Callable[[], bytes]) -> bytes:
    """The thumbnail from the store's cache, made from ``read_source()`` and cached on a miss.

    A cache that cannot be written (read-only store, backend down) still answers: the thumbnail
    is made each time instead.
    """
    key = thumbnail_key(sha256, px)
    try:
        return store.blobs.read(key)
    except NotFound:
        pass
    data = make_thumbnail(read_source(), px)
    try:
        # Concurrent misses write identical bytes; writes are atomic, so the race is harmless.
        store.blobs.write(key, [data], content_type="image/webp")
    except GenstoreError as exc:
        logger.warning("could not cache thumbnail %s: %s", key, exc)
    return data
