"""The write-ahead journal: each answered request is on disk before its last chunk goes out, is
recovered once after a crash, never twice, and leaves nothing behind once recorded.

A crash is played in-process by closing a journal's file without settling its entries: that drops
its ``flock`` exactly as a process's death does. The SIGKILL of a real server under a burst is in
``test_reliability``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import stat
from collections import Counter
from pathlib import Path
from typing import Any

import genstore
import msgpack
import pytest
from genstore_asgi import RecordingMiddleware, _journal
from genstore_asgi._capture import CapturedBody
from genstore_asgi._exchange import Exchange
from genstore_asgi._journal import Journal, decode, entry, recover
from genstore_asgi._routes import RouteSpec
from genstore_asgi._stream import StreamEvents
from hypothesis import given
from hypothesis import strategies as st
from starlette.types import Message, Receive, Scope, Send

from asgi.support import http_scope, request_messages, small_tmpfs

ROUTE = "/api/generate/text-to-image"
SPEC = RouteSpec("text_to_image", frozenset({"POST"}), pattern=ROUTE)


def plain(method: str, path: str, operation_type: str, pattern: str) -> RouteSpec:
    return RouteSpec(operation_type, frozenset({method}), pattern=pattern)


def exchange(n: int = 0, **changes: Any) -> Exchange:
    body = json.dumps({"prompt": f"p{n}"}).encode()
    values: dict[str, Any] = {
        "spec": SPEC,
        "method": "POST",
        "path": ROUTE,
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "root_path": "",
        "query_string": b"",
        "request_headers": [(b"content-type", b"application/json")],
        "request_body": CapturedBody(chunks=[body], size=len(body), complete=True),
        "created_ns": 1_764_434_343_123_456_789 + n,
        "status_code": 200,
        "response_type": "application/json",
    }
    return Exchange(**{**values, **changes})


def crash(journal: Journal) -> None:
    """What a process's death does to its journal: the file stays, its lock goes."""
    journal.close()


def wal_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.wal"))


def holds_entries(path: Path) -> bool:
    """Whether a journal file holds entries (an empty one is all zeros)."""
    return any(path.read_bytes())


# -- entries ------------------------------------------------------------------------------------

body_values = st.builds(
    CapturedBody,
    chunks=st.lists(st.binary(max_size=64), max_size=3),
    path=st.none() | st.text(min_size=1, max_size=20),
    size=st.integers(0, 2**40),
    complete=st.booleans(),
    overflow=st.booleans(),
)


@given(
    headers=st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=40)), max_size=6),
    request=body_values,
    response=st.none() | body_values,
    stream=st.none()
    | st.builds(
        StreamEvents,
        kind=st.sampled_from(["sse", "ndjson"]),
        events=st.lists(st.binary(max_size=40), max_size=3),
        complete=st.booleans(),
        count=st.integers(0, 10**6),
    ),
    text=st.text(max_size=40),
    status=st.none() | st.integers(100, 599),
    duration=st.none() | st.floats(allow_nan=False),
    user=st.none() | st.text(max_size=20),
    query=st.binary(max_size=40),
    ns=st.integers(0, 2**62),
)
def test_an_entry_reads_back_as_the_exchange_it_was(
    headers: list[tuple[bytes, bytes]],
    request: CapturedBody,
    response: CapturedBody | None,
    stream: StreamEvents | None,
    text: str,
    status: int | None,
    duration: float | None,
    user: str | None,
    query: bytes,
    ns: int,
) -> None:
    original = exchange(
        request_headers=headers,
        request_body=request,
        response_body=response,
        response_stream=stream,
        error=text or None,
        status_code=status,
        duration_ms=duration,
        user_id=user,
        query_string=query,
        created_ns=ns,
        path="/" + text,
    )
    packed = msgpack.packb(entry(original, b"seed"))
    back = decode(packed, plain)
    assert back.seed == b"seed"
    kept = [(k, v) for k, v in headers if k in (b"content-type", b"idempotency-key")]
    assert back.request_headers == kept  # no other header (credentials) is read back
    for name in (
        "method",
        "path",
        "scheme",
        "server",
        "root_path",
        "query_string",
        "request_body",
        "created_ns",
        "status_code",
        "response_type",
        "response_body",
        "response_stream",
        "error",
        "duration_ms",
        "user_id",
    ):
        assert getattr(back, name) == getattr(original, name), name


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xc1", msgpack.packb([2, "future format"]), msgpack.packb("x")],
)
def test_a_payload_that_is_no_entry_is_a_value_error(payload: bytes) -> None:
    with pytest.raises((ValueError, TypeError, msgpack.UnpackException)):
        decode(payload, plain)


