"""What a journal replays after a crash is what the dead process would have recorded.

A crash is played in-process as in ``test_journal``: the hand-off builds each record (consuming its
bodies: a parsed request body is deleted, a result file handed to the recorder), the recorder never
saves it, then the journal's file is closed without its entries being settled. A second middleware
on the same store replays the journal; its records must equal those of a run without the crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import genstore
import pytest
from genstore_asgi import RecordingMiddleware
from genstore_asgi._capture import CapturedBody
from genstore_asgi._exchange import Exchange
from genstore_asgi._journal import Journal, entry, recover
from starlette.types import Message, Receive, Scope, Send

from asgi.hostile_service import png_for
from asgi.support import http_scope, request_messages
from asgi.test_journal import crash, exchange, plain, wal_files

PAD = "x" * 5000
"""Pads a request body past the tests' ``max_body_in_memory``: the tee spools it to a file."""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/api/png``: an image answer; ``/api/raise``: raises before answering; ``/api/boom``:
    answers 500, then raises (as Starlette's error middleware does); else a JSON answer."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    prompt = json.loads(body)["prompt"]
    path = scope["path"]
    if path.endswith("raise"):
        raise RuntimeError(f"no answer for {prompt}")
    status, kind, answer = 200, b"application/json", json.dumps({"prompt": prompt}).encode()
    if path.endswith("png"):
        kind, answer = b"image/png", png_for(prompt)
    elif path.endswith("boom"):
        status, kind, answer = 500, b"text/plain", b"Internal Server Error"
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", kind)]}
    )
    await send({"type": "http.response.body", "body": answer, "more_body": False})
    if status == 500:
        raise RuntimeError(f"boom {prompt}")


def middleware(store: genstore.Store, bodies: Path) -> RecordingMiddleware:
    """Bodies past 1 KiB are spooled by the tee into ``bodies``."""
    bodies.mkdir(exist_ok=True)
    return RecordingMiddleware(
        app,
        store=store,
        routes={"/api/*": "text_to_image"},
        max_body_in_memory=1024,
        spool_dir=str(bodies),
    )


async def post(server: RecordingMiddleware, path: str, prompt: str) -> None:
    body = json.dumps({"prompt": prompt, "pad": PAD}).encode()
    messages = iter(request_messages([body[:600], body[600:]]))

    async def receive() -> Message:
        return next(messages, {"type": "http.disconnect"})

    async def send(message: Message) -> None:
        pass

    scope = http_scope(path, headers=[("content-type", "application/json")])
    with contextlib.suppress(RuntimeError):  # what the server would log
        await server(scope, receive, send)


REQUESTS = [
    ("/api/gen", "gen"),
    ("/api/png", "png"),
    ("/api/boom", "boom"),
    ("/api/raise", "raise"),
]


def run(
    store: genstore.Store, bodies: Path, submit: Callable[..., None] | None = None
) -> RecordingMiddleware:
    """The ``REQUESTS`` through a fresh middleware on ``store``; ``submit`` replaces the recorder's
    ``submit_request`` (the record never reaches the store)."""
    server = middleware(store, bodies)
    server.handoff.start()
    assert server.handoff.wait(10)  # its own recovery is over before the requests
    if submit is not None:
        store.recorder.submit_request = submit  # type: ignore[method-assign]

    async def burst() -> None:
        for path, prompt in REQUESTS:
            await post(server, path, prompt)

    asyncio.run(burst())
    assert server.handoff.wait(30)
    return server


def contents(store: genstore.Store) -> dict[str | None, tuple[Any, ...]]:
    """What each record says, but its id and times."""
    return {
        record.prompt: (
            record.status,
            record.error,
            record.parameters,
            [store.read_artifact(ref) for ref in record.results],
            record.request.status_code if record.request else None,
        )
        for record in store.iter_operations()
    }


@pytest.fixture
def expected(tmp_path: Path) -> dict[str | None, tuple[Any, ...]]:
    """The records of ``REQUESTS`` when nothing crashes."""
    with genstore.open_store(tmp_path / "calm") as store:
        assert run(store, tmp_path / "calm-bodies").flush(30)
        found = contents(store)
    assert found["png"][3] == [png_for("png")]
    assert found["boom"][1] == "RuntimeError: boom boom"
    return found


