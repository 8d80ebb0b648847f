"""The background writer and its spool: nothing lost, nothing duplicated, nothing half-written.

The store is a real local store (files + SQLite). Its BlobStore is wrapped so a test can switch it
off (``BackendUnavailable``, as a backend that does not answer raises) or make its writes wait on
a gate (a slow or hanging backend); the real files are written underneath either way. Crash tests
run a real child process and kill it with SIGKILL.
"""

from __future__ import annotations

import dataclasses
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import genstore
import pytest
from genstore import OperationRecord, OperationStatus, RequestInfo
from genstore._ids import new_operation_id
from genstore._plugins import register_plugin, unregister_plugin
from genstore._recording.recorder import Recorder, default_spool_dir
from genstore._recording.spool import ClaimedRecord, Spool
from genstore._save_request import JobCompletion, ResultURL, SaveRequest
from genstore._store import Store
from helpers import FileServer, png_bytes
from hypothesis import given, settings
from hypothesis import strategies as st
from switchable import SwitchableBlobs

WAIT = 30.0
"""Upper bound of every wait loop, in seconds (they normally end within a fraction of this)."""


@pytest.fixture
def rec_store(tmp_path: Path) -> Iterator[tuple[Store, SwitchableBlobs]]:
    """A local store whose backend the test can switch off."""
    opened = genstore.open_store(tmp_path / "store")
    blobs = SwitchableBlobs(opened.blobs)
    store = Store(blobs, opened.catalog, opened.options)
    yield store, blobs
    blobs.down.clear()
    blobs.gate.set()
    store.close()


@pytest.fixture
def rec_make(rec_store: tuple[Store, SwitchableBlobs]) -> Iterator[Callable[..., Recorder]]:
    """Recorders on the test store with fast retries, closed at the end of the test.

    Their spools skip fsync (it guards against power loss, which no test here simulates; a killed
    process loses nothing either way); the crash tests' child processes keep the default.
    """
    made: list[Recorder] = []

    def make(**options: Any) -> Recorder:
        defaults = {
            "base_backoff": 0.01,
            "max_backoff": 0.05,
            "poll_interval": 0.05,
            "fsync": False,
        }
        options = defaults | options
        recorder = Recorder(rec_store[0], **options)
        made.append(recorder)
        return recorder

    yield make
    rec_store[1].gate.set()
    for recorder in made:
        recorder.close(timeout=5)


def stored(store: Store, *, indexed: bool = True) -> list[OperationRecord]:
    """Every record, read from the sidecar JSON files (the truth); ``indexed``: the catalog agrees."""
    blobs = store.blobs.inner if isinstance(store.blobs, SwitchableBlobs) else store.blobs
    records = [
        OperationRecord.model_validate_json(blobs.read(b.key))
        for b in blobs.list("operations/")
        if b.key.endswith(".json") and "_out." not in b.key
    ]
    if indexed:
        in_catalog = {r.operation_id for r in store.iter_operations()}
        assert in_catalog == {r.operation_id for r in records}
    return records


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def settle(recorder: Recorder) -> None:
    """Wait until the queue is empty and the spool replayed."""
    assert recorder.flush(WAIT)
    wait_until(lambda: recorder.spool_status().count == 0, "the spool to drain")


# -- the spool on its own ---------------------------------------------------------------------------

json_values: st.SearchStrategy[Any] = st.deferred(
    lambda: (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text()
        | st.lists(json_values, max_size=3)
        | st.dictionaries(st.text(max_size=8), json_values, max_size=3)
    )
)