# -- the file's life ----------------------------------------------------------------------------


def test_the_journal_is_private_and_empties_once_every_entry_is_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path / "journal")
    exchanges = [exchange(n) for n in range(3)]
    for item in exchanges:
        journal.append(item)
    (path,) = wal_files(tmp_path / "journal")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "journal").stat().st_mode) == 0o700
    assert holds_entries(path)
    for item in exchanges[:2]:
        assert item.settle is not None
        item.settle()
        item.settle()  # twice is once
    monkeypatch.setattr(_journal, "TIDY_AFTER", 0.0)
    assert journal.tidy() == 0.0  # one entry still waits: kept, and looked at again later
    assert exchanges[2].settle is not None
    exchanges[2].settle()
    assert holds_entries(path)  # small: emptied by the idle worker's tidy, not at once
    assert journal.tidy() is None
    assert not holds_entries(path)
    assert journal.tidy() is None  # nothing to look at until the next entry
    journal.close()


def test_a_settled_file_past_truncate_at_is_emptied_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_journal, "TRUNCATE_AT", 1)
    journal = Journal(tmp_path)
    item = exchange()
    journal.append(item)
    (path,) = wal_files(tmp_path)
    assert item.settle is not None
    item.settle()
    assert not holds_entries(path)
    journal.close()


def test_a_busy_journal_rotates_and_deletes_the_old_file_once_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_journal, "ROTATE_AT", 1)
    journal = Journal(tmp_path)
    first, second, third = exchange(1), exchange(2), exchange(3)
    journal.append(first)
    journal.append(second)
    (old,) = wal_files(tmp_path)
    assert first.settle is not None and second.settle is not None
    first.settle()  # past ROTATE_AT with an entry outstanding: new entries go to a new file
    journal.append(third)
    assert len(wal_files(tmp_path)) == 2
    second.settle()
    assert old not in wal_files(tmp_path)
    crash(journal)
    (left,) = recover(tmp_path, plain)
    assert [e.seed for e in left.exchanges] == [third.seed]


def test_a_live_journal_is_never_recovered_and_a_dead_one_once(tmp_path: Path) -> None:
    live = Journal(tmp_path)
    live.append(exchange(1))
    dead = Journal(tmp_path)
    written = [exchange(n) for n in range(2, 5)]
    for item in written:
        dead.append(item)
    crash(dead)
    (recovered,) = recover(tmp_path, plain)
    assert [e.seed for e in recovered.exchanges] == [e.seed for e in written]
    assert [e.operation_id for e in recovered.exchanges] == [e.operation_id for e in written]
    assert list(recover(tmp_path, plain)) == []  # held by the recovery: nobody takes it twice
    for item in recovered.exchanges:
        assert item.settle is not None
        item.settle()
    assert len(wal_files(tmp_path)) == 1  # the dead file is gone, the live one stays
    live.close()


def test_a_torn_last_frame_keeps_the_entries_before_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(tmp_path)
    sizes = []
    for n in range(3):
        journal.append(exchange(n))
        sizes.append(journal._current.size)
    crash(journal)
    (path,) = wal_files(tmp_path)
    with path.open("r+b") as f:  # the last copy cut short: its payload's tail never written
        f.seek(sizes[2] - 5)
        f.write(bytes(5))
    with caplog.at_level(logging.ERROR):
        (recovered,) = recover(tmp_path, plain)
    assert len(recovered.exchanges) == 2
    assert f"torn at byte {sizes[1]}" in caplog.text


