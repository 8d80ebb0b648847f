"""Result URLs from JSON answers, data: URLs, relative URLs, and error messages."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from genstore._sniff import sniff_content_type
from genstore_asgi import default_result_extractor
from genstore_asgi._extract import decode_data_url, resolve_url
from hypothesis import given
from hypothesis import strategies as st

URL = "https://cdn.example.test/out.png"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"success": True, "resultUrl": URL}, URL),
        ({"result_url": URL}, URL),
        ({"url": URL}, URL),
        ({"image_url": URL}, URL),
        ({"output": [URL, "https://x.test/2.png"]}, URL),
        ({"images": [{"url": URL}]}, URL),
        ({"images": [URL]}, URL),
        ({"data": {"imageUrl": URL}}, URL),
        ({"result": {"url": URL}}, URL),
        ({"resultUrl": "/files/a.png"}, "/files/a.png"),
        ({"output": "a cat sitting"}, None),  # text output is not a URL
        ({"url": "//evil.test/x"}, None),  # protocol-relative: ambiguous, refused
        ({"resultUrl": None, "url": URL}, URL),
        ([URL], URL),
        ({"success": True}, None),
        ("just text", None),
        (None, None),
    ],
)
def test_default_extractor(body: Any, expected: str | None) -> None:
    assert default_result_extractor(body) == expected


def test_resolve_url() -> None:
    base = "http://127.0.0.1:8000/root"
    assert resolve_url(URL, base) == URL
    assert resolve_url("/files/a.png", base) == "http://127.0.0.1:8000/root/files/a.png"
    assert resolve_url("ftp://x.test/a", base) is None
    assert resolve_url("files/a.png", base) is None


@given(st.binary(max_size=2000), st.sampled_from(["image/png", "video/mp4", ""]))
def test_base64_data_urls_round_trip(data: bytes, media: str) -> None:
    url = f"data:{media};base64,{base64.b64encode(data).decode()}"
    # A data: URL without a media type is sniffed (as the result would be once stored).
    assert decode_data_url(url) == (data, media or sniff_content_type(data[:64]))


def test_percent_encoded_data_url_and_invalid_ones() -> None:
    assert decode_data_url("data:text/plain,a%20b") == (b"a b", "text/plain")
    assert decode_data_url("data:image/png;base64") is None
    assert decode_data_url("https://x.test") is None
