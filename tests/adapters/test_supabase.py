"""The Supabase backend and catalog, through the real ``supabase`` client, against a FAKE server.

These fast tests use ``tests/fakes/supabase_server.py`` at the HTTP boundary: a fake that follows
the real Storage server (test_supabase_fake_vs_real.py compares the two on one scenario; the
contract runs on the real storage-api in tests/contract/test_supabase_real.py) and the PostgREST
calls the client makes (the kit has no PostgREST; see the fake's docstring for what it leaves out).
The migration SQL is checked against the real PostgreSQL server on 127.0.0.1:5432.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fakes.supabase_server import FakeSupabase, StoredObject, running_fake_supabase
from genstore import (
    AlreadyExists,
    AuthError,
    BackendUnavailable,
    ConfigurationError,
    CorruptRecord,
    ImageRecord,
    ImageStatus,
    InvalidInput,
    MissingDependency,
    NotFound,
    OperationRecord,
    OperationStatus,
    PayloadTooLarge,
)
from genstore._plugins import backend_specs, catalog_specs, open_backend
from genstore._url import parse_catalog_url, parse_url
from genstore.plugin import HistoryQuery
from genstore.testing import png_bytes
from genstore_adapters._retry import RetryPolicy
from genstore_adapters.supabase import hooks
from genstore_adapters.supabase.blobs import SupabaseBlobStore, open_supabase
from genstore_adapters.supabase.catalog import SupabaseCatalog, open_supabase_catalog
from genstore_adapters.supabase.config import Settings
from genstore_adapters.supabase.connection import SupabaseConnection
from genstore_adapters.supabase.errors import call, describe, is_transient, to_genstore
from genstore_adapters.supabase.stream import spool
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storage3.exceptions import StorageApiError

BUCKET = "genstore-test"
T = TypeVar("T")
T0 = datetime(2025, 6, 18, 0, 39, 32, 148000, tzinfo=UTC)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[FakeSupabase, str]]:
    with running_fake_supabase() as running:
        yield running


@pytest.fixture
def fake(server: tuple[FakeSupabase, str], monkeypatch: pytest.MonkeyPatch) -> FakeSupabase:
    """A reset fake, with the environment pointing at it (service role key)."""
    fake, url = server
    fake.reset()
    fake.max_rows = 1000
    monkeypatch.setenv("SUPABASE_URL", url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", fake.service_role_key)
    monkeypatch.delenv("SUPABASE_STORAGE_URL", raising=False)
    return fake


def open_blobs(url: str = f"supabase://{BUCKET}/tenant?deadline=2") -> SupabaseBlobStore:
    store = open_supabase(parse_url(url))
    assert isinstance(store, SupabaseBlobStore)
    return store


@pytest.fixture
def blobs(fake: FakeSupabase) -> Iterator[SupabaseBlobStore]:
    store = open_blobs()
    yield store
    store.close()


@pytest.fixture
def catalog(blobs: SupabaseBlobStore) -> Iterator[SupabaseCatalog]:
    cat = open_supabase_catalog(parse_catalog_url("supabase"), blobs)
    assert isinstance(cat, SupabaseCatalog)
    yield cat
    cat.close()


def op(i: int, **fields: Any) -> OperationRecord:
    values: dict[str, Any] = {
        "operation_id": f"20250618_01JY{i:022d}",
        "operation_type": "text_to_image",
        "status": "succeeded",
        "created_at": T0 + timedelta(seconds=i),
        **fields,
    }
    return OperationRecord(**values)


def image(user: str, i: int, **fields: Any) -> ImageRecord:
    values: dict[str, Any] = {
        "image_id": f"img_{i:04d}",
        "user_id": user,
        "prompt": f"p{i}",
        "key": f"images/{user}/{i}_generated_{i}.png",
        "size": 10,
        "sha256": "0" * 64,
        "width": 4,
        "height": 4,
        "created_at": T0 + timedelta(seconds=i),
        "updated_at": T0 + timedelta(seconds=i),
        **fields,
    }
    return ImageRecord(**values)


# -- the plugin --------------------------------------------------------------------------------


def test_the_specs_route_the_supabase_scheme(fake: FakeSupabase) -> None:
    assert ("supabase", hooks.BACKEND) in backend_specs().specs
    assert ("supabase", hooks.CATALOG) in catalog_specs().specs
    assert hooks.BACKEND.schemes == hooks.CATALOG.schemes == ("supabase",)
    opened = open_backend(parse_url(f"supabase://{BUCKET}"))
    assert isinstance(opened, SupabaseBlobStore)
    assert opened.default_catalog == "supabase"
    assert opened.url == f"supabase://{BUCKET}"
    opened.close()


def test_the_spec_imports_without_the_extra_and_opening_names_it() -> None:
    code = (
        "import sys; sys.modules['supabase'] = None\n"
        "import genstore_adapters.supabase.hooks\n"
        "from genstore._plugins import open_backend\n"
        "from genstore._url import parse_url\n"
        "from genstore import MissingDependency\n"
        "try:\n    open_backend(parse_url('supabase://b'))\n"
        "except MissingDependency as e:\n    print('MISSING', e)\n"
    )
    env = {**os.environ, "SUPABASE_URL": "http://127.0.0.1:9", "SUPABASE_SERVICE_ROLE_KEY": "k"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "MISSING" in out.stdout and "pip install 'genstore[supabase]'" in out.stdout


def test_missing_extra_raises_missing_dependency(
    fake: FakeSupabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "supabase", None)
    for name in [m for m in sys.modules if m.startswith("genstore_adapters.supabase.")]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh, as in a process without it
    with pytest.raises(MissingDependency, match=r"genstore\[supabase\]") as info:
        open_backend(parse_url(f"supabase://{BUCKET}"))
    assert info.value.extra == "supabase" and info.value.package == "supabase"


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        (["SUPABASE_URL"], ["SUPABASE_URL"]),
        (["SUPABASE_SERVICE_ROLE_KEY"], ["SUPABASE_SERVICE_ROLE_KEY"]),
        (
            ["SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"],
            ["SUPABASE_URL", "SUPABASE_SERVICE_ROLE_KEY"],
        ),
    ],
)
def test_missing_environment_variables_are_named(
    fake: FakeSupabase, monkeypatch: pytest.MonkeyPatch, unset: list[str], named: list[str]
) -> None:
    for name in unset:
        monkeypatch.delenv(name)
    with pytest.raises(ConfigurationError) as info:
        open_blobs()
    for name in named:
        assert name in str(info.value)
    assert not isinstance(info.value, MissingDependency)


def test_bad_configuration_is_a_configuration_error(
    fake: FakeSupabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigurationError, match="bucket"):
        open_blobs("supabase://")
    with pytest.raises(ConfigurationError, match="deadline"):
        open_blobs(f"supabase://{BUCKET}?deadline=soon")
    monkeypatch.setenv("SUPABASE_URL", "ftp://example")
    with pytest.raises(ConfigurationError, match="SUPABASE_URL"):
        open_blobs()


def test_storage_url_alone_serves_blobs_but_the_catalog_needs_supabase_url(
    server: tuple[FakeSupabase, str], fake: FakeSupabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUPABASE_URL")
    monkeypatch.setenv("SUPABASE_STORAGE_URL", f"{server[1]}/storage/v1")
    store = open_blobs()
    try:
        store.write("a.txt", [b"direct"])
        assert store.read("a.txt") == b"direct"
        assert fake.buckets[BUCKET].objects["tenant/a.txt"].data == b"direct"
        with pytest.raises(ConfigurationError, match="SUPABASE_URL"):
            open_supabase_catalog(parse_catalog_url("supabase"), store)
    finally:
        store.close()


# -- buckets -----------------------------------------------------------------------------------


def test_bucket_is_created_private_by_default(blobs: SupabaseBlobStore, fake: FakeSupabase) -> None:
    assert fake.buckets[BUCKET].public is False
    again = open_blobs()  # an existing bucket is used as it is
    again.close()
    assert list(fake.buckets) == [BUCKET]


def test_public_option_creates_a_public_bucket_and_public_urls(fake: FakeSupabase) -> None:
    store = open_blobs("supabase://pub?public=true")
    try:
        assert fake.buckets["pub"].public is True
        store.write("images/u/x.png", [b"png"], content_type="image/png")
        url = store.url_for("images/u/x.png")
        assert url is not None and "/object/public/pub/images/u/x.png" in url
        assert httpx.get(url).content == b"png"
    finally:
        store.close()


def test_existing_private_bucket_wins_over_the_public_option(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    store = open_blobs(f"supabase://{BUCKET}?public=true")
    try:
        assert store.public is False
        store.write("k", [b"v"])
        url = store.url_for("k")
        assert url is not None and "/object/sign/" in url
    finally:
        store.close()


def test_duplicate_bucket_maps_to_already_exists(blobs: SupabaseBlobStore) -> None:
    storage = blobs.connection.storage
    with pytest.raises(AlreadyExists, match="already exists"):
        call(blobs.retry, lambda: storage.create_bucket(BUCKET), what="create bucket")


# -- writing and reading -----------------------------------------------------------------------


def test_write_is_one_upsert_upload_and_reads_back(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    before = fake.count("POST", f"/storage/v1/object/{BUCKET}/")
    size = blobs.write("operations/d/x.json", [b'{"a":', b" 1}"], content_type="application/json")
    assert size == 8
    assert fake.count("POST", f"/storage/v1/object/{BUCKET}/") == before + 1
    stored = fake.buckets[BUCKET].objects["tenant/operations/d/x.json"]
    assert (stored.data, stored.content_type) == (b'{"a": 1}', "application/json")
    blobs.write("operations/d/x.json", [b"new"])  # upsert replaces
    assert blobs.read("operations/d/x.json") == b"new"
    assert blobs.exists("operations/d/x.json") and not blobs.exists("operations/d/y.json")


def test_exclusive_write_refuses_a_taken_key(blobs: SupabaseBlobStore) -> None:
    blobs.write("images/u/a.png", [b"first"], exclusive=True)
    with pytest.raises(AlreadyExists):
        blobs.write("images/u/a.png", [b"second"], exclusive=True)
    assert blobs.read("images/u/a.png") == b"first"


def test_exclusive_write_whose_reply_was_lost_still_succeeds(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    fake.fail_next(1, 504, after_handling=True)  # stored, then the gateway timed out
    assert blobs.write("images/u/b.png", [b"mine"], exclusive=True) == 4
    assert blobs.read("images/u/b.png") == b"mine"


def test_exclusive_write_whose_move_reply_was_lost_still_succeeds(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    fake.fail_next(1, 504, after_handling=True, path="/object/move")  # moved, reply lost
    assert blobs.write("images/u/m.png", [b"mine"], exclusive=True) == 4
    assert blobs.read("images/u/m.png") == b"mine"
    assert fake.count("POST", "/storage/v1/object/move") == 2
    blobs.write("images/u/n.png", [b"theirs"])
    fake.fail_next(1, 504, after_handling=True, path="/object/move")  # refused, reply lost
    with pytest.raises(AlreadyExists):
        blobs.write("images/u/n.png", [b"mine"], exclusive=True)
    assert blobs.read("images/u/n.png") == b"theirs"
    assert blobs.sweep_temporaries(older_than=0) == 0


def test_exclusive_write_over_other_bytes_after_a_lost_reply_still_refuses(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    blobs.write("images/u/c.png", [b"theirs"])
    fake.fail_next(1, 503)
    with pytest.raises(AlreadyExists):
        blobs.write("images/u/c.png", [b"mine"], exclusive=True)


def test_open_streams_the_download(blobs: SupabaseBlobStore) -> None:
    data = os.urandom(300_000)
    blobs.write("big.bin", [data[:100_000], data[100_000:]])
    with blobs.open("big.bin") as f:
        assert isinstance(f, io.BufferedReader)
        parts = [f.read(7), f.read(50_000)]
        parts.append(f.read())
    assert b"".join(parts) == data


def test_large_iterables_are_spooled_to_a_temp_file(blobs: SupabaseBlobStore) -> None:
    blobs.memory_limit = 64 * 1024
    chunk = os.urandom(50_000)
    size = blobs.write("spooled.bin", (chunk for _ in range(20)))
    assert size == 1_000_000
    assert blobs.read("spooled.bin") == chunk * 20


def test_spool_holds_at_most_its_memory_limit() -> None:
    chunk = b"x" * (1 << 20)
    consumed = 0

    def chunks() -> Iterator[bytes]:
        nonlocal consumed
        for _ in range(64):
            consumed += 1
            yield chunk

    tracemalloc.start()
    try:
        with spool(chunks(), memory_limit=2 << 20) as payload:
            _, peak = tracemalloc.get_traced_memory()
            assert isinstance(payload.data, str) and os.path.getsize(payload.data) == 64 << 20
            path = payload.data
    finally:
        tracemalloc.stop()
    assert payload.size == 64 << 20 and consumed == 64
    assert peak < 8 << 20  # 64 MiB went through; at most the limit plus a chunk or two was held
    assert not os.path.exists(path)
    with spool([b"ab", b"", b"c"]) as small:
        assert small.data == b"abc" and small.md5 == "900150983cd24fb0d6963f7d28e17f72"


def test_delete_of_a_missing_blob_is_fine(blobs: SupabaseBlobStore) -> None:
    blobs.write("gone", [b"x"])
    blobs.delete("gone")
    blobs.delete("gone")
    assert not blobs.exists("gone")


def test_unsafe_keys_are_invalid_input(blobs: SupabaseBlobStore) -> None:
    for key in ("", "../x", "a//b", "a/./b", "/abs"):
        with pytest.raises(InvalidInput):
            blobs.write(key, [b"x"])


# -- listing -----------------------------------------------------------------------------------


def test_list_pages_whole_keys_past_1000_in_key_order(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    objects = fake.buckets[BUCKET].objects
    expected = {f"operations/20250618/op{i:04d}.json" for i in range(1010)}
    expected |= {"operations/20250619/a.json", "operations/20250619/deep/er/b.json"}
    strangers = {"inputs/sha256/ab/c.png", "operationsX/nope.json", "Operations/upper.json"}
    for key in expected | strangers:
        objects[f"tenant/{key}"] = StoredObject(b"12345", "application/json")
    objects["outside-the-prefix.json"] = StoredObject(b"1", "application/json")
    objects["tenant/operations/.emptyFolderPlaceholder"] = StoredObject(b"", "text/plain")
    before = fake.count("POST", f"/storage/v1/object/list-v2/{BUCKET}")

    listed = list(blobs.list("operations/"))

    assert [b.key for b in listed] == sorted(expected)
    assert {b.size for b in listed} == {5}
    assert all(b.modified is not None for b in listed)
    assert fake.count("POST", f"/storage/v1/object/list-v2/{BUCKET}") - before == 2
    assert {b.key for b in blobs.list("operations/2025061")} == expected
    assert {b.key for b in blobs.list("operations/20250619/")} == {
        "operations/20250619/a.json",
        "operations/20250619/deep/er/b.json",
    }
    assert len(list(blobs.list(""))) == len(expected) + len(strangers)
    assert list(blobs.list("nothing/")) == []


def test_folders_differing_only_in_case_list_apart(blobs: SupabaseBlobStore) -> None:
    """The v1 list would merge them (as the real server does, and the fake now too)."""
    for user in ("alice", "Alice", "ALICE", "alicex"):
        blobs.write(f"images/{user}/{user}.json", [user.encode()])
    for user in ("alice", "Alice", "ALICE"):
        assert [b.key for b in blobs.list(f"images/{user}/")] == [f"images/{user}/{user}.json"]
    assert [b.key for b in blobs.list("images/ali")] == [
        "images/alice/alice.json",
        "images/alicex/alicex.json",
    ]


class _UpsertFalseBlobStore(SupabaseBlobStore):
    """A blob store whose exclusive write is the plain ``x-upsert: false`` upload: a check on
    the server, not a lock (what this backend did before it moved temporaries into place)."""

    exclusive_writes_are_atomic = False

    def _write(
        self, key: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        if not exclusive:
            return super()._write(key, chunks, content_type=content_type, exclusive=False)
        data = b"".join(chunks)
        options = {"content-type": content_type, "x-upsert": "false"}
        call(self.retry, lambda: self._files.upload(self._path(key), data, options), what=key)
        return len(data)


def _race(n: int, work: Callable[[int], T]) -> list[T]:
    start = threading.Barrier(n)

    def run(i: int) -> T:
        start.wait(30)
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_racing_exclusive_writes_have_one_winner(blobs: SupabaseBlobStore) -> None:
    def write(i: int) -> bool:
        try:
            blobs.write("race/one.bin", [b"%d" % i], exclusive=True)
        except AlreadyExists:
            return False
        return True

    wins = _race(16, write)
    assert wins.count(True) == 1
    assert blobs.read("race/one.bin") == b"%d" % wins.index(True)
    assert [b.key for b in blobs.list("")] == ["race/one.bin"]  # temporaries hidden...
    assert blobs.sweep_temporaries(older_than=0) == 0  # ...and none left behind


def test_catalog_claims_keep_image_creates_apart_where_exclusive_writes_race(
    fake: FakeSupabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a blob store whose exclusive writes race (the fake's x-upsert: false races as the real
    server's does), the SQLite catalog's claims decide which create gets which name."""
    import genstore
    import genstore._images as images_module
    from genstore_adapters.sqlite.catalog import SQLiteCatalog

    monkeypatch.setattr(images_module, "_now_ms", lambda: 1_750_000_000_000)
    connection = SupabaseConnection(Settings.from_env(need_api=False), timeout=10)
    racing = _UpsertFalseBlobStore(connection, BUCKET, "race")
    racing.ensure_bucket()
    with genstore.Store(racing, SQLiteCatalog(tmp_path / "c.sqlite3", store=racing.url)) as store:

        def create(i: int) -> str:
            png = png_bytes(2, 2, f"#{i * 20:02x}0000")
            return store.images.create(user_id="u", prompt="p", image_data=png).key

        keys = _race(12, create)
    assert len(set(keys)) == 12