def test_entries_past_the_end_marker_are_never_read(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    old = [exchange(n) for n in range(3)]
    for item in old:
        journal.append(item)
    for item in old:
        assert item.settle is not None
        item.settle()
    journal.tidy(at_once=True)  # emptied: the end marker is back at the start
    newer = exchange(9)
    journal.append(newer)  # shorter than the three before it, whose bytes lie past it
    crash(journal)
    (recovered,) = recover(tmp_path, plain)
    assert [e.seed for e in recovered.exchanges] == [newer.seed]


def test_an_entry_that_does_not_fit_starts_a_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_journal, "FILE_SIZE", 8192)
    journal = Journal(tmp_path)
    small, big = exchange(1), exchange(2, query_string=b"q" * 7800)
    journal.append(small)
    journal.append(big)  # no room after small, which is not settled: a second file
    assert len(wal_files(tmp_path)) == 2
    huge = exchange(3, query_string=b"q" * 9000)
    journal.append(huge)  # larger than a file: not journaled, said once
    assert huge.seed is None
    crash(journal)
    recovered = list(recover(tmp_path, plain))
    assert sorted(e.seed or b"" for r in recovered for e in r.exchanges) == sorted(
        [small.seed or b"", big.seed or b""]
    )


# -- through the middleware ---------------------------------------------------------------------


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    while (await receive()).get("more_body"):
        pass
    status = 500 if scope["path"].endswith("fail") else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b'{"ok": true}', "more_body": False})


def middleware(store: genstore.Store, **options: Any) -> RecordingMiddleware:
    return RecordingMiddleware(answer, store=store, routes={"/api/*": "text_to_image"}, **options)


def journal_folder(store: genstore.Store) -> Path:
    return store.recorder.spool_dir / "journal"


async def post(app: RecordingMiddleware, path: str, prompt: str, on_last: Any = None) -> None:
    """One request; ``on_last()`` runs when the response's last chunk reaches the server."""
    body = json.dumps({"prompt": prompt}).encode()
    messages = iter(request_messages([body]))

    async def receive() -> Message:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: Message) -> None:
        last = message["type"] == "http.response.body" and not message.get("more_body")
        if last and on_last is not None:
            on_last()

    headers = [("content-type", "application/json"), ("authorization", "Bearer sk-secret-1")]
    await app(http_scope(path, headers=headers), receive, send)


@pytest.mark.parametrize("path", ["/api/generate", "/api/fail"])
def test_the_exchange_is_on_disk_before_the_last_chunk_goes_out(
    store: genstore.Store, path: str
) -> None:
    app = middleware(store)
    seen: list[bytes] = []

    def on_last() -> None:
        seen.extend(p.read_bytes() for p in wal_files(journal_folder(store)))

    asyncio.run(post(app, path, "on disk", on_last))
    assert len(seen) == 1 and b"on disk" in seen[0]
    assert b"sk-secret-1" not in seen[0]  # the authorization header is not journaled
    assert app.flush(30)
    (record,) = store.iter_operations()
    assert record.prompt == "on disk"
    # Every record saved: flush emptied the journal at once (the raw copy is gone).
    (file,) = wal_files(journal_folder(store))
    assert not holds_entries(file)


