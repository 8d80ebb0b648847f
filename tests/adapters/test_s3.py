"""The S3 backend against moto's ThreadedMotoServer on 127.0.0.1: blobs, content types, listing,
exclusive creates, presigned URLs, multipart streaming, the missing extra, and the error table.
(Faults and retries: test_s3_faults.py.)"""

from __future__ import annotations

import hashlib
import importlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import genstore
import httpx
import pytest
from genstore import (
    AlreadyExists,
    AuthError,
    BackendUnavailable,
    ConfigurationError,
    InvalidInput,
    MissingDependency,
    NotFound,
    PayloadTooLarge,
)
from helpers import png_bytes

pytestmark = pytest.mark.s3

MIB = 1024 * 1024


@pytest.fixture
def store(s3_url: str) -> Iterator[genstore.Store]:
    s = genstore.open_store(s3_url)
    yield s
    s.close()


def _spy_requests(blobs: Any) -> list[str]:
    """Record the name of every S3 request the store's filesystem sends."""
    calls: list[str] = []
    fs = blobs.fs
    original = fs._call_s3

    async def spy(method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(method)
        return await original(method, *args, **kwargs)

    fs._call_s3 = spy
    return calls


# -- opening ---------------------------------------------------------------------------------


def test_s3_url_opens_an_s3_store_with_the_sidecar_catalog(store: genstore.Store) -> None:
    assert type(store.blobs).__name__ == "S3BlobStore"
    assert type(store.catalog).__name__ == "SidecarCatalog"
    assert store.blobs.url.startswith("s3://genstore-") and store.blobs.url.endswith("/store")
    assert "endpoint_url" not in store.blobs.url


def test_catalog_option_picks_another_catalog(s3_url: str, tmp_path: Path) -> None:
    with genstore.open_store(f"{s3_url}&catalog=sqlite:///{tmp_path}/c.sqlite3") as s:
        assert type(s.catalog).__name__ == "SQLiteCatalog"


def test_endpoint_comes_from_the_environment_when_the_url_has_none(
    s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENSTORE_S3_ENDPOINT_URL", s3_server.endpoint_url)
    with genstore.open_store(f"s3://{s3_bucket}") as s:
        s.blobs.write("a/b.txt", [b"hi"])
        assert s.blobs.read("a/b.txt") == b"hi"


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3://bucket?key=AKIA",  # secrets never come from the URL
        "s3://bucket?block_size=1024",
        "s3://bucket?retry_deadline=soon",
        "s3://bucket/../up",
        "s3://bucket?addressing_style=sideways",
    ],
)
def test_bad_s3_urls_are_configuration_errors(url: str, aws_env: None) -> None:
    with pytest.raises(ConfigurationError):
        genstore.open_store(url)


# -- blobs -----------------------------------------------------------------------------------


def test_blobs_round_trip(store: genstore.Store) -> None:
    blobs = store.blobs
    chunks: list[Any] = [b"ab", b"", bytearray(b"cd"), memoryview(b"ef")]
    assert blobs.write("a/one.bin", chunks) == 6
    assert blobs.read("a/one.bin") == b"abcdef"
    with blobs.open("a/one.bin") as f:
        assert f.read(2) == b"ab"
        assert f.read() == b"cdef"
    assert blobs.exists("a/one.bin")
    assert not blobs.exists("a/two.bin")
    blobs.write("a/one.bin", [b"new"])
    assert blobs.read("a/one.bin") == b"new"
    blobs.delete("a/one.bin")
    blobs.delete("a/one.bin")  # missing is not an error
    assert not blobs.exists("a/one.bin")
    with pytest.raises(NotFound):
        blobs.read("a/one.bin")
    with pytest.raises(NotFound):
        blobs.open("a/one.bin")
    with pytest.raises(InvalidInput):
        blobs.read("../escape")
    blobs.write("a/dir/inner.bin", [b"x"])
    for reader in (blobs.read, blobs.open):
        with pytest.raises(NotFound):
            reader("a/dir")  # a prefix, not a blob