def _has_a_type(fields: dict[str, Any]) -> bool:
    return bool(fields["operation_type"].strip())


ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_]{0,19}", fullmatch=True)
call_kwargs: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"operation_type": st.text(st.characters(min_codepoint=32), min_size=1, max_size=30)},
    optional={
        "prompt": st.none() | st.text(),
        "parameters": json_values,
        "workflow_analysis": json_values,
        "input_images": st.lists(st.binary(max_size=300), max_size=3),
        "results": st.lists(st.binary(max_size=300), max_size=3),
        "error": st.text(),
        "user_id": ids,
        "idempotency_key": st.text(min_size=1, max_size=40),
        "operation_id": st.builds(lambda: new_operation_id()[1]),
        "duration_ms": st.floats(min_value=0, max_value=1e9),
        "created_at": st.datetimes(timezones=st.none() | st.just(UTC)),
        "request": st.builds(
            RequestInfo,
            route=st.text(max_size=30),
            method=st.sampled_from(["GET", "POST", "PUT"]),
            status_code=st.none() | st.integers(100, 599),
        ),
    },
).filter(_has_a_type)


def req(fields: dict[str, Any]) -> SaveRequest:
    return SaveRequest.build(**fields)


def plain(claimed: ClaimedRecord) -> SaveRequest:
    """A claimed record that is a plain save (not a job completion)."""
    assert isinstance(claimed.request, SaveRequest)
    return claimed.request


def spooled(source: object) -> Path:
    """A spooled request's source: the path of a file in the spool."""
    assert isinstance(source, str)
    return Path(source)


def read_sources(request: SaveRequest) -> SaveRequest:
    """``request`` with its spooled source paths replaced by their bytes."""
    outputs = tuple(
        o if isinstance(o, ResultURL) else spooled(o).read_bytes() for o in request.outputs
    )
    images = tuple(spooled(p).read_bytes() for p in request.input_images)
    return dataclasses.replace(request, input_images=images, outputs=outputs)