def test_a_full_disk_refuses_the_journal_up_front_and_loses_no_record(
    store: genstore.Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(OSError, match="No space"):
        Journal(journal_folder(store))
    assert wal_files(journal_folder(store)) == []  # nothing half-made left behind
    app = middleware(store)
    with caplog.at_level(logging.ERROR):
        for n in range(3):
            asyncio.run(post(app, "/api/generate", f"full-{n}"))
    assert app.flush(30)
    assert sorted(str(r.prompt) for r in store.iter_operations()) == ["full-0", "full-1", "full-2"]
    assert caplog.text.count("no write-ahead journal") == 1


def test_a_disk_too_small_for_a_journal_file_refuses_it_when_it_is_made(tmp_path: Path) -> None:
    """A real full disk (a 4 MiB tmpfs under an 8 MiB file): the refusal comes when the file is
    made, never later as a SIGBUS in the middle of a request, and nothing is left behind."""
    with small_tmpfs(tmp_path / "disk", "4m") as disk:
        with pytest.raises(OSError, match="No space left") as refused:
            Journal(disk / "journal")
        assert refused.value.errno == errno.ENOSPC
        assert list((disk / "journal").iterdir()) == []


def test_no_write_ahead_writes_no_journal(store: genstore.Store) -> None:
    app = middleware(store, write_ahead=False)
    asyncio.run(post(app, "/api/generate", "p"))
    assert app.flush(30)
    assert not journal_folder(store).exists()
    assert [r.prompt for r in store.iter_operations()] == ["p"]


@pytest.fixture
def unsettled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entries are never settled: a crash right after each record was saved."""
    monkeypatch.setattr(Journal, "settled", lambda self, *settled: None)


def test_a_crash_after_saving_replays_each_entry_without_a_second_record(
    store: genstore.Store, unsettled: None
) -> None:
    first = middleware(store)

    async def burst() -> None:
        for n in range(5):
            await post(first, "/api/generate", f"saved-{n}")

    asyncio.run(burst())
    assert first.flush(30)
    before = {r.prompt: r.operation_id for r in store.iter_operations()}
    assert len(before) == 5
    journal = first.handoff._journal
    assert journal is not None
    crash(journal)

    second = middleware(store)
    second.handoff.start()  # what lifespan.startup does: recovery, with no request at all
    assert second.flush(30)
    after = Counter(r.prompt for r in store.iter_operations())
    assert after == Counter(list(before))  # nothing added: each replay found its record by id
    assert {r.prompt: r.operation_id for r in store.iter_operations()} == before
    live = second.handoff._journal
    assert live is not None
    assert wal_files(journal_folder(store)) == [live._current.path]  # the dead file is gone


def test_a_crash_before_saving_records_every_answered_request_on_restart(
    tmp_path: Path,
) -> None:
    root = tmp_path / "store"
    with genstore.open_store(root) as dying:
        first = middleware(dying)
        first.handoff.start()
        # Its recovery finished before the "crash": else it would recover its own dead file
        # (only a same-process crash can make that race; a real death ends the process).
        assert first.handoff.wait(10)
        journal = first.handoff._journal
        assert journal is not None

        # The hand-off thread never gets the exchanges: the process "dies" with them queued.
        first.handoff._record = lambda exchange: None  # type: ignore[method-assign]

        async def burst() -> None:
            for n in range(4):
                await post(first, "/api/generate", f"lost-{n}")
            await post(first, "/api/fail", "failed")

        asyncio.run(burst())
        crash(journal)
        assert list(dying.iter_operations()) == []

    with genstore.open_store(root) as restarted:
        second = middleware(restarted)
        second.handoff.start()
        assert second.flush(30)
        records = {str(r.prompt): r for r in restarted.iter_operations()}
    assert sorted(records) == ["failed", *(f"lost-{n}" for n in range(4))]
    assert records["failed"].status == "failed"
    assert records["lost-0"].request is not None
    assert records["lost-0"].request.status_code == 200


def test_a_forked_child_journals_in_its_own_file_and_never_holds_the_parents(
    store: genstore.Store,
) -> None:
    app = middleware(store)
    asyncio.run(post(app, "/api/generate", "parent"))  # the parent's journal is open
    parent = app.handoff._journal
    assert parent is not None
    pid = os.fork()
    if pid == 0:  # the child: one request, then a death without any clean-up
        code = 1
        try:
            app.handoff._record = lambda exchange: None  # type: ignore[method-assign]
            asyncio.run(post(app, "/api/generate", "child"))
            child = app.handoff._journal
            code = 0 if child is not None and child is not parent else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert app.flush(30)
    # The child is dead: its file is recovered; the parent's stays locked by the parent alone.
    (recovered,) = recover(journal_folder(store), plain)
    assert recovered.path.name.startswith(f"{pid}-")
    assert [json.loads(e.request_body.read())["prompt"] for e in recovered.exchanges] == ["child"]
