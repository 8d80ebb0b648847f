"""Races that exactly one writer must win, on any store (a mixin of tests, and the worker that
runs in each spawned process). A test class provides the ``store_url`` fixture, as the contract
suites do, with the environment (credentials, endpoints) already set: spawned processes inherit it.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import genstore
import pytest
from genstore._keys import operation_record_key
from genstore.testing import png_bytes

__all__ = ["RaceContract", "save_with_key"]

PROCESSES = 12
IMAGES = 16
_TIMEOUT = 120.0


def save_with_key(url: str, key: str, barrier: Any, results: Any) -> None:
    """In a spawned process: open the store, wait for all, save once with ``key``."""
    try:
        with genstore.open_store(url) as store:
            barrier.wait(_TIMEOUT)
            saved = store.save_complete_operation(
                operation_type="text_to_image", prompt="race", idempotency_key=key
            )
            results.put(saved.operation_id)
    except BaseException as exc:  # reported to the test, which fails on it
        results.put(f"error: {type(exc).__name__}: {exc}")


class RaceContract:
    """12 processes saving with one idempotency key make 1 operation; 16 concurrent image
    creates in one millisecond make 16 distinct PNGs."""

    @pytest.fixture
    def store_url(self) -> str:
        raise NotImplementedError

    def test_twelve_processes_with_one_idempotency_key_make_one_operation(
        self, store_url: str
    ) -> None:
        spawn = multiprocessing.get_context("spawn")
        barrier = spawn.Barrier(PROCESSES)
        results = spawn.Queue()
        workers = [
            spawn.Process(target=save_with_key, args=(store_url, "one-key", barrier, results))
            for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        answers = [results.get(timeout=_TIMEOUT) for _ in workers]
        for worker in workers:
            worker.join(_TIMEOUT)
        assert not [a for a in answers if a.startswith("error")], answers
        assert len(set(answers)) == 1, answers
        with genstore.open_store(store_url) as store:
            records = [b.key for b in store.blobs.list("operations/") if b.key.endswith(".json")]
            assert records == [operation_record_key(answers[0])]
            assert [r.operation_id for r in store.history(limit=50).items] == answers[:1]

    def test_sixteen_concurrent_image_creates_in_one_millisecond_make_sixteen_pngs(
        self, store_url: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        import genstore._images as images_module

        monkeypatch.setattr(images_module, "_now_ms", lambda: 1_750_000_000_000)
        pngs = [png_bytes(4, 4, f"#{i * 15:02x}{255 - i * 15:02x}07") for i in range(IMAGES)]
        start = threading.Barrier(IMAGES)
        with genstore.open_store(store_url) as store:

            def create(i: int) -> genstore.ImageRecord:
                start.wait(_TIMEOUT)
                return store.images.create(user_id="racer", prompt=f"p{i}", image_data=pngs[i])

            with ThreadPoolExecutor(IMAGES) as pool:
                made = list(pool.map(create, range(IMAGES)))
            assert len({m.key for m in made}) == IMAGES
            for i, record in enumerate(made):
                assert store.images.read(user_id="racer", image_id=record.image_id) == pngs[i]
            assert store.images.list(user_id="racer", limit=100).total == IMAGES