def test_listing_is_by_folder_and_sees_writes_at_once(s3_url: str) -> None:
    with genstore.open_store(s3_url) as a, genstore.open_store(s3_url) as b:
        assert list(b.blobs.list("ops/")) == []
        a.blobs.write("ops/1/x.json", [b"{}"])
        a.blobs.write("ops/2.json", [b"[1]"])
        a.blobs.write("opsx/3.json", [b"no"])  # same leading letters, another folder
        listed = list(b.blobs.list("ops/"))
        assert [(i.key, i.size) for i in listed] == [("ops/1/x.json", 2), ("ops/2.json", 3)]
        assert all(i.modified is not None and i.modified.tzinfo is not None for i in listed)
        assert [i.key for i in b.blobs.list("")] == ["ops/1/x.json", "ops/2.json", "opsx/3.json"]
        a.blobs.delete("ops/2.json")
        assert [i.key for i in b.blobs.list("ops/")] == ["ops/1/x.json"]


def test_listing_pages_through_more_than_one_page(store: genstore.Store) -> None:
    store.blobs.list_page_size = 2  # type: ignore[attr-defined]
    for i in range(7):
        store.blobs.write(f"many/{i:02d}", [b"x"])
    calls = _spy_requests(store.blobs)
    assert [i.key for i in store.blobs.list("many/")] == [f"many/{i:02d}" for i in range(7)]
    assert calls.count("list_objects_v2") == 4


def test_history_sees_a_record_saved_by_another_store(s3_url: str) -> None:
    with genstore.open_store(s3_url) as reader, genstore.open_store(s3_url) as writer:
        assert reader.history().items == []
        saved = writer.save_complete_operation(operation_type="text_to_image", prompt="un chat")
        assert [r.operation_id for r in reader.history().items] == [saved.operation_id]


def test_exists_asks_s3_every_time(s3_url: str) -> None:
    with genstore.open_store(s3_url) as a, genstore.open_store(s3_url) as b:
        calls = _spy_requests(a.blobs)
        a.blobs.write("in/x.png", [b"x"])
        assert a.blobs.exists("in/x.png") and a.blobs.exists("in/x.png")
        assert calls.count("head_object") == 2  # nothing remembered, not even its own writes
        b.blobs.delete("in/x.png")
        assert not a.blobs.exists("in/x.png")  # another store's delete is seen at once


# -- content types ---------------------------------------------------------------------------


def test_every_object_has_its_content_type(store: genstore.Store, s3_client: Any) -> None:
    store.save_complete_operation(
        operation_type="img_to_img",
        input_images=[png_bytes(4, 4, "red")],
        result=b"\xff\xd8\xff\xe0" + b"jpeg" * 10,
        idempotency_key="k-1",
    )
    store.blobs.write("misc/empty.txt", [], content_type="text/plain")
    bucket = store.blobs.url.split("/")[2]
    objects = s3_client.list_objects_v2(Bucket=bucket)["Contents"]
    types = {
        o["Key"].split("/", 1)[1]: s3_client.head_object(Bucket=bucket, Key=o["Key"])["ContentType"]
        for o in objects
    }
    assert len(types) == 5
    for key, content_type in types.items():
        expected = {
            "json": "application/json",
            "png": "image/png",
            "jpg": "image/jpeg",
            "txt": "text/plain",
        }[key.rsplit(".", 1)[1]]
        assert content_type == expected, key


# -- exclusive create ------------------------------------------------------------------------


def test_exclusive_create_refuses_an_existing_blob(store: genstore.Store) -> None:
    store.blobs.write("x/marker.json", [b"first"], exclusive=True)
    with pytest.raises(AlreadyExists):
        store.blobs.write("x/marker.json", [b"second"], exclusive=True)
    with pytest.raises(AlreadyExists):
        store.blobs.write("x/marker.json", [], exclusive=True)
    assert store.blobs.read("x/marker.json") == b"first"


