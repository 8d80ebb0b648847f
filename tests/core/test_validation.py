"""The images API's input checks: base64/data URL decoding, PNG check, prompt, status, metadata."""

from __future__ import annotations

import base64
import io
import struct
import unicodedata
import zlib
from typing import Any

import pytest
from genstore import ImageStatus, InvalidInput, PayloadTooLarge
from genstore._validation import (
    MAX_METADATA_BYTES,
    check_metadata,
    check_png,
    check_status,
    decode_image_data,
    sanitize_prompt,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

MIB = 1024 * 1024


def make_png(width: int = 8, height: int = 6, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, "PNG")
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` black pixels: tiny on disk, huge decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    z = zlib.compressobj(9)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "JPEG")
    return buf.getvalue()


# --- decode_image_data ---------------------------------------------------------------------------


def test_base64_with_and_without_data_url_prefix_decode_to_the_same_bytes() -> None:
    png = make_png()
    text = base64.b64encode(png).decode()
    assert decode_image_data(text, max_bytes=MIB) == png
    assert decode_image_data("data:image/png;base64," + text, max_bytes=MIB) == png
    assert decode_image_data("DATA:image/png;charset=x;BASE64," + text, max_bytes=MIB) == png
    assert decode_image_data("  data:image/png;base64,\n" + text, max_bytes=MIB) == png


def test_urlsafe_base64_wrapped_lines_and_missing_padding_are_tolerated() -> None:
    png = make_png(3, 3)
    assert decode_image_data(base64.urlsafe_b64encode(png).decode(), max_bytes=MIB) == png
    assert decode_image_data(base64.encodebytes(png).decode(), max_bytes=MIB) == png
    assert decode_image_data(base64.b64encode(png).decode().rstrip("="), max_bytes=MIB) == png
    assert (
        decode_image_data(" \r\n" + base64.b64encode(png).decode() + "\t\n", max_bytes=MIB) == png
    )


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_raw_bytes_are_taken_as_they_are(kind: Any) -> None:
    png = make_png()
    assert decode_image_data(kind(png), max_bytes=MIB) == png


@pytest.mark.parametrize(
    "text",
    ["not base64!", "QUJD$", "A", "data:image/png,plain", "data:image/png;base64", "é" * 8],
)
def test_bad_base64_is_invalid_input(text: str) -> None:
    with pytest.raises(InvalidInput) as info:
        decode_image_data(text, max_bytes=MIB)
    assert not isinstance(info.value, PayloadTooLarge)


@pytest.mark.parametrize("value", ["", "   \n", b"", bytearray(), "data:image/png;base64,"])
def test_empty_image_data_is_invalid_input(value: str | bytes) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        decode_image_data(value, max_bytes=MIB)


@pytest.mark.parametrize("value", [None, 42, ["a"], {"b": 1}])
def test_image_data_of_another_type_is_invalid_input(value: object) -> None:
    with pytest.raises(InvalidInput, match="base64 text or bytes"):
        decode_image_data(value, max_bytes=MIB)  # type: ignore[arg-type]


@pytest.mark.parametrize("garbage", ["!" * (20 * MIB), "é" * (20 * MIB), "data:,!" * (3 * MIB)])
def test_size_is_checked_before_decoding(garbage: str) -> None:
    # Garbage that would fail decoding: PayloadTooLarge proves the size was refused first.
    with pytest.raises(PayloadTooLarge, match=str(10 * MIB)) as info:
        decode_image_data(garbage, max_bytes=10 * MIB)
    assert info.value.limit == 10 * MIB


def test_size_check_ignores_whitespace_and_padding() -> None:
    data = bytes(range(256)) * 4  # 1024 bytes
    wrapped = base64.encodebytes(data).decode()  # newline every 76 characters
    assert decode_image_data(wrapped, max_bytes=1024) == data
    with pytest.raises(PayloadTooLarge):
        decode_image_data(wrapped, max_bytes=1023)
    with pytest.raises(PayloadTooLarge):
        decode_image_data(data, max_bytes=1023)


@settings(max_examples=200)
@given(data=st.binary(max_size=300), max_bytes=st.integers(0, 300))
def test_payload_too_large_exactly_when_decoded_size_is_over_the_limit(
    data: bytes, max_bytes: int
) -> None:
    encoded = base64.b64encode(data).decode()
    if len(data) > max_bytes:
        with pytest.raises(PayloadTooLarge):
            decode_image_data(encoded, max_bytes=max_bytes)
    elif data:
        assert decode_image_data(encoded, max_bytes=max_bytes) == data


@given(data=st.binary(min_size=1, max_size=500), urlsafe=st.booleans(), strip=st.booleans())
def test_base64_forms_round_trip(data: bytes, urlsafe: bool, strip: bool) -> None:
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()
    if strip:
        text = text.rstrip("=")
    assert decode_image_data(text, max_bytes=MIB) == data
    assert decode_image_data("data:image/png;base64," + text, max_bytes=MIB) == data


@settings(max_examples=300)
@given(text=st.text(max_size=200) | st.from_regex(r"(data:[a-z/;]*,)?[A-Za-z0-9+/=_\- \n-]*"))
def test_decoding_arbitrary_text_only_returns_bytes_or_raises_invalid_input(text: str) -> None:
    try:
        out = decode_image_data(text, max_bytes=64)
    except InvalidInput:
        return
    assert isinstance(out, bytes)
    assert 0 < len(out) <= 64


# --- check_png -----------------------------------------------------------------------------------


def test_png_size_is_read() -> None:
    assert check_png(make_png(31, 17), max_pixels=10_000) == (31, 17)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    mode=st.sampled_from(["1", "L", "LA", "P", "RGB", "RGBA", "I;16"]),
    prefix=st.booleans(),
)
def test_valid_pngs_round_trip_their_size(width: int, height: int, mode: str, prefix: bool) -> None:
    png = make_png(width, height, mode)
    text = base64.b64encode(png).decode()
    if prefix:
        text = "data:image/png;base64," + text
    decoded = decode_image_data(text, max_bytes=MIB)
    assert decoded == png
    assert check_png(decoded, max_pixels=width * height) == (width, height)


def test_jpeg_is_refused_and_named() -> None:
    with pytest.raises(InvalidInput, match="image/jpeg"):
        check_png(jpeg_bytes(), max_pixels=10_000)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (b"GIF89a" + b"\x00" * 20, "image/gif"),
        (b"%PDF-1.7 ...", "application/pdf"),
        (b'{"a": 1}', "text"),
        (b"iVBORw0KGgoAAAANSUhEUg", "base64 text"),
        (b"\x00\x01\x02", "unrecognised bytes"),
        (b"", "empty"),
    ],
)
def test_non_png_data_is_refused_naming_what_it_looks_like(data: bytes, named: str) -> None:
    with pytest.raises(InvalidInput, match=named):
        check_png(data, max_pixels=10_000)


def test_broken_pngs_are_invalid_input() -> None:
    png = make_png(20, 20)
    corrupted = bytearray(png)
    corrupted[40] ^= 0xFF  # inside IDAT: the chunk CRC no longer matches
    for bad in (png[:8], png[:33], png[:-12], bytes(corrupted)):
        with pytest.raises(InvalidInput, match="PNG"):
            check_png(bad, max_pixels=10_000)


def test_pixel_limit_is_ours_and_checked_from_the_header() -> None:
    png = make_png(100, 100)
    assert check_png(png, max_pixels=10_000) == (100, 100)
    with pytest.raises(InvalidInput, match="decompression bomb"):
        check_png(png, max_pixels=9_999)


@pytest.mark.parametrize(
    ("width", "height"),
    [(8_000, 8_000), (10_000, 10_000), (20_000, 20_000)],
    ids=["over-our-limit", "over-pillow-warning-limit", "over-pillow-error-limit"],
)
def test_decompression_bombs_are_invalid_input_never_a_warning(width: int, height: int) -> None:
    # pytest runs with warnings as errors: a DecompressionBombWarning would fail this test too.
    bomb = bomb_png(width, height)
    assert len(bomb) < 200_000
    with pytest.raises(InvalidInput, match="decompression bomb"):
        check_png(bomb, max_pixels=50_000_000)


def test_a_bomb_under_our_limit_but_over_pillows_is_refused_without_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.raises(InvalidInput, match="decompression bomb"):
        check_png(make_png(40, 40), max_pixels=1_000_000)


def test_a_small_bomb_png_is_accepted_when_the_limit_allows() -> None:
    assert check_png(bomb_png(300, 200), max_pixels=60_000) == (300, 200)


@settings(max_examples=300)
@given(data=st.binary(max_size=200))
def test_checking_arbitrary_bytes_only_raises_invalid_input(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        check_png(data, max_pixels=1_000_000)


_VALID = make_png(12, 9, "RGBA")


@settings(max_examples=300)
@given(
    cut=st.integers(0, len(_VALID)),
    flips=st.lists(st.tuples(st.integers(8, len(_VALID) - 1), st.integers(1, 255)), max_size=4),
)
def test_checking_damaged_pngs_only_returns_the_size_or_raises_invalid_input(
    cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(_VALID[:cut] if cut >= 8 else _VALID)
    for pos, mask in flips:
        if pos < len(data):
            data[pos] ^= mask
    try:
        size = check_png(bytes(data), max_pixels=1_000_000)
    except InvalidInput:
        return
    assert size[0] * size[1] <= 1_000_000


# --- sanitize_prompt -----------------------------------------------------------------------------


def test_prompt_controls_are_stripped_newlines_and_tabs_kept() -> None:
    raw = "  un\x00 chat\x07\x1b[31m\r\nsur un\ttoit\x7f\x9f\u0085fin\u2028. \n"
    assert sanitize_prompt(raw, max_length=100) == "un chat[31m\nsur un\ttoit\nfin\n."


def test_prompt_is_nfc_normalised() -> None:
    assert sanitize_prompt("cafe\u0301", max_length=10) == "caf\u00e9"


def test_lone_surrogates_are_removed() -> None:
    assert sanitize_prompt("a\ud800b", max_length=10) == "ab"


def test_prompt_at_the_limit_is_kept_over_it_refused() -> None:
    assert sanitize_prompt("x" * 20, max_length=20) == "x" * 20
    with pytest.raises(InvalidInput, match="limit of 20"):
        sanitize_prompt("x" * 21, max_length=20)
    # The limit counts the cleaned prompt: controls and surrounding spaces do not count.
    assert sanitize_prompt("  " + "x\x00" * 20 + "  ", max_length=20) == "x" * 20
    with pytest.raises(InvalidInput):
        sanitize_prompt("x" * 10_000_000, max_length=2000)


@pytest.mark.parametrize("value", ["", "   ", "\x00\x01", "\n\t"])
def test_empty_prompt_is_refused(value: str) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        sanitize_prompt(value, max_length=100)


@pytest.mark.parametrize("value", [None, 3, b"bytes", ["a"]])
def test_prompt_must_be_a_string(value: object) -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        sanitize_prompt(value, max_length=100)


@settings(max_examples=300)
@given(text=st.text(max_size=300), max_length=st.integers(1, 200))
def test_sanitized_prompts_are_clean_bounded_and_stable(text: str, max_length: int) -> None:
    try:
        out = sanitize_prompt(text, max_length=max_length)
    except InvalidInput:
        return
    assert 0 < len(out) <= max_length
    assert out == out.strip()
    assert unicodedata.is_normalized("NFC", out)
    assert all(ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cs") for ch in out)
    out.encode("utf-8")  # always encodable
    assert sanitize_prompt(out, max_length=max_length) == out


# --- check_status --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", list(ImageStatus))
def test_every_status_is_accepted_by_value_and_as_enum(status: ImageStatus) -> None:
    assert check_status(status.value) is status
    assert check_status(status) is status


@pytest.mark.parametrize("value", ["sold", "GENERATED", " printed", "", None, 1])
def test_unknown_status_lists_the_allowed_values(value: object) -> None:
    with pytest.raises(InvalidInput, match="generated, printed, ordered, deleted"):
        check_status(value)


@given(value=st.text(max_size=20) | st.integers() | st.none())
def test_status_check_accepts_exactly_the_status_values(value: object) -> None:
    if value in {s.value for s in ImageStatus}:
        assert check_status(value) == value
    else:
        with pytest.raises(InvalidInput):
            check_status(value)


# --- check_metadata ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def test_none_metadata_is_an_empty_object() -> None:
    assert check_metadata(None) == {}


def test_metadata_is_copied_into_plain_json() -> None:
    source = {"size": (1024, 768), "nested": {"steps": 30}}
    out = check_metadata(source)
    assert out == {"size": [1024, 768], "nested": {"steps": 30}}
    nested = out["nested"]
    assert isinstance(nested, dict)
    nested["steps"] = 1
    assert source["nested"] == {"steps": 30}


@given(value=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_json_objects_round_trip(value: dict[str, Any]) -> None:
    assert check_metadata(value) == value


@pytest.mark.parametrize(
    "value",
    [
        [1, 2],
        "text",
        {1: "int key"},
        {"a": float("nan")},
        {"a": float("inf")},
        {"a": b"bytes"},
        {"a": {1, 2}},
        {"a": object()},
        {"a": "\ud800"},
        {"a": 10**5000},
    ],
)
def test_non_json_metadata_is_invalid_input(value: object) -> None:
    with pytest.raises(InvalidInput) as info:
        check_metadata(value)
    assert not isinstance(info.value, PayloadTooLarge)


def test_deeply_nested_or_cyclic_metadata_is_invalid_input() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    for value in (deep, cyclic):
        with pytest.raises(InvalidInput, match="nested deeper"):
            check_metadata(value)


def test_metadata_over_the_size_cap_is_payload_too_large() -> None:
    fits = {"a": "x" * (MAX_METADATA_BYTES - len('{"a":""}'))}
    assert check_metadata(fits) == fits
    for value in ({"a": "x" * MAX_METADATA_BYTES}, {"a": list(range(MAX_METADATA_BYTES))}):
        with pytest.raises(PayloadTooLarge) as info:
            check_metadata(value)
        assert info.value.limit == MAX_METADATA_BYTES
    with pytest.raises(PayloadTooLarge):
        check_metadata({"a": "é" * 40}, max_bytes=50)  # 2 bytes each in UTF-8


@settings(max_examples=200)
@given(
    value=st.recursive(
        st.none() | st.floats() | st.text(max_size=5) | st.binary(max_size=3) | st.integers(),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(max_size=3) | st.integers(), inner, max_size=3)
            | st.frozensets(st.integers(), max_size=2)
        ),
        max_leaves=10,
    )
)
def test_metadata_check_only_returns_a_dict_or_raises_invalid_input(value: object) -> None:
    try:
        out = check_metadata(value, max_bytes=200)
    except InvalidInput:
        return
    assert isinstance(out, dict)