def vanish(request: Any, owned_paths: Sequence[str] = (), **_: Any) -> None:
    """A recorder dying while it spools: the files handed over are gone, the record not written."""
    for path in owned_paths:
        os.unlink(path)


@pytest.mark.parametrize("submit", [lambda *a, **k: None, vanish], ids=["queued", "spooling"])
def test_a_replay_records_what_the_dead_process_would_have(
    tmp_path: Path, expected: dict[str | None, tuple[Any, ...]], submit: Callable[..., None]
) -> None:
    root, bodies = tmp_path / "store", tmp_path / "bodies"
    with genstore.open_store(root) as dying:
        journal = run(dying, bodies, submit).handoff._journal
        assert journal is not None
        crash(journal)
        assert list(dying.iter_operations()) == []

    with genstore.open_store(root) as restarted:
        server = middleware(restarted, bodies)
        server.handoff.start()  # what lifespan.startup does: the replay, with no request
        assert server.flush(30)
        assert contents(restarted) == expected
    assert list(bodies.iterdir()) == []  # every body the journal held went with its entry


# -- damaged journals ---------------------------------------------------------------------------


def test_an_entry_that_decodes_badly_loses_only_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for name, value in (("a", 2**63), ("b", 10**15), ("c", -1)):
        journal = Journal(tmp_path)
        damaged = list(entry(exchange(0), f"{name}:1".encode()))
        damaged[10] = value  # the query string: an int where bytes belong
        written = tuple(damaged)
        with journal._lock:  # written as the journal writes an entry, CRC and all
            journal._write(written)
        journal.append(exchange(1))
        crash(journal)
    (tmp_path / "garbage.wal").write_bytes(b"\xff" * 100)
    with caplog.at_level(logging.ERROR):
        recovered = list(recover(tmp_path, plain))
    assert sorted(len(r.exchanges) for r in recovered) == [1, 1, 1]
    assert caplog.text.count("cannot be read") == 3
    assert "garbage.wal" in caplog.text


def test_a_recovery_never_takes_a_file_being_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process starting (and recovering) between a new file's creation and its lock."""
    real = fcntl.flock
    raced: list[int] = []

    def flock(fd: int, operation: int) -> None:
        if not raced:
            raced.append(fd)
            assert list(recover(tmp_path, plain)) == []
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    journal = Journal(tmp_path)
    monkeypatch.setattr(fcntl, "flock", real)
    journal.append(exchange(1))
    crash(journal)
    (recovered,) = recover(tmp_path, plain)
    assert len(recovered.exchanges) == 1
    assert wal_files(tmp_path) == [recovered.path]


def test_a_settled_entry_is_not_replayed_even_after_a_crash_during_the_replay(
    tmp_path: Path,
) -> None:
    bodies, folder = tmp_path / "bodies", tmp_path / "journal"
    bodies.mkdir()
    items = []
    for n in range(4):
        spooled = bodies / f"genstore-asgi-{n}.body"
        spooled.write_bytes(json.dumps({"prompt": f"p{n}", "pad": PAD}).encode())
        body = CapturedBody(path=str(spooled), size=spooled.stat().st_size, complete=True)
        items.append(exchange(n, request_body=body))
    journal = Journal(folder)
    for item in items:
        journal.append(item)
    for item in items:
        item.request_body.discard()  # what building its record does: the tee's file goes
    assert items[0].settle is not None
    items[0].settle()  # saved or spooled: no process may replay it
    crash(journal)

    def prompts(replayed: list[Exchange]) -> list[str]:
        return [json.loads(e.request_body.read())["prompt"] for e in replayed]

    (first,) = recover(folder, plain)
    assert prompts(first.exchanges) == ["p1", "p2", "p3"]
    for replayed in first.exchanges:
        replayed.request_body.discard()  # the replay builds the records
    assert first.exchanges[0].settle is not None
    first.exchanges[0].settle()
    os.close(first.fd)  # the recovering process dies too

    (second,) = recover(folder, plain)
    assert prompts(second.exchanges) == ["p2", "p3"]
    for replayed in second.exchanges:
        replayed.request_body.discard()
        assert replayed.settle is not None
        replayed.settle()
    assert list(bodies.iterdir()) == []
    assert wal_files(folder) == []