def test_exclusive_multipart_create_is_refused_and_aborted(s3_url: str, s3_client: Any) -> None:
    with genstore.open_store(f"{s3_url}&block_size={5 * MIB}") as s:
        s.blobs.write("big/one.bin", [b"a"])
        with pytest.raises(AlreadyExists):
            s.blobs.write("big/one.bin", (b"b" * MIB for _ in range(7)), exclusive=True)
        assert s.blobs.read("big/one.bin") == b"a"
        bucket = s.blobs.url.split("/")[2]
        assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_exactly_one_of_racing_exclusive_creates_wins(store: genstore.Store) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def claim(n: int) -> None:
        barrier.wait()
        try:
            store.blobs.write("race/k.json", [f"{n}".encode()], exclusive=True)
            outcomes.append("won")
        except AlreadyExists:
            outcomes.append("lost")

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["lost"] * 5 + ["won"]


def test_idempotency_key_returns_the_first_record(store: genstore.Store) -> None:
    first = store.save_complete_operation(operation_type="t", idempotency_key="same")
    again = store.save_complete_operation(operation_type="t", idempotency_key="same")
    assert (again.created, again.operation_id) == (False, first.operation_id)


# -- presigned URLs --------------------------------------------------------------------------


def test_presigned_url_serves_the_blob(store: genstore.Store) -> None:
    body = png_bytes(6, 6, "blue")
    saved = store.save_complete_operation(operation_type="text_to_image", result=body)
    assert saved.record.result is not None
    url = store.artifact_url(saved.record.result, expires=120)
    assert url is not None and "X-Amz-Expires=120" in url and "X-Amz-Signature=" in url
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"] == "image/png"
    # moto does not check signatures, so a tampered URL cannot be shown refused here.


# -- large objects ---------------------------------------------------------------------------


def test_large_result_streams_through_multipart_both_ways(
    store: genstore.Store, s3_client: Any, tmp_path: Path
) -> None:
    source = tmp_path / "video.mp4"
    digest = hashlib.sha256()
    with source.open("wb") as f:
        f.write(b"\x00\x00\x00\x18ftypmp42")  # sniffed as video/mp4
        for i in range(40):
            block = bytes([i]) * MIB
            f.write(block)
        size = f.tell()
    digest.update(source.read_bytes())
    calls = _spy_requests(store.blobs)
    saved = store.save_complete_operation(operation_type="text_to_video", result=str(source))
    ref = saved.record.result
    assert ref is not None and ref.size == size and ref.sha256 == digest.hexdigest()
    assert ref.content_type == "video/mp4"
    # 8 MiB parts: 40 MiB + 12 bytes is 6 parts; no single PUT carried the result.
    assert calls.count("create_multipart_upload") == 1
    assert calls.count("upload_part") == 6
    assert calls.count("complete_multipart_upload") == 1
    bucket = store.blobs.url.split("/")[2]
    head = s3_client.head_object(Bucket=bucket, Key=f"store/{ref.key}")
    assert head["ETag"].strip('"').endswith("-6")  # S3's mark of a multipart object
    assert head["ContentType"] == "video/mp4"
    back = hashlib.sha256()
    chunks = 0
    with store.open_artifact(ref) as f:
        while chunk := f.read(MIB):
            back.update(chunk)
            chunks += 1
    assert back.hexdigest() == ref.sha256
    assert chunks == 41
    assert calls.count("get_object") >= 5  # ranged GETs of one block each, not one big read


# -- the missing extra -----------------------------------------------------------------------


