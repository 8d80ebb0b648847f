"""A route's outputs: the shared extraction, an extractor's answer, relative URLs, data: URLs."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from genstore._recording.outputs import Output, resolve_relative
from genstore._sniff import sniff_content_type
from genstore_asgi import default_result_extractor
from genstore_asgi._extract import (
    decode_data_url,
    outputs_of,
    server_base_url,
)
from hypothesis import given
from hypothesis import strategies as st

URL = "https://cdn.example.test/out.png"
URL2 = "https://cdn.example.test/2.png"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"success": True, "resultUrl": URL}, [URL]),
        ({"created": 1, "data": [{"url": URL}, {"url": URL2}]}, [URL, URL2]),
        ({"output": [URL, URL2]}, [URL, URL2]),
        ({"images": [{"url": URL}, {"url": URL2}]}, [URL, URL2]),
        ({"video": {"url": URL}}, [URL]),
        ({"resultUrl": "/files/a.png"}, ["/files/a.png"]),
        ({"output": "a cat sitting"}, []),  # text output is not a URL
        ({"url": "//evil.test/x"}, []),  # protocol-relative: names a host, refused
        ([URL, URL2], [URL, URL2]),
        ({"success": True}, []),
        (None, []),
    ],
)
def test_default_extractor_finds_every_url_in_order(body: Any, expected: list[str]) -> None:
    found = default_result_extractor(body)
    assert [o.value for o in found] == expected
    assert all(o.kind == "url" for o in found)


def test_an_extractors_answer_may_be_one_or_many_of_any_kind() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(20)
    assert outputs_of(None) == []
    assert [o.value for o in outputs_of(URL)] == [URL]
    assert [o.value for o in outputs_of([URL, png, "/files/x.png"])] == [URL, png, "/files/x.png"]
    given_outputs = [Output("bytes", b"x", "image/png"), Output("url", URL2)]
    assert outputs_of(given_outputs) == given_outputs


def test_the_base_url_is_the_servers_bound_address() -> None:
    assert server_base_url("http", ("127.0.0.1", 8000), "") == "http://127.0.0.1:8000"
    assert server_base_url("https", ("0.0.0.0", 443), "/root/") == "https://127.0.0.1:443/root"
    assert server_base_url("http", ("::", 80), "") == "http://[::1]:80"
    assert server_base_url("http", ("/run/app.sock", None), "") is None
    assert server_base_url("http", None, "") is None


@pytest.mark.parametrize(
    ("path", "base", "expected"),
    [
        ("/files/a.png", "http://127.0.0.1:8000", "http://127.0.0.1:8000/files/a.png"),
        ("/files/a.png", "http://127.0.0.1:8000/root", "http://127.0.0.1:8000/root/files/a.png"),
        (
            "/root/files/a.png",
            "http://127.0.0.1:8000/root",
            "http://127.0.0.1:8000/root/files/a.png",
        ),
        (
            "/view?filename=a.png",
            "http://127.0.0.1:8188",
            "http://127.0.0.1:8188/view?filename=a.png",
        ),
    ],
)
def test_relative_urls_resolve_under_the_base(path: str, base: str, expected: str) -> None:
    assert resolve_relative(path, base) == expected


@given(st.binary(max_size=2000), st.sampled_from(["image/png", "video/mp4", ""]))
def test_base64_data_urls_round_trip(data: bytes, media: str) -> None:
    url = f"data:{media};base64,{base64.b64encode(data).decode()}"
    # A data: URL without a media type is sniffed (as the result would be once stored).
    assert decode_data_url(url) == (data, media or sniff_content_type(data[:64]))


def test_percent_encoded_data_url_and_invalid_ones() -> None:
    assert decode_data_url("data:text/plain,a%20b") == (b"a b", "text/plain")
    assert decode_data_url("data:image/png;base64") is None
    assert decode_data_url("https://x.test") is None
