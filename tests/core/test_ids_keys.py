"""Ids sort in creation order and are safe; keys never leave their folder and parse back."""

from __future__ import annotations

import contextlib
import threading

import pytest
from genstore import InvalidInput, _keys
from genstore._ids import check_id, new_image_id, new_operation_id
from hypothesis import given
from hypothesis import strategies as st


def test_operation_ids_strictly_increase_in_a_tight_loop() -> None:
    ids = [new_operation_id()[1] for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 35 and i[8] == "_" for i in ids)


def test_operation_ids_are_unique_across_threads() -> None:
    out: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [new_operation_id()[1] for _ in range(2_000)]
        with lock:
            out.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(out)) == 8_000


def test_id_prefix_is_the_creation_day() -> None:
    when, op_id = new_operation_id()
    assert op_id.startswith(f"{when:%Y%m%d}_")
    assert new_image_id()[1].startswith("img_")


@given(st.text(max_size=200))
def test_check_id_accepts_only_names_that_stay_in_one_folder(value: str) -> None:
    try:
        check_id(value)
    except InvalidInput:
        return
    assert "/" not in value and "\\" not in value and "\x00" not in value
    assert ".." not in value and not value.startswith(".")
    assert 0 < len(value) <= 128


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", "a\\b", "x\x00", ".hidden", "u" * 129])
def test_unsafe_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        check_id(bad)


@given(
    user=st.text(max_size=60),
    image=st.text(max_size=60),
    ts=st.integers(0, 2**45),
    n=st.integers(0, 99),
)
def test_image_keys_stay_under_the_users_folder(user: str, image: str, ts: int, n: int) -> None:
    try:
        blob = _keys.image_blob_key(user, ts, n)
        record = _keys.image_record_key(user, image)
    except InvalidInput:
        return
    for key in (blob, record):
        parts = key.split("/")
        assert parts[:2] == ["images", user] and len(parts) == 3
        assert ".." not in parts
    parsed = _keys.parse_key(record)
    assert parsed is not None and (parsed.user_id, parsed.image_id) == (user, image)
    assert _keys.parse_key(blob) == _keys.ParsedKey("image", user_id=user)


@given(
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    st.sampled_from(["png", "jpg", "webp", "mp4", "bin"]),
)
def test_input_keys_parse_back(sha: str, ext: str) -> None:
    key = _keys.input_key(sha, ext)
    assert key == f"inputs/sha256/{sha[:2]}/{sha}.{ext}"
    assert _keys.parse_key(key) == _keys.ParsedKey("input", sha256=sha)


def test_operation_keys_parse_back() -> None:
    _, op_id = new_operation_id()
    assert _keys.parse_key(_keys.operation_record_key(op_id)) == _keys.ParsedKey(
        "operation", operation_id=op_id
    )
    assert _keys.parse_key(_keys.operation_result_key(op_id, "png")) == _keys.ParsedKey(
        "result", operation_id=op_id
    )
    with pytest.raises(InvalidInput):
        _keys.operation_result_key(op_id, "../x")
    assert _keys.parse_key(".tmp/abc") is None


# -- the one key rule every BlobStore applies --------------------------------------------------

_REWRITTEN_OR_REFUSED = set("%#?~[]\\ *\"'<>|^`{}")


@given(st.text(max_size=80))
def test_an_accepted_blob_key_is_safe_on_every_backend(key: str) -> None:
    try:
        _keys.check_blob_key(key)
    except InvalidInput:
        return
    assert key.isascii() and key.isprintable()
    assert not _REWRITTEN_OR_REFUSED & set(key)
    for segment in key.split("/"):
        assert segment and not segment.startswith(".") and ".." not in segment


@given(
    user=st.text(max_size=40),
    image=st.text(max_size=40),
    sha=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
def test_every_key_genstore_makes_passes_the_blob_key_rule(user: str, image: str, sha: str) -> None:
    _, op_id = new_operation_id()
    keys = [
        _keys.operation_record_key(op_id),
        _keys.operation_result_key(op_id, "webp"),
        _keys.input_key(sha, "png"),
    ]
    with contextlib.suppress(InvalidInput):  # ids check_id refuses never make a key
        keys += [
            _keys.image_blob_key(user, 1_750_000_000_000, 3),
            _keys.image_record_key(user, image),
        ]
    for key in keys:
        assert _keys.check_blob_key(key) == key


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/a",
        "a/",
        "a//b",
        "a/../b",
        "./a",
        ".tmp/x",
        "a\\b",
        "a%41",
        "a#b",
        "a~1",
        "a[0]",
        "x y",
        "caf\u00e9",
        "a\x7fb",
        "a\tb",
        "k" * 1025,
        7,
    ],
)
def test_unsafe_blob_keys_are_refused(bad: object) -> None:
    with pytest.raises(InvalidInput):
        _keys.check_blob_key(bad)


def test_prefixes_are_empty_or_keys_ending_in_a_slash() -> None:
    assert _keys.check_blob_prefix("") == ""
    assert _keys.check_blob_prefix("images/u/") == "images/u/"
    assert _keys.check_blob_prefix("images/u") == "images/u"
    for bad in ("/", "images//", "../", "a%/"):
        with pytest.raises(InvalidInput):
            _keys.check_blob_prefix(bad)


def test_ulid_time_reads_back_the_creation_instant() -> None:
    from genstore._ids import ulid_time

    when, op_id = new_operation_id()
    assert ulid_time(op_id[9:]) == when
    assert ulid_time("not crockford!") is None