def test_missing_s3fs_names_the_extra(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)
    for name in [m for m in sys.modules if m.startswith("genstore_adapters.s3.")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, as in a process without s3fs
    with pytest.raises(MissingDependency) as info:
        genstore.open_store("s3://bucket/prefix")
    assert info.value.extra == "s3" and info.value.package == "s3fs"
    assert "pip install 'genstore[s3]'" in str(info.value)


def test_the_spec_imports_without_s3fs_or_botocore(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name.startswith("genstore_adapters.s3"):
            monkeypatch.delitem(sys.modules, name)
    for name in ("s3fs", "botocore", "aiobotocore", "boto3"):
        monkeypatch.setitem(sys.modules, name, None)
    hooks = importlib.import_module("genstore_adapters.s3.hooks")
    assert hooks.genstore_backends() == [hooks.SPEC]
    assert hooks.SPEC.schemes == ("s3", "s3a") and hooks.SPEC.extra == "s3"


# -- the error table -------------------------------------------------------------------------


def _client_error(code: str, status: int, **extra: str) -> Exception:
    from botocore.exceptions import ClientError

    error: Exception = ClientError(
        {
            "Error": {"Code": code, "Message": "m", **extra},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "PutObject",
    )
    return error


@pytest.mark.parametrize(
    ("code", "status", "writing", "expected", "transient"),
    [
        ("NoSuchKey", 404, False, NotFound, False),
        ("404", 404, False, NotFound, False),
        ("NoSuchBucket", 404, True, ConfigurationError, False),
        ("AccessDenied", 403, False, AuthError, False),
        ("403", 403, False, AuthError, False),
        ("InvalidAccessKeyId", 403, True, AuthError, False),
        ("SignatureDoesNotMatch", 403, True, AuthError, False),
        ("PreconditionFailed", 412, True, AlreadyExists, False),
        ("PreconditionFailed", 412, False, BackendUnavailable, False),
        ("EntityTooLarge", 400, True, PayloadTooLarge, False),
        ("SlowDown", 503, True, BackendUnavailable, True),
        ("Throttling", 400, False, BackendUnavailable, True),
        ("InternalError", 500, False, BackendUnavailable, True),
        ("ServiceUnavailable", 503, False, BackendUnavailable, True),
        ("RequestTimeout", 400, True, BackendUnavailable, True),
        ("Whatever", 502, False, BackendUnavailable, True),
        ("TooManyRequests", 429, False, BackendUnavailable, True),
        ("InvalidArgument", 400, True, BackendUnavailable, False),
    ],
)
def test_s3_error_table(
    code: str, status: int, writing: bool, expected: type[Exception], transient: bool
) -> None:
    from genstore_adapters.s3.errors import is_transient, translate
    from s3fs.errors import translate_boto_error

    raw = _client_error(code, status)
    # As botocore raises it, and as s3fs hands it on (an OSError caused by it).
    for exc in (raw, translate_boto_error(raw)):
        assert type(translate(exc, "k", writing=writing)) is expected
        assert is_transient(exc) is transient


def test_connection_and_configuration_errors_are_typed() -> None:
    from botocore.exceptions import (
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ParamValidationError,
        ReadTimeoutError,
    )
    from genstore_adapters.s3.errors import is_transient, translate

    for exc in (
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
        ConnectionResetError(104, "reset"),
        TimeoutError("slow"),
    ):
        assert is_transient(exc), exc
        assert type(translate(exc, "k")) is BackendUnavailable
    assert type(translate(NoCredentialsError(), "k")) is ConfigurationError
    assert not is_transient(NoCredentialsError())
    assert type(translate(ParamValidationError(report="bad"), "k")) is InvalidInput
    assert type(translate(FileNotFoundError("k"), "k")) is NotFound
    assert type(translate(PermissionError("k"), "k")) is AuthError


def test_missing_bucket_is_a_configuration_error(s3_server: Any) -> None:
    with genstore.open_store(
        f"s3://no-such-bucket-here?endpoint_url={s3_server.endpoint_url}"
    ) as s:
        with pytest.raises(ConfigurationError, match="bucket"):
            s.blobs.write("a/b", [b"x"])
        with pytest.raises(ConfigurationError, match="bucket"):
            s.blobs.read("a/b")
        assert not s.blobs.exists("a/b")


class _ProviderFailed(Exception):
    pass


def test_a_failing_source_passes_through_and_leaves_nothing(s3_url: str, s3_client: Any) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(7):
            yield b"z" * MIB
        raise _ProviderFailed("stream cut")

    with genstore.open_store(f"{s3_url}&block_size={5 * MIB}") as s:
        with pytest.raises(_ProviderFailed):
            s.blobs.write("big/cut.bin", chunks())
        assert not s.blobs.exists("big/cut.bin")
        bucket = s.blobs.url.split("/")[2]
        assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
