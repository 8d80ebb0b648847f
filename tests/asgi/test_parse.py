"""parse_request: JSON, multipart, urlencoded and image bodies into prompt, parameters, inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from genstore._recording.rules import Redactor
from genstore_asgi._capture import BodyTee, CapturedBody
from genstore_asgi._parse import ParsedRequest, ParseLimits, parse_request
from hypothesis import given, settings
from hypothesis import strategies as st

from asgi.support import multipart


def captured(data: bytes, folder: Path, limit: int = 1 << 20) -> CapturedBody:
    tee = BodyTee(max_in_memory=limit, max_body=None, spool_dir=str(folder))
    tee.feed(data, more=False)
    return tee.finish()


DEFAULT_LIMITS = ParseLimits(1 << 20, 1 << 20)


def parse(
    data: bytes,
    content_type: str,
    folder: Path,
    *,
    query: bytes = b"",
    prompt_field: str = "prompt",
    limits: ParseLimits = DEFAULT_LIMITS,
) -> ParsedRequest:
    """``parse_request`` on ``data`` captured in memory, with the default redactor."""
    return parse_request(
        captured(data, folder),
        content_type,
        query,
        prompt_field=prompt_field,
        redactor=Redactor(),
        limits=limits,
    )


def test_json_fields_query_and_the_prompt(tmp_path: Path) -> None:
    body = json.dumps({"prompt": "un chat", "seed": 3, "model": "body-wins"}).encode()
    parsed = parse(
        body, "application/json; charset=utf-8", tmp_path, query=b"model=query&tag=a&tag=b&token=x"
    )
    assert parsed.prompt == "un chat"
    assert parsed.parameters == {"model": "body-wins", "seed": 3, "tag": ["a", "b"]}
    assert parsed.inputs == []


def test_prompt_from_the_query_and_a_custom_field(tmp_path: Path) -> None:
    parsed = parse(b"", "", tmp_path, query=b"text=un%20chat&n=1", prompt_field="text")
    assert (parsed.prompt, parsed.parameters) == ("un chat", {"n": "1"})


def test_a_non_string_prompt_stays_a_parameter(tmp_path: Path) -> None:
    parsed = parse(b'{"prompt": {"positive": "cat"}}', "application/json", tmp_path)
    assert parsed.prompt is None
    assert parsed.parameters == {"prompt": {"positive": "cat"}}


def test_data_urls_in_json_become_inputs(tmp_path: Path) -> None:
    body = json.dumps(
        {
            "prompt": "p",
            "image": "data:image/png;base64,iVBORw0=",
            "refs": ["data:image/gif,GIF89a"],
        }
    ).encode()
    parsed = parse(body, "application/json", tmp_path)
    assert parsed.inputs == [b"\x89PNG\r", b"GIF89a"]
    assert parsed.parameters == {"image": "input_images[0]", "refs": ["input_images[1]"]}


def test_json_without_content_type_and_non_object_json(tmp_path: Path) -> None:
    limits = ParseLimits(1 << 20, 1 << 20)
    untyped = parse(b' {"prompt": "p"}', "", tmp_path, limits=limits)
    assert untyped.prompt == "p"
    listed = parse(b"[1, 2]", "application/json", tmp_path, limits=limits)
    assert listed.parameters == {"body": [1, 2]}


def test_broken_or_oversized_json_records_no_fields(tmp_path: Path) -> None:
    limits = ParseLimits(1 << 20, max_document=10)
    for body in (b'{"prompt": "p"', b'{"prompt": "long enough to pass ten bytes"}'):
        parsed = parse(body, "application/json", tmp_path, limits=limits)
        assert (parsed.prompt, parsed.parameters) == (None, {})


def test_urlencoded_form(tmp_path: Path) -> None:
    parsed = parse(
        b"prompt=un+chat&steps=20&password=x", "application/x-www-form-urlencoded", tmp_path
    )
    assert (parsed.prompt, parsed.parameters) == ("un chat", {"steps": "20"})


@pytest.mark.parametrize("limit", [16, 1 << 20])
def test_raw_image_body_is_the_input(tmp_path: Path, limit: int) -> None:
    image = b"\x89PNG\r\n\x1a\n" + b"x" * 100
    body = captured(image, tmp_path, limit)
    parsed = parse_request(
        body,
        "image/png",
        b"",
        prompt_field="prompt",
        redactor=Redactor(),
        limits=ParseLimits(limit, 1 << 20, str(tmp_path)),
    )
    if limit == 16:  # spooled: the spool file itself is handed over
        assert parsed.inputs == parsed.owned == [body.path]
    else:
        assert parsed.inputs == [image] and parsed.owned == []


def test_multipart_skips_empty_and_secret_file_parts(tmp_path: Path) -> None:
    body, content_type = multipart(
        [("prompt", "p"), ("size", "2")],
        [
            ("images", "a.png", b"A" * 10, "image/png"),
            ("images", "", b"", "application/octet-stream"),  # a browser's empty file input
            ("api_key", "key.txt", b"secret", "text/plain"),
            ("images", "b.png", b"B" * 5000, "image/png"),
        ],
    )
    parsed = parse(body, content_type, tmp_path, limits=ParseLimits(1000, 1 << 20, str(tmp_path)))
    assert parsed.prompt == "p" and parsed.parameters == {"size": "2"}
    assert parsed.inputs[0] == b"A" * 10
    assert len(parsed.owned) == 1 and parsed.inputs[1] == parsed.owned[0]
    assert Path(parsed.owned[0]).read_bytes() == b"B" * 5000


def test_malformed_multipart_keeps_fields_and_leaves_no_files(tmp_path: Path) -> None:
    body, content_type = multipart(
        [("prompt", "p")], [("images", "a.png", b"A" * 5000, "image/png")]
    )
    broken = body[: len(body) // 2] + b"\r\n--not-the-boundary\r\ngarbage"
    folder = tmp_path / "spool"
    folder.mkdir()
    parsed = parse(broken, content_type, tmp_path, limits=ParseLimits(1000, 1 << 20, str(folder)))
    assert parsed.prompt == "p"
    assert parsed.inputs == [] and parsed.owned == []
    assert os.listdir(folder) == []


names = st.text(
    st.characters(codec="utf-8", exclude_characters='"\r\n\\%'), min_size=1, max_size=20
)
values = st.text(st.characters(codec="utf-8", exclude_characters="\r"), max_size=300)


@settings(max_examples=60, deadline=None)
@given(
    fields=st.lists(st.tuples(names, values), max_size=6),
    files=st.lists(st.binary(min_size=1, max_size=5000), max_size=4),
)
def test_multipart_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    fields: list[tuple[str, str]],
    files: list[bytes],
) -> None:
    folder = tmp_path_factory.mktemp("parse")
    redactor = Redactor()
    kept = [(n, v) for n, v in fields if not redactor.is_secret(n, in_query=True) and n != "prompt"]
    body, content_type = multipart(
        fields,
        [("upload", f"{i}.bin", data, "application/octet-stream") for i, data in enumerate(files)],
    )
    parsed = parse_request(
        captured(body, folder),
        content_type,
        b"",
        prompt_field="prompt",
        redactor=redactor,
        limits=ParseLimits(1000, 1 << 20, str(folder)),
    )
    expected: dict[str, object] = {}
    for name, value in kept:
        previous = expected.get(name)
        if previous is None:
            expected[name] = value
        elif isinstance(previous, list):
            previous.append(value)
        else:
            expected[name] = [previous, value]
    assert parsed.parameters == expected
    read = [i if isinstance(i, bytes) else Path(i).read_bytes() for i in parsed.inputs]
    assert read == files
    for path in parsed.owned:
        os.unlink(path)
