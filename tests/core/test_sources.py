"""Source preparation: PNG sizes from the header agree with Pillow for any size."""

from __future__ import annotations

import io

from genstore._sources import image_size, png_size, prepare
from helpers import png_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300))
def test_png_header_size_matches_pillow(width: int, height: int) -> None:
    data = png_bytes(width, height)
    assert png_size(data[:64]) == (width, height) == image_size(io.BytesIO(data))
    payload = prepare(data, limit=10**7)
    assert payload.dimensions() == (width, height)
    assert b"".join(payload.chunks()) == data


def test_non_png_images_still_get_their_size_from_pillow() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (33, 21)).save(buf, "JPEG")
    payload = prepare(buf.getvalue(), limit=10**7)
    assert payload.content_type == "image/jpeg"
    assert png_size(payload.head) is None
    assert payload.dimensions() == (33, 21)


@given(st.binary(max_size=64))
def test_png_size_never_raises(head: bytes) -> None:
    size = png_size(head)
    assert size is None or all(isinstance(v, int) for v in size)


def test_a_deferred_hash_is_the_same_hash() -> None:
    import hashlib

    data = png_bytes(400, 400) + b"\0" * (512 * 1024)
    payload = prepare(data, limit=10**8, defer_hash=True)
    assert payload.sha256 == ""  # still being computed on the hash thread
    assert payload.digest() == hashlib.sha256(data).hexdigest() == payload.sha256
    small = prepare(b"tiny", limit=10, defer_hash=True)
    assert small.sha256 == small.digest() == hashlib.sha256(b"tiny").hexdigest()
