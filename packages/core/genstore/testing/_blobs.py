"""``BlobStoreContract``: what every ``BlobStore`` does, called through its public methods."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from genstore import AlreadyExists, InvalidInput, NotFound, Store
from genstore.plugin import BlobStore

from ._support import StoreFixtures

__all__ = ["BlobStoreContract"]

REFUSED_KEYS = (
    "",
    "/absolute",
    "trailing/",
    "a//b",
    "../up",
    "a/./b",
    "a/../b",
    ".hidden/x",
    "a\\b",
    "a%2Fb",
    "a#b",
    "a?b",
    "a~b",
    "a[1]",
    "a b",
    "caf\u00e9",
    "a\x00b",
    "a\x1fb",
    "k" * 1025,
)
"""Keys every backend refuses up front (``genstore._keys.check_blob_key``)."""


class BlobStoreContract(StoreFixtures):
    """Behaviour every blob store must show; the ``blobs`` fixture is the store's ``BlobStore``."""

    @pytest.fixture
    def blobs(self, store: Store) -> BlobStore:
        """The blob store under test."""
        return store.blobs

    def test_write_streams_chunks_and_reads_back(self, blobs: BlobStore) -> None:
        chunks = [b"x" * 70_000, b"", b"y" * 3]
        assert blobs.write("c/a.bin", iter(chunks), content_type="image/png") == 70_003
        assert blobs.read("c/a.bin") == b"".join(chunks)
        with blobs.open("c/a.bin") as f:
            assert f.read(5) == b"xxxxx"
            assert f.read() == b"".join(chunks)[5:]
        assert blobs.exists("c/a.bin")

    def test_empty_blob_round_trips(self, blobs: BlobStore) -> None:
        assert blobs.write("c/empty", []) == 0
        assert blobs.read("c/empty") == b""
        assert [(b.key, b.size) for b in blobs.list("c/")] == [("c/empty", 0)]

    def test_exclusive_write_never_replaces(self, blobs: BlobStore) -> None:
        blobs.write("c/x.json", [b"first"], exclusive=True)
        with pytest.raises(AlreadyExists):
            blobs.write("c/x.json", [b"second"], exclusive=True)
        assert blobs.read("c/x.json") == b"first"

    def test_replacing_is_atomic_for_readers(self, blobs: BlobStore) -> None:
        versions = (b"a" * 200_000, b"b" * 300_000)
        blobs.write("c/swap", [versions[0]])
        seen: list[bytes] = []
        done = threading.Event()

        def read_until_done() -> None:
            for _ in range(500):  # bounded: the writer normally finishes long before
                seen.append(blobs.read("c/swap"))
                if done.is_set():
                    return

        reader = threading.Thread(target=read_until_done)
        reader.start()
        try:
            for i in range(10):
                blobs.write("c/swap", [versions[(i + 1) % 2]])
        finally:
            done.set()
            reader.join(60)
        assert seen and all(body in versions for body in seen)

    def test_a_failed_write_leaves_the_old_blob(self, blobs: BlobStore) -> None:
        blobs.write("c/kept", [b"old"])

        def broken() -> Iterator[bytes]:
            yield b"new half"
            raise RuntimeError("the source failed midway")

        with pytest.raises(RuntimeError):
            blobs.write("c/kept", broken())
        with pytest.raises(RuntimeError):
            blobs.write("c/never", broken())
        assert blobs.read("c/kept") == b"old"
        assert not blobs.exists("c/never")
        assert [b.key for b in blobs.list("c/")] == ["c/kept"]

    def test_missing_blobs(self, blobs: BlobStore) -> None:
        with pytest.raises(NotFound):
            blobs.read("c/missing")
        with pytest.raises(NotFound):
            blobs.open("c/missing").close()
        assert not blobs.exists("c/missing")
        blobs.delete("c/missing")  # not an error
        assert list(blobs.list("nothing/here/")) == []

    def test_list_by_prefix_in_key_order_at_any_depth(self, blobs: BlobStore) -> None:
        for key, body in (
            ("p/u/b.json", b"22"),
            ("p/u/a.json", b"1"),
            ("p/u/deep/er/c.png", b"333"),
            ("p/u2/d", b"4444"),
            ("p/v/e", b"5"),
        ):
            blobs.write(key, [body])
        under = [(b.key, b.size) for b in blobs.list("p/u/")]
        assert under == [("p/u/a.json", 1), ("p/u/b.json", 2), ("p/u/deep/er/c.png", 3)]
        assert [b.key for b in blobs.list("p/")] == [
            "p/u/a.json",
            "p/u/b.json",
            "p/u/deep/er/c.png",
            "p/u2/d",
            "p/v/e",
        ]
        assert {b.key for b in blobs.list("")} >= {"p/u2/d", "p/v/e"}

    def test_delete_removes_only_that_blob(self, blobs: BlobStore) -> None:
        blobs.write("c/one", [b"1"])
        blobs.write("c/two", [b"2"])
        blobs.delete("c/one")
        assert not blobs.exists("c/one")
        assert [b.key for b in blobs.list("c/")] == ["c/two"]

    def test_url_for_is_a_url_or_none(self, blobs: BlobStore) -> None:
        blobs.write("c/u.png", [b"png"], content_type="image/png")
        url = blobs.url_for("c/u.png", expires=60)
        assert url is None or "://" in url

    def test_unsafe_keys_are_refused_before_the_backend(self, blobs: BlobStore) -> None:
        before = [b.key for b in blobs.list("")]
        for key in REFUSED_KEYS:
            calls = (
                lambda: blobs.write(key, [b"x"]),  # noqa: B023 - called at once
                lambda: blobs.read(key),  # noqa: B023
                lambda: blobs.open(key),  # noqa: B023
                lambda: blobs.exists(key),  # noqa: B023
                lambda: blobs.delete(key),  # noqa: B023
                lambda: blobs.url_for(key),  # noqa: B023
                lambda: list(blobs.list(key + "/")),  # noqa: B023
            )
            for call in calls:
                with pytest.raises(InvalidInput):
                    call()
        assert [b.key for b in blobs.list("")] == before