# -- URLs --------------------------------------------------------------------------------------


def test_signed_urls_work_without_auth_and_only_for_their_object(
    blobs: SupabaseBlobStore,
) -> None:
    blobs.write("images/u1/a.png", [b"secret png"], content_type="image/png")
    blobs.write("images/u1/b.png", [b"other"])
    url = blobs.url_for("images/u1/a.png", expires=60)
    assert url is not None and "token=" in url
    plain = httpx.get(url)  # no apikey, no Authorization
    assert plain.status_code == 200 and plain.content == b"secret png"
    assert plain.headers["content-type"] == "image/png"
    other = httpx.get(url.replace("/a.png?", "/b.png?"))
    assert other.status_code == 400 and other.json()["error"] == "InvalidSignature"
    tampered = httpx.get(url[:-3] + "xyz")
    assert tampered.status_code == 400 and tampered.json()["error"] == "InvalidJWT"
    direct = httpx.get(url.split("/sign/")[0] + "/images/u1/a.png")
    assert direct.status_code == 401  # the plain object route needs the key
    with pytest.raises(NotFound):
        blobs.url_for("images/u1/missing.png")


# -- errors and retries ------------------------------------------------------------------------

DOC_ERRORS = [
    # (statusCode, error, HTTP status) rows of SUPABASE_STORAGE_API.md -> the genstore error
    ("409", "Duplicate", 400, AlreadyExists),
    ("404", "not_found", 400, NotFound),
    ("404", "Bucket not found", 400, NotFound),
    ("409", "ResourceNotEmpty", 400, AlreadyExists),
    ("415", "invalid_mime_type", 400, InvalidInput),
    ("413", "Payload too large", 400, PayloadTooLarge),
    ("403", "Unauthorized", 400, AuthError),
    ("400", "Error", 400, InvalidInput),
    ("500", "DatabaseError", 500, BackendUnavailable),
    ("416", "InvalidRange", 416, InvalidInput),
]