@settings(max_examples=60, deadline=None)
@given(kwargs=call_kwargs, urls=st.none() | st.lists(st.text(), max_size=3))
def test_spooled_requests_round_trip_exactly(
    kwargs: dict[str, Any], urls: list[str] | None
) -> None:
    if urls is not None and "results" not in kwargs:
        kwargs["result_urls"] = urls
    request = req(kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(tmp, fsync=False)
        ulid = spool.write(request)
        claimed = spool.claim(ulid)
        assert claimed is not None
        assert read_sources(plain(claimed)) == request
        claimed.done()
        spool.close()
        assert spool.status().count == 0


def test_records_spooled_in_format_1_still_replay(tmp_path: Path) -> None:
    folder = tmp_path / "rec-01JGB0000000000000000000XX"
    folder.mkdir()
    (folder / "in-0.bin").write_bytes(b"input")
    doc = {
        "format": 1,
        "kwargs": {
            "operation_type": "t",
            "prompt": "old",
            "created_at": "2025-01-01T00:00:00+00:00",
        },
        "files": {"input_images": ["in-0.bin"]},
        "types": {"created_at": "datetime"},
    }
    (folder / "call.json").write_text(json.dumps(doc))
    claimed = Spool(tmp_path).claim("01JGB0000000000000000000XX")
    assert claimed is not None
    request = read_sources(plain(claimed))
    assert (request.prompt, request.input_images) == ("old", (b"input",))
    assert request.created_at == datetime(2025, 1, 1, tzinfo=UTC)


def test_sources_are_moved_when_owned_and_copied_when_not(tmp_path: Path) -> None:
    owned = tmp_path / "body.bin"
    owned.write_bytes(b"owned body")
    extra = tmp_path / "unused.bin"
    extra.write_bytes(b"handed over, not used")
    theirs = tmp_path / "theirs.png"
    theirs.write_bytes(b"the caller's file")
    spool = Spool(tmp_path / "spool")
    ulid = spool.write(
        req({"operation_type": "t", "input_images": [owned, str(theirs), owned], "result": b"r"}),
        owned=[owned, extra],
    )
    assert not owned.exists() and not extra.exists()  # handed over: moved in, or deleted
    assert theirs.read_bytes() == b"the caller's file"  # not ours: copied, left alone
    claimed = spool.claim(ulid)
    assert claimed is not None
    images = [spooled(p).read_bytes() for p in plain(claimed).input_images]
    assert images == [b"owned body", b"the caller's file", b"owned body"]
    assert read_sources(plain(claimed)).outputs == (b"r",)


def test_a_missing_source_file_is_invalid_and_nothing_is_spooled(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    with pytest.raises(genstore.InvalidInput):
        spool.write(req({"operation_type": "t", "input_images": [tmp_path / "missing.png"]}))
    with pytest.raises(genstore.InvalidInput):
        spool.write(req({"operation_type": "t", "parameters": {"x": object()}}))
    assert spool.status().count == 0
    assert [n for n in os.listdir(spool.path) if n != "owners"] == []


def test_a_claim_is_taken_by_one_owner_only(tmp_path: Path) -> None:
    first, second = Spool(tmp_path), Spool(tmp_path)
    ulid = first.write(req({"operation_type": "t"}))
    assert first.claim(ulid) is not None
    assert second.claim(ulid) is None
    assert second.recover() == 0  # the first owner is alive: its claim stays
    assert first.status().claimed == 1


def test_claims_of_a_dead_owner_are_taken_back(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    ulid = spool.write(req({"operation_type": "t", "input_images": [b"img"]}))
    child = textwrap.dedent(
        f"""
        import os, signal
        from genstore._recording.spool import Spool
        spool = Spool({str(tmp_path)!r})
        assert spool.claim({ulid!r}) is not None
        os.mkdir(spool.path / f"tmp-{{spool.owner}}-HALFWRITTEN")
        os.mkdir(spool.path / f"done-{{spool.owner}}-HALFDELETED")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], timeout=WAIT, check=False)
    assert proc.returncode == -signal.SIGKILL
    assert spool.waiting() == [] and spool.status().claimed == 1
    assert spool.recover() == 1
    assert spool.waiting() == [ulid]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(("tmp-", "claimed-", "done-"))]
    claimed = spool.claim(ulid)
    assert claimed is not None and spooled(plain(claimed).input_images[0]).read_bytes() == b"img"


def test_unreadable_and_newer_records_are_never_replayed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    broken = spool.write(req({"operation_type": "t"}))
    (tmp_path / f"rec-{broken}" / "call.json").write_text("{not json")
    newer = spool.write(req({"operation_type": "t"}))
    doc = json.loads((tmp_path / f"rec-{newer}" / "call.json").read_text())
    (tmp_path / f"rec-{newer}" / "call.json").write_text(json.dumps(doc | {"format": 99}))
    assert spool.claim(broken) is None
    assert spool.claim(newer) is None
    assert spool.waiting() == [newer]  # left for a newer genstore
    status = spool.status()
    assert (status.count, status.bad) == (1, 1)


def test_spool_status_counts_bytes_and_age(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.status().count == 0 and spool.status().oldest is None
    before = datetime.now(UTC).replace(microsecond=0)
    spool.write(req({"operation_type": "t", "input_images": [b"x" * 1000]}))
    spool.write(req({"operation_type": "t"}))
    status = spool.status()
    assert status.count == 2
    assert status.bytes > 1000
    assert status.oldest is not None and before <= status.oldest <= datetime.now(UTC)


_WRITER = """
import sys
from genstore._recording.spool import Spool
from genstore._save_request import JobCompletion, ResultURL, SaveRequest
spool = Spool(sys.argv[1])
print("ready", flush=True)
i = 0
while True:
    spool.write(SaveRequest.build(
        operation_type="t", prompt=str(i), input_images=[bytes([i % 251]) * 20000]))
    i += 1
"""


def test_a_killed_writer_never_leaves_a_half_record_that_replays(tmp_path: Path) -> None:
    for round_number in range(3):
        with subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True
        ) as proc:
            assert read_line(proc, WAIT) == "ready"
            time.sleep(0.05 + 0.07 * round_number)  # land the kill at different points of a write
            proc.kill()
    spool = Spool(tmp_path)
    spool.recover()
    assert not [n for n in os.listdir(tmp_path) if n.startswith(("tmp-", "claimed-", "bad-"))]
    waiting = spool.waiting()
    assert waiting
    for ulid in waiting:
        claimed = spool.claim(ulid)
        assert claimed is not None
        i = int(plain(claimed).prompt or "")
        assert spooled(plain(claimed).input_images[0]).read_bytes() == bytes([i % 251]) * 20000


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        pytest.fail("the child process said nothing in time")
    return proc.stdout.readline().strip()


# -- the recorder with a real store ---------------------------------------------------------------


@pytest.mark.slow
def test_thousand_records_with_the_backend_down_for_the_middle_half(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    store, blobs = rec_store
    recorder = rec_make()
    for i in range(1000):
        if i == 250:
            assert recorder.flush(WAIT)
            blobs.down.set()
        if i == 750:
            assert recorder.flush(WAIT)
            blobs.down.clear()
        recorder.submit(operation_type="text_to_image", prompt=f"p{i}", input_images=[b"%d" % i])
    settle(recorder)
    records = stored(store)
    assert len(records) == 1000  # one record per prompt: none duplicated by its replay
    assert {r.prompt for r in records} == {f"p{i}" for i in range(1000)}
    assert all(r.idempotency_key is None for r in records)  # no markers: ids chosen up front
    counters = recorder.counters
    assert counters.dropped == 0 and counters.rejected == 0 and counters.pending == 0
    assert counters.spooled >= 500  # what the outage caught went through the spool...
    assert counters.replayed == counters.spooled  # ...and all of it came back
    assert counters.recorded + counters.replayed == 1000


def test_a_full_queue_spools_instead_of_losing(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    store, blobs = rec_store
    blobs.gate.clear()  # the backend hangs: the queue fills up
    recorder = rec_make(queue_size=5)
    for i in range(50):
        recorder.submit(operation_type="t", prompt=f"p{i}")
    # 50 minus at most 5 queued and a batch of at most 5 (the queue's size) being saved.
    assert recorder.counters.spooled >= 40
    blobs.gate.set()
    settle(recorder)
    assert sorted(r.prompt or "" for r in stored(store)) == sorted(f"p{i}" for i in range(50))
    assert recorder.counters.dropped == 0


def test_queued_records_are_saved_in_batches_of_one_catalog_call(
    rec_store: tuple[Store, SwitchableBlobs],
    rec_make: Callable[..., Recorder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, blobs = rec_store
    batches: list[int] = []
    upsert = store.catalog.upsert_operations

    def counted(records: Any) -> None:
        batches.append(len(records))
        upsert(records)

    monkeypatch.setattr(store.catalog, "upsert_operations", counted)
    blobs.gate.clear()  # the first save hangs while the others queue up behind it
    recorder = rec_make(batch_size=8)
    for i in range(20):
        recorder.submit(operation_type="t", prompt=f"p{i}")
    blobs.gate.set()
    settle(recorder)
    assert sorted(r.prompt or "" for r in stored(store)) == sorted(f"p{i}" for i in range(20))
    assert batches and max(batches) <= 8 and sum(batches) >= 20 - 8  # singles go one by one
    assert recorder.counters.recorded == 20


def test_replay_is_idempotent(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    store, _ = rec_store
    recorder = rec_make(poll_interval=3600)
    spool = Spool(recorder.spool_dir)
    call = req({"operation_type": "t", "prompt": "once", "idempotency_key": "key-1"})
    spool.write(call)
    spool.write(call)  # the same record spooled twice
    # A record saved just before a crash, whose spool entry was not yet deleted:
    store.save_complete_operation(operation_type="t", prompt="saved", idempotency_key="key-2")
    spool.write(req({"operation_type": "t", "prompt": "saved", "idempotency_key": "key-2"}))
    assert recorder.replay_spool() == 3
    assert recorder.replay_spool() == 0
    records = stored(store)
    assert sorted(r.idempotency_key or "" for r in records) == ["key-1", "key-2"]
    assert recorder.spool_status().count == 0


def test_an_invalid_record_is_rejected_and_never_retried(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    store, _ = rec_store
    recorder = rec_make()
    recorder.submit(operation_type="t", user_id="not a valid id/..")
    recorder.submit(operation_type="t", prompt="fine")
    settle(recorder)
    counters = recorder.counters
    assert (counters.rejected, counters.recorded, counters.spooled, counters.dropped) == (
        1,
        1,
        0,
        0,
    )
    assert [r.prompt for r in stored(store)] == ["fine"]


def test_records_from_an_earlier_process_are_replayed_on_start(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    store, _ = rec_store
    spool = Spool(default_spool_dir(store.blobs))
    for i in range(5):
        spool.write(
            req({"operation_type": "t", "prompt": f"old{i}", "idempotency_key": f"old-{i}"})
        )
    spool.close()
    recorder = rec_make()  # no submit needed: leftovers start the worker
    wait_until(lambda: recorder.spool_status().count == 0, "the leftovers to be replayed")
    assert len(stored(store)) == 5
    assert recorder.counters.replayed == 5


def test_a_poison_record_does_not_hold_back_the_others(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    class Poison:
        @genstore.hookimpl
        def genstore_before_save(self, record: OperationRecord) -> None:
            if record.prompt == "poison":
                raise RuntimeError("this record always breaks a plugin")

    store, _ = rec_store
    register_plugin(Poison(), name="rec-poison")
    try:
        recorder = rec_make()
        recorder.submit(operation_type="t", prompt="poison")
        for i in range(20):
            recorder.submit(operation_type="t", prompt=f"ok{i}")
        assert recorder.flush(WAIT)
        wait_until(lambda: len(stored(store, indexed=False)) == 20, "the good records")
        wait_until(lambda: len(list(store.iter_operations())) == 20, "the good records indexed")
        # Not diverted: only the poison went to the spool; the store was never taken for down.
        assert recorder.counters.spooled == 1 and recorder.counters.recorded == 20
        wait_until(lambda: recorder.counters.quarantined == 1, "the poison to be quarantined")
        status = recorder.spool_status()
        assert (status.count, status.quarantined) == (0, 1)
        spool = Spool(recorder.spool_dir)
        ((ulid, error),) = spool.quarantined()
        assert error == "RuntimeError: this record always breaks a plugin"
        assert recorder.counters.dropped == 0
    finally:
        unregister_plugin("rec-poison")
    spool.retry(ulid)  # the plugin is fixed: the record goes back in line and is saved
    assert recorder.replay_spool() == 1
    assert sorted(r.prompt or "" for r in stored(store)) == sorted(
        ["poison", *(f"ok{i}" for i in range(20))]
    )
    with pytest.raises(FileNotFoundError):
        spool.purge(ulid)


def test_close_drains_within_the_timeout_and_leaves_the_rest_spooled(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    store, blobs = rec_store
    blobs.gate.clear()  # the save in progress hangs until after close
    recorder = rec_make()
    for i in range(30):
        recorder.submit(operation_type="t", prompt=f"p{i}", input_images=[b"in%d" % i])
    recorder.close(timeout=0.2)
    # Whatever is still being saved (the hanging batch) has a copy in the spool, like the rest.
    assert recorder.spool_status().count == 30
    recorder.close()  # idempotent
    recorder.submit(operation_type="t", prompt="late")  # after close: straight to the spool
    assert recorder.spool_status().count == 31
    blobs.gate.set()
    assert recorder.flush(WAIT)  # the hanging save finishes too
    later = rec_make()  # finds the leftovers and replays them
    settle(later)
    assert later.counters.replayed == 31
    records = stored(store)
    # The hanging save finished and its spooled copy replayed: still one record each.
    assert sorted(r.prompt or "" for r in records) == sorted(
        [*(f"p{i}" for i in range(30)), "late"]
    )
    assert recorder.counters.dropped == 0


def test_two_recorders_on_one_spool_never_replay_a_record_twice(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    store, _ = rec_store
    first, second = rec_make(poll_interval=3600), rec_make(poll_interval=3600)
    spool = Spool(first.spool_dir, fsync=False)
    for i in range(100):
        spool.write(req({"operation_type": "t", "prompt": f"p{i}"}))
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda r=r: counts.append(r.replay_spool()))
        for r in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert sum(counts) == 100  # each record saved by exactly one of them
    assert len(stored(store)) == 100


def test_a_broken_spool_disk_counts_dropped_and_never_raises(
    rec_store: tuple[Store, SwitchableBlobs], tmp_path: Path
) -> None:
    store, blobs = rec_store
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    recorder = Recorder(store, spool_dir=not_a_dir / "spool", base_backoff=0.01)
    try:
        blobs.down.set()
        for i in range(3):
            recorder.submit(operation_type="t", prompt=f"p{i}")
        assert recorder.flush(WAIT)
        counters = recorder.counters
        assert (counters.dropped, counters.spooled, counters.recorded) == (3, 0, 0)
        assert recorder.spool_status().count == 0
    finally:
        recorder.close(timeout=1)


def test_the_spool_lives_outside_the_store(
    rec_store: tuple[Store, SwitchableBlobs], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = rec_store
    local = default_spool_dir(store.blobs)
    state = Path(os.environ["XDG_STATE_HOME"])
    assert local.parent == state / "genstore" / "spool" and len(local.name) == 16
    assert not local.is_relative_to(tmp_path / "store")
    with genstore.open_store("memory://rec-spool-test") as remote:
        assert default_spool_dir(remote.blobs) != local  # one folder per store
        monkeypatch.setenv("GENSTORE_SPOOL_DIR", str(tmp_path / "env"))
        assert default_spool_dir(remote.blobs).parent == tmp_path / "env"


def test_records_left_in_the_old_spool_inside_the_store_are_moved_and_replayed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    with genstore.open_store(root) as store:
        old = Spool(root / ".spool", fsync=False)
        for i in range(3):
            old.write(req({"operation_type": "t", "prompt": f"old{i}", "input_images": [b"i"]}))
        old.close()
    with genstore.open_store(root) as store:
        recorder = store.recorder
        assert not list((root / ".spool").glob("rec-*"))
        # Counted once saved and indexed: reading the store before could catch a record whose
        # JSON is written and whose catalog row is not yet (stored() asserts they agree).
        wait_until(lambda: recorder.counters.replayed == 3, "the moved records to replay")
        assert sorted(r.prompt or "" for r in stored(store)) == ["old0", "old1", "old2"]


def test_a_store_whose_folder_fails_keeps_recording_into_the_spool(tmp_path: Path) -> None:
    root = tmp_path / "store"
    with genstore.open_store(root) as store:
        recorder = store.recorder
        recorder._base_backoff = recorder._max_backoff = 0.01
        moved = tmp_path / "store-gone"
        root.rename(moved)
        root.write_bytes(b"")  # the store's folder is now a file: every write fails
        for i in range(20):
            recorder.submit(operation_type="t", prompt=f"p{i}", input_images=[b"in%d" % i])
        assert recorder.flush(WAIT)
        assert recorder.counters.dropped == 0 and recorder.counters.spooled == 20
        assert recorder.spool_dir.exists() and not recorder.spool_dir.is_relative_to(moved)
        root.unlink()
        moved.rename(root)
        wait_until(lambda: recorder.counters.replayed == 20, "the spool to replay")
    with genstore.open_store(root) as store:
        assert sorted(r.prompt or "" for r in stored(store)) == sorted(f"p{i}" for i in range(20))


_CHILD = """
import os, sys, time
import genstore
from genstore import BackendUnavailable
from genstore._recording.recorder import Recorder

root, flag, n, keyed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "keyed"
opened = genstore.open_store(root)
inner = opened.blobs

class Switch(type(inner)):
    def __init__(self):
        self.__dict__.update(inner.__dict__)
    def write(self, key, chunks, **kw):
        if os.path.exists(flag):
            raise BackendUnavailable("down")
        time.sleep(0.003)  # a slow backend: the kill lands in the middle of the replay
        return super().write(key, chunks, **kw)

store = genstore.Store(Switch(), opened.catalog, opened.options)
recorder = Recorder(store, queue_size=16, base_backoff=0.01, max_backoff=0.05, poll_interval=0.05)
for i in range(n):
    key = f"k-{i}" if keyed else None  # without: the recorder chooses the operation id
    recorder.submit(operation_type="t", prompt=f"p{i}", idempotency_key=key,
                    input_images=[b"input %d" % i])
recorder.flush(60)
print(recorder.counters.spooled, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("keyed", [True, False], ids=["caller keys", "ids chosen up front"])
def test_a_killed_process_loses_and_duplicates_nothing_it_spooled(
    tmp_path: Path, keyed: bool
) -> None:
    root, flag, n = tmp_path / "store", tmp_path / "backend-down", 200
    flag.touch()
    genstore.open_store(root).close()
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(root), str(flag), str(n), "keyed" if keyed else "-"],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert read_line(proc, WAIT) == str(n)  # all spooled while the backend was down
            flag.unlink()  # the backend is back: the child replays, slowly...
            with genstore.open_store(root) as store:
                wait_until(
                    lambda: len(stored(store, indexed=False)) >= n // 4,
                    "the child to replay some records",
                )
                proc.send_signal(signal.SIGKILL)  # ...and dies in the middle of it
                proc.wait(WAIT)
                left = Spool(default_spool_dir(store.blobs)).status()
                assert 0 < left.count < n  # killed mid-replay, as intended
                recorder = Recorder(store)  # finds the leftovers: its worker replays them
                recorder.replay_spool()  # and so does this call, concurrently
                settle(recorder)
                assert recorder.counters.replayed == left.count
                # The sidecars are the truth: the child may have died between a sidecar and its index row.
                records = stored(store, indexed=False)
                assert len(records) == n
                assert sorted(r.prompt or "" for r in records) == sorted(f"p{i}" for i in range(n))
                keys = sorted(r.idempotency_key or "" for r in records)
                assert keys == (sorted(f"k-{i}" for i in range(n)) if keyed else [""] * n)
                markers = list(store.blobs.list("idempotency/"))
                assert len(markers) == (n if keyed else 0)  # markers only for caller keys
                assert recorder.spool_status().count == 0
                recorder.close()
        finally:
            proc.kill()  # also when an assertion failed: never leave the child behind


_EXITING = """
import sys
import genstore

store = genstore.open_store(sys.argv[1])
for i in range(50):
    store.recorder.submit(operation_type="t", prompt=f"p{i}")
# no flush, no close: the interpreter's exit drains the queue
"""


def test_interpreter_exit_drains_the_queue(tmp_path: Path) -> None:
    root = tmp_path / "store"
    subprocess.run([sys.executable, "-c", _EXITING, str(root)], timeout=WAIT, check=True)
    with genstore.open_store(root) as store:
        assert len(stored(store)) == 50
        assert Spool(default_spool_dir(store.blobs)).status().count == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_fresh_recorder(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    recorder = rec_make()
    recorder.submit(operation_type="t", prompt="parent")
    assert recorder.flush(WAIT)
    parent_owner = recorder._spool.owner
    pid = os.fork()
    if pid == 0:  # the child: checks its state and leaves without running any cleanup
        fresh = recorder._thread is None and recorder._spool.owner != parent_owner
        os._exit(0 if fresh and recorder.counters == type(recorder.counters)() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert recorder._thread is not None and recorder._spool.owner == parent_owner


def test_a_job_completion_completes_the_started_operation(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    store, _ = rec_store
    started = store.start_operation(operation_type="text_to_video", prompt="p", job_id="j-1")
    recorder = rec_make()
    done = req({"operation_type": "text_to_video", "results": [b"video"], "job_id": "j-1"})
    recorder.submit_request(JobCompletion(job_id="j-1", fallback=done))
    recorder.submit_request(JobCompletion(job_id="j-2", fallback=done))  # nobody started j-2
    assert recorder.flush(WAIT)
    record = store.get_operation(started.operation_id)
    assert record.status is OperationStatus.SUCCEEDED and record.prompt == "p"
    assert [store.read_artifact(r) for r in record.results] == [b"video"]
    records = stored(store)
    assert len(records) == 2 and {r.job_id for r in records} == {"j-1"}
    assert recorder.counters.recorded == 2


def test_a_spooled_job_completion_replays_as_one(
    rec_store: tuple[Store, SwitchableBlobs], rec_make: Callable[..., Recorder]
) -> None:
    store, blobs = rec_store
    started = store.start_operation(operation_type="t", job_id="j-3")
    recorder = rec_make()
    blobs.down.set()
    done = req({"operation_type": "t", "results": [b"out"], "error": None})
    recorder.submit_request(JobCompletion(job_id="j-3", fallback=done))
    assert recorder.flush(WAIT) and recorder.counters.spooled == 1
    blobs.down.clear()
    deadline = time.monotonic() + WAIT
    while recorder.counters.replayed < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    record = store.get_operation(started.operation_id)
    assert record.status is OperationStatus.SUCCEEDED
    assert [store.read_artifact(r) for r in record.results] == [b"out"]
    assert len(stored(store)) == 1


@pytest.mark.parametrize(
    ("fields", "expected", "note"),
    [
        ({"parameters": {"x": float("nan")}}, {"x": "NaN"}, "NaN, Infinity"),
        (
            {"parameters": {"x": float("inf"), "y": 1e999}},
            {"x": "Infinity", "y": "Infinity"},
            "NaN",
        ),
        ({"parameters": {"deep": json.loads("[" * 300 + "]" * 300)}}, None, "nested deeper"),
        ({"prompt": "a \ud800 cat"}, None, "not valid Unicode"),
    ],
)
def test_content_json_or_utf8_cannot_hold_is_recorded_with_a_note(
    rec_store: tuple[Store, SwitchableBlobs],
    rec_make: Callable[..., Recorder],
    fields: dict[str, Any],
    expected: Any,
    note: str,
) -> None:
    store, _ = rec_store
    recorder = rec_make()
    recorder.submit(operation_type="t", **fields)
    assert recorder.flush(WAIT)
    (record,) = stored(store)
    assert recorder.counters.rejected == 0 and recorder.counters.recorded == 1
    assert any(note in n for n in record.notes), record.notes
    if expected is not None:
        assert record.parameters == expected
    if "prompt" in fields:
        assert record.prompt == "a \ufffd cat"


def test_the_direct_api_still_refuses_non_finite_numbers(
    rec_store: tuple[Store, SwitchableBlobs],
) -> None:
    store, _ = rec_store
    with pytest.raises(genstore.InvalidInput):
        store.save_complete_operation(operation_type="t", parameters={"x": float("nan")})


def test_a_slow_provider_never_holds_back_other_records(
    tmp_path: Path, file_server: FileServer
) -> None:
    """One result URL answering half its body then stalling: the other records are saved while
    its download runs, and it is saved when its own deadline ends it."""
    body = png_bytes(40, 40)
    slow = file_server.add("slow.png", body)
    file_server.stalls["slow.png"] = 4.0
    fast = file_server.add("fast.png", png_bytes(4, 4))
    with genstore.open_store(tmp_path / "store", download_deadline=2.5) as store:
        recorder = store.recorder
        recorder.submit(operation_type="t", prompt="slow", result_url=slow)
        for i in range(20):
            recorder.submit(operation_type="t", prompt=f"other{i}", result_url=fast)
        wait_until(lambda: len(stored(store, indexed=False)) >= 20, "the other records")
        prompts = {r.prompt for r in stored(store, indexed=False)}
        assert "slow" not in prompts and len(prompts) == 20  # not held back by the slow one
        assert recorder.flush(WAIT)
        (late,) = [r for r in stored(store) if r.prompt == "slow"]
        assert late.results == [] and "deadline" in (late.result_error or "")
        assert all(r.results for r in stored(store) if r.prompt != "slow")
        assert recorder.counters.recorded == 21 and recorder.counters.spooled == 0