@pytest.mark.parametrize(("status", "name", "http_status", "expected"), DOC_ERRORS)
def test_every_documented_error_body_maps_to_one_genstore_error(
    status: str, name: str, http_status: int, expected: type[Exception]
) -> None:
    # As storage3 builds it from the body: .status is the *string* statusCode.
    failure = describe(StorageApiError("msg", name, status))
    assert failure is not None and failure.status == int(status)
    assert type(to_genstore(failure, what="op")) is expected
    assert is_transient(failure) is (http_status >= 500)


def test_409_is_retried_only_when_upserting() -> None:
    failure = describe(StorageApiError("The resource already exists", "Duplicate", "409"))
    assert failure is not None
    assert is_transient(failure, upsert=True) and not is_transient(failure)


def test_object_and_bucket_not_found_raise_not_found(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    with pytest.raises(NotFound, match="Object not found"):
        blobs.read("missing.json")
    with pytest.raises(NotFound):
        blobs.open("missing.json")
    del fake.buckets[BUCKET]
    with pytest.raises(NotFound, match="Bucket not found"):
        blobs.write("x", [b"1"])


def test_bucket_limits_map_to_payload_too_large_and_invalid_input(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    fake.buckets[BUCKET].file_size_limit = 10
    with pytest.raises(PayloadTooLarge):
        blobs.write("big", [b"x" * 11])
    fake.buckets[BUCKET].allowed_mime_types = ["image/*"]
    with pytest.raises(InvalidInput, match="mime type"):
        blobs.write("doc.txt", [b"x"], content_type="text/plain")
    blobs.write("ok.png", [b"x"], content_type="image/png")


def test_a_user_key_is_refused_with_auth_error(
    fake: FakeSupabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", fake.make_jwt("authenticated", sub="user_1"))
    with pytest.raises(AuthError, match="SUPABASE_SERVICE_ROLE_KEY"):
        open_blobs()  # row-level security denies creating the bucket


@pytest.mark.parametrize("which", ["expired", "wrong secret"])
def test_bad_keys_are_auth_errors(
    fake: FakeSupabase, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    key = (
        fake.make_jwt("service_role", expires_in=-60)
        if which == "expired"
        else FakeSupabase(jwt_secret="another-secret-of-at-least-32-bytes!!").service_role_key
    )
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", key)
    with pytest.raises(AuthError):
        open_blobs()


def test_a_role_unknown_to_the_database_is_retried_then_unavailable(
    fake: FakeSupabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", fake.make_jwt("nobody"))
    with pytest.raises(BackendUnavailable, match="DatabaseError") as info:
        open_blobs(f"supabase://{BUCKET}?deadline=0.3")
    assert not isinstance(info.value, AuthError)
    assert fake.count("GET", f"/storage/v1/bucket/{BUCKET}") >= 2


def test_transient_failures_are_retried(blobs: SupabaseBlobStore, fake: FakeSupabase) -> None:
    fake.fail_next(2, 503)
    blobs.write("r.bin", [b"after retries"])
    fake.fail_next(1, 502)
    assert blobs.read("r.bin") == b"after retries"
    fake.fail_next(1, 429)
    assert [b.key for b in blobs.list("")] == ["r.bin"]


def test_timeouts_are_retried(fake: FakeSupabase) -> None:
    store = open_blobs(f"supabase://{BUCKET}?timeout=0.2&deadline=5")
    try:
        fake.delay_next(1, 0.6)
        store.write("slow", [b"eventually"])
        assert store.read("slow") == b"eventually"
    finally:
        store.close()


def test_persistent_failures_end_in_backend_unavailable(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    blobs.retry = RetryPolicy(deadline=0.3)
    fake.fail_next(10_000, 503)
    with pytest.raises(BackendUnavailable, match="gave up after") as info:
        blobs.write("never", [b"x"])
    assert not isinstance(info.value, AuthError)
    assert isinstance(info.value.__cause__, StorageApiError)  # chained, never raised raw


def test_an_unreachable_server_is_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SUPABASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "k")
    monkeypatch.delenv("SUPABASE_STORAGE_URL", raising=False)
    with pytest.raises(BackendUnavailable, match="ConnectError"):
        open_blobs(f"supabase://{BUCKET}?deadline=0.3")


def test_one_store_serves_many_threads(blobs: SupabaseBlobStore, catalog: SupabaseCatalog) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def work(n: int) -> None:
        for i in range(5):
            key = f"operations/t{n}/{i}.bin"
            blobs.write(key, [f"{n}:{i}".encode()])
            assert blobs.read(key) == f"{n}:{i}".encode()
            catalog.upsert_operation(op(n * 10 + i))

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, range(6)))
    assert len(list(blobs.list("operations/"))) == 30
    assert len(list(catalog.operation_ids())) == 30


# -- the catalog -------------------------------------------------------------------------------


def test_catalog_shares_the_backend_connection(
    blobs: SupabaseBlobStore, catalog: SupabaseCatalog
) -> None:
    assert catalog.connection is blobs.connection
    catalog.close()
    blobs.write("still-open", [b"x"])  # the backend still holds the pool


def test_catalog_without_the_migration_says_how_to_fix_it(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    fake.tables_installed = False
    with pytest.raises(ConfigurationError, match="genstore supabase-sql"):
        open_supabase_catalog(parse_catalog_url("supabase"), blobs)


def test_operations_round_trip_exactly(catalog: SupabaseCatalog, fake: FakeSupabase) -> None:
    record = op(
        1,
        prompt="un chat « roux » 🐈",
        parameters={"guidance": 3.5, "n": 10**15, "nested": [None, {"ok": True}], "e": 1e-7},
        user_id="user_2ta6NRH0kZxG51Gcn6gCaVzJQPe",
        idempotency_key="req-1",
        duration_ms=12.25,
    )
    catalog.upsert_operation(record)
    catalog.upsert_operation(record)  # an upsert, not a duplicate
    assert catalog.get_operation(record.operation_id) == record
    assert catalog.get_operation("20250618_01JY9999999999999999999999") is None
    changed = record.model_copy(update={"error": "later", "status": OperationStatus.FAILED})
    catalog.upsert_operation(changed)
    assert catalog.get_operation(record.operation_id) == changed
    row = fake.tables["genstore_operations"][(catalog.store, record.operation_id)]
    assert (row["status"], row["user_id"], row["created_at"]) == (
        "failed",
        record.user_id,
        T0 + timedelta(seconds=1),
    )
    catalog.delete_operation(record.operation_id)
    catalog.delete_operation(record.operation_id)
    assert catalog.get_operation(record.operation_id) is None


def test_history_filters_order_and_cursor(catalog: SupabaseCatalog) -> None:
    for i in range(12):
        catalog.upsert_operation(
            op(
                i,
                user_id=f"user_{i % 3}",
                operation_type=("a", "b")[i % 2],
                status="failed" if i % 4 == 0 else "succeeded",
            )
        )
    same_time = [op(100 + i, created_at=T0 + timedelta(hours=1)) for i in range(3)]
    for record in same_time:
        catalog.upsert_operation(record)

    def ids(**q: Any) -> list[str]:
        return [r.operation_id[-3:] for r in catalog.query_operations(HistoryQuery(**q))]

    assert ids(limit=4) == ["102", "101", "100", "011"]
    assert ids(user_id="user_1", operation_type="b") == ["007", "001"]
    assert ids(user_id="user_1") == ["010", "007", "004", "001"]
    assert ids(status="failed") == ["008", "004", "000"]
    assert ids(since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=6)) == [
        "005",
        "004",
        "003",
    ]
    tie = (T0 + timedelta(hours=1), same_time[1].operation_id)
    assert ids(before=tie, limit=3) == ["100", "011", "010"]


def test_history_pages_through_a_low_max_rows_cap(
    blobs: SupabaseBlobStore, fake: FakeSupabase
) -> None:
    fake.max_rows = 7
    cat = open_supabase_catalog(parse_catalog_url("supabase?max_rows=7"), blobs)
    assert isinstance(cat, SupabaseCatalog)
    try:
        for i in range(25):
            cat.upsert_operation(op(i))
        got = cat.query_operations(HistoryQuery(limit=20))
        assert [r.operation_id[-2:] for r in got] == [f"{i:02d}" for i in range(24, 4, -1)]
        assert sorted(cat.operation_ids()) == sorted(op(i).operation_id for i in range(25))
        stats = cat.stats()
        assert (stats.operations, stats.by_type, stats.by_status) == (
            25,
            {"text_to_image": 25},
            {"succeeded": 25},
        )
    finally:
        cat.close()


def test_images_pages_totals_and_isolation(catalog: SupabaseCatalog) -> None:
    for i in range(5):
        catalog.upsert_image(image("user_a", i, status="printed" if i % 2 else "generated"))
    catalog.upsert_image(image("user_b", 9))
    items, total = catalog.list_images("user_a", status=None, offset=0, limit=2)
    assert total == 5 and [r.image_id for r in items] == ["img_0004", "img_0003"]
    items, total = catalog.list_images("user_a", status=None, offset=4, limit=2)
    assert total == 5 and [r.image_id for r in items] == ["img_0000"]
    items, total = catalog.list_images("user_a", status=ImageStatus.PRINTED, offset=0, limit=10)
    assert total == 2 and [r.image_id for r in items] == ["img_0003", "img_0001"]
    assert catalog.list_images("user_a", status=None, offset=50, limit=10) == ([], 5)
    assert catalog.list_images("user_c", status=None, offset=0, limit=10) == ([], 0)
    assert catalog.get_image("user_b", "img_0001") is None
    record = image("user_a", 1, status="printed")
    assert catalog.get_image("user_a", "img_0001") == record
    catalog.upsert_image(record.model_copy(update={"status": ImageStatus.ORDERED}))
    assert catalog.get_image("user_a", "img_0001").status is ImageStatus.ORDERED  # type: ignore[union-attr]
    catalog.delete_image("user_a", "img_0001")
    catalog.delete_image("user_a", "img_0001")
    assert catalog.get_image("user_a", "img_0001") is None
    assert catalog.stats().images == 5
    catalog.clear()
    assert list(catalog.image_ids()) == [] and list(catalog.operation_ids()) == []


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pairs=st.sets(
        st.tuples(
            st.text(
                st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8
            ),
            st.text(
                st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=8
            ),
        ),
        max_size=12,
    )
)
def test_image_keyset_scan_survives_any_text(
    catalog: SupabaseCatalog, fake: FakeSupabase, pairs: set[tuple[str, str]]
) -> None:
    """Keyset pagination quotes values inside or=(...): commas, quotes, parens, backslashes."""
    fake.tables["genstore_images"].clear()
    catalog.max_rows = 3
    for n, (user, image_id) in enumerate(pairs):
        catalog.upsert_image(image(user, n, image_id=image_id))
    assert list(catalog.image_ids()) == sorted(pairs)


def test_a_row_that_does_not_parse_is_corrupt_record_naming_it(
    catalog: SupabaseCatalog, fake: FakeSupabase
) -> None:
    catalog.upsert_operation(op(1))
    catalog.upsert_operation(op(2))
    catalog.upsert_image(image("alice", 1))
    assert list(catalog.unreadable_rows()) == []
    operations, images = fake.tables["genstore_operations"], fake.tables["genstore_images"]
    operations[(catalog.store, op(1).operation_id)]["record"] = {"operation_id": "x"}
    images[(catalog.store, "alice", "img_0001")]["record"] = [1]  # jsonb: any JSON value
    with pytest.raises(CorruptRecord) as raised:
        catalog.query_operations(HistoryQuery())
    assert (raised.value.key, raised.value.kind) == (op(1).operation_id, "operation")
    assert "Supabase catalog" in str(raised.value) and "validation error" not in str(raised.value)
    with pytest.raises(CorruptRecord, match="alice/img_0001"):
        catalog.list_images("alice", status=None, offset=0, limit=10)
    with pytest.raises(CorruptRecord):
        catalog.get_image("alice", "img_0001")
    assert catalog.get_operation(op(2).operation_id) == op(2)
    assert list(catalog.unreadable_rows()) == [op(1).operation_id, "alice/img_0001"]


def test_catalog_retries_then_gives_up(catalog: SupabaseCatalog, fake: FakeSupabase) -> None:
    fake.fail_next(2, 503)
    catalog.upsert_operation(op(1))
    fake.fail_next(1, 503)
    assert catalog.get_operation(op(1).operation_id) == op(1)
    catalog.retry = RetryPolicy(deadline=0.3)
    fake.fail_next(10_000, 503)
    with pytest.raises(BackendUnavailable, match="gave up after"):
        catalog.upsert_operation(op(2))


def test_catalog_errors_are_translated(
    catalog: SupabaseCatalog, fake: FakeSupabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InvalidInput):  # NUL in text: PostgreSQL refuses it (22P05)
        catalog.upsert_operation(op(1, user_id="a\x00b"))
    fake.tables_installed = False
    with pytest.raises(ConfigurationError, match="genstore supabase-sql"):
        catalog.get_operation(op(1).operation_id)
    fake.tables_installed = True
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", fake.make_jwt("authenticated", sub="user_1"))
    as_user = SupabaseCatalog(
        SupabaseConnection(Settings.from_env(need_api=True), timeout=5), store=catalog.store
    )
    try:
        as_user.check_schema()  # reading is allowed (and filtered to the user's rows)
        with pytest.raises(AuthError):  # writing is not: no policy lets a user write
            as_user.upsert_operation(op(3))
    finally:
        as_user.close()


# -- the migration -----------------------------------------------------------------------------


def test_migration_sql_fills_in_the_bucket_and_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    from genstore_adapters.supabase import migration_sql

    monkeypatch.delenv("GENSTORE_URL", raising=False)
    default = migration_sql()
    assert "bucket_id = 'genstore'" in default and "'images/' ||" in default
    assert ":'genstore" not in default and ':"genstore' not in default
    custom = migration_sql("it's", prefix="/tenant/")
    assert "bucket_id = 'it''s'" in custom and "'tenant/images/' ||" in custom
    assert '"genstore_read_own_images_it\'s"' in custom
    monkeypatch.setenv("GENSTORE_URL", "supabase://media/prod?public=false")
    assert "bucket_id = 'media'" in migration_sql() and "'prod/images/'" in migration_sql()
    with pytest.raises(ConfigurationError):
        migration_sql("a/b")


@pytest.mark.postgres
def test_migration_applies_on_postgresql_and_enforces_the_seed_policies() -> None:
    """Applied twice in a throwaway schema, inside a transaction that is rolled back."""
    import psycopg
    from fakes._supabase_postgrest_routes import TABLES
    from genstore_adapters.supabase import migration_sql
    from psycopg.types.json import Jsonb
    from supabase_sql import scratch_schema, supabase_database

    with supabase_database() as conn:
        schema = scratch_schema(conn)
        sql = migration_sql("genstore-test", prefix="tenant")
        conn.execute(sql)
        conn.execute(sql)  # idempotent

        # The fake serves exactly these tables, columns, keys and defaults.
        for table in TABLES.values():
            columns = conn.execute(
                "select column_name, data_type, is_nullable from information_schema.columns"
                " where table_schema = %s and table_name = %s",
                [schema, table.name],
            ).fetchall()
            kinds = {"text": "text", "timestamp with time zone": "timestamptz", "jsonb": "jsonb"}
            assert {c: kinds[t] for c, t, _ in columns} == table.columns
            assert {c for c, _, nullable in columns if nullable == "NO"} == table.not_null
            key = conn.execute(
                "select pg_get_constraintdef(oid) from pg_constraint"
                " where conrelid = %s::regclass and contype = 'p'",
                [table.name],
            ).fetchone()
            assert key == (f"PRIMARY KEY ({', '.join(table.primary_key)})",)
            defaults = conn.execute(
                "select column_name, column_default from information_schema.columns"
                " where table_schema = %s and table_name = %s and column_default is not null",
                [schema, table.name],
            ).fetchall()
            assert {c: "''::text" for c in table.defaults} == dict(defaults)

        # Every history and images query the catalog makes (always on one store) is answered
        # from an index, in order.
        # (Planner costs are penalised, not the choice made: an ordered plan without Sort exists
        # only if an index gives that order.)
        for knob in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.execute(f"set local {knob} = off")
        order = "order by created_at desc, operation_id desc limit 50"
        for where in (
            "true",
            "user_id = 'u'",
            "operation_type = 't'",
            "user_id = 'u' and operation_type = 't'",
            "status = 'failed'",
            "idempotency_key = 'k'",
        ):
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    "explain select record from genstore_operations"
                    f" where store = 's' and {where} {order}"
                )
            )
            assert "Index" in plan and "Sort" not in plan and "Filter" not in plan, (where, plan)
        for where in ("user_id = 'u'", "user_id = 'u' and status = 'printed'"):
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    f"explain select record from genstore_images where store = 's' and {where}"
                    " order by created_at desc, image_id desc limit 10 offset 20"
                )
            )
            assert "Index" in plan and "Sort" not in plan and "Filter" not in plan, (where, plan)
        for knob in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.execute(f"set local {knob} = on")

        for user in ("user_a", "user_b"):
            conn.execute(
                "insert into genstore_operations (operation_id, operation_type, status,"
                " user_id, created_at, record) values (%s, 't', 'succeeded', %s, now(), %s)",
                [f"op_{user}", user, Jsonb({"operation_id": f"op_{user}"})],
            )
            conn.execute(
                "insert into genstore_images (user_id, image_id, status, created_at,"
                " updated_at, record) values (%s, 'img_1', 'generated', now(), now(), %s)",
                [user, Jsonb({"user_id": user, "image_id": "img_1"})],
            )
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute(
                "insert into genstore_operations (operation_id, operation_type, status,"
                " created_at, record) values ('x', 't', 's', now(), '{\"operation_id\": \"y\"}')"
            )
        for bucket, name in [
            ("genstore-test", "tenant/images/user_a/1_generated_1.png"),
            ("genstore-test", "tenant/images/user_a/img_1.json"),
            ("genstore-test", "tenant/images/user_b/2_generated_2.png"),
            ("genstore-test", "tenant/images/user_ab/3_generated_3.png"),
            ("genstore-test", "tenant/operations/20250618/op.json"),
            ("genstore-test", "images/user_a/outside-the-prefix.png"),
            ("another-bucket", "tenant/images/user_a/4_generated_4.png"),
        ]:
            conn.execute(
                "insert into storage.objects (bucket_id, name) values (%s, %s)", [bucket, name]
            )
        conn.execute(f'grant usage on schema "{schema}", auth, storage to authenticated, anon')
        conn.execute("grant select on storage.objects to authenticated")

        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            ['{"sub": "user_a", "role": "authenticated"}'],
        )
        assert conn.execute("select user_id from genstore_operations").fetchall() == [("user_a",)]
        assert conn.execute("select user_id from genstore_images").fetchall() == [("user_a",)]
        names = sorted(r[0] for r in conn.execute("select name from storage.objects"))
        assert names == [
            "tenant/images/user_a/1_generated_1.png",
            "tenant/images/user_a/img_1.json",
        ]
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(
                "insert into genstore_operations (operation_id, operation_type, status,"
                " user_id, created_at, record) values ('mine', 't', 's', 'user_a', now(), '{}')"
            )
        conn.execute("select set_config('request.jwt.claims', '', true)")  # signed out
        assert conn.execute("select count(*) from genstore_images").fetchone() == (0,)
        assert conn.execute("select count(*) from storage.objects").fetchone() == (0,)
        conn.execute("reset role")
        conn.execute("set local role anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("select count(*) from genstore_operations")
