"""Helpers for the middleware tests: driving an ASGI app by hand, and a spy recorder.

``SpyStore``/``SpyRecorder`` is a test double of the store's recorder interface (``submit``,
``flush``): it keeps what the middleware submitted, reading spooled files as they are handed over
and deleting them as the real recorder does. It is used only where the test is about what the
middleware captures (exact bytes, memory); tests about what ends up stored use a real store.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from genstore._recording.items import Recordable
from genstore._save_request import JobCompletion
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def http_scope(
    path: str,
    *,
    method: str = "POST",
    headers: Iterable[tuple[str, str]] = (),
    query: bytes = b"",
) -> Scope:
    """A minimal HTTP scope as a server would build it (loopback client and server)."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def request_messages(chunks: Sequence[bytes]) -> list[Message]:
    """``http.request`` messages carrying ``chunks`` (the last one with ``more_body`` False)."""
    if not chunks:
        return [{"type": "http.request", "body": b"", "more_body": False}]
    return [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]


class Client:
    """Feeds ``messages`` to an app's ``receive`` (then ``http.disconnect``); keeps what it sends."""

    def __init__(self, messages: Iterable[Message]) -> None:
        self._messages = iter(messages)
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return next(self._messages, {"type": "http.disconnect"})

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        for message in self.sent:
            if message["type"] == "http.response.start":
                status: int = message["status"]
                return status
        return None

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def call(app: ASGIApp, scope: Scope, messages: Iterable[Message]) -> Client:
    """Run one request through ``app``; the returned client holds the response messages."""
    client = Client(messages)
    await app(scope, client.receive, client.send)
    return client


def cut(data: bytes, sizes: Sequence[int]) -> list[bytes]:
    """``data`` split into chunks of ``sizes`` (cycled; each at least 1 byte, so it ends)."""
    if not sizes or min(sizes) < 1:
        raise ValueError("chunk sizes must be positive")
    chunks: list[bytes] = []
    position = 0
    i = 0
    while position < len(data):
        size = sizes[i % len(sizes)]
        chunks.append(data[position : position + size])
        position += size
        i += 1
    return chunks


def multipart(
    fields: Iterable[tuple[str, str]], files: Iterable[tuple[str, str, bytes, str]]
) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type: ``files`` are (field, name, data, type)."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
            + value.encode()
            + b"\r\n"
        )
    for name, filename, data, content_type in files:
        head = (
            f"--{boundary}\r\nContent-Disposition: form-data; "
            f'name="{name}"; filename="{filename}"\r\nContent-Type: {content_type}\r\n\r\n'
        )
        parts.append(head.encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@dataclass
class Submitted:
    """One record as the middleware submitted it, with its inputs and result read back."""

    kwargs: dict[str, Any]
    owned: list[str]
    inputs: list[bytes]
    input_kinds: list[str]
    """``bytes`` or ``path`` for each input: how it was handed over."""
    result: bytes | None


@dataclass
class SpyRecorder:
    """Test double of ``store.recorder`` (see the module docstring)."""

    submitted: list[Submitted] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    read_files: bool = True
    """False: hash spooled files in chunks instead of reading them (memory tests)."""
    hashes: list[str] = field(default_factory=list)
    completions: int = 0
    """How many submissions were job completions."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _read(self, source: Any) -> bytes:
        if isinstance(source, bytes):
            return source
        if not self.read_files:
            digest = hashlib.sha256()
            with open(source, "rb") as f:
                while block := f.read(256 * 1024):
                    digest.update(block)
            self.hashes.append(digest.hexdigest())
            return b""
        with open(source, "rb") as f:
            return f.read()

    def submit(self, owned_paths: Sequence[str | os.PathLike[str]] = (), **kwargs: Any) -> None:
        owned = [os.fspath(p) for p in owned_paths]
        images = list(kwargs.get("input_images", ()))
        result = kwargs.get("result")
        entry = Submitted(
            kwargs=kwargs,
            owned=owned,
            inputs=[self._read(image) for image in images],
            input_kinds=["bytes" if isinstance(i, bytes) else "path" for i in images],
            result=None if result is None else self._read(result),
        )
        for path in owned:
            os.unlink(path)
        with self.lock:
            self.submitted.append(entry)

    def submit_request(
        self,
        request: Recordable,
        owned_paths: Sequence[str | os.PathLike[str]] = (),
        *,
        settled: Callable[[], None] | None = None,
    ) -> None:
        """As the real recorder: takes the request whole (its set fields are kept as kwargs; a
        job's completion as its fallback with its job id, counted in ``completions``). It has no
        spool folder, so the middleware journals nothing and ``settled`` is never given."""
        assert settled is None
        if isinstance(request, JobCompletion):
            request = dataclasses.replace(request.fallback, job_id=request.job_id)
            self.completions += 1
        values = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
        self.submit(owned_paths, **{k: v for k, v in values.items() if v not in (None, ())})

    def reject(self, reason: Exception, owned_paths: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.rejected.append(str(reason))
        for path in owned_paths:
            os.unlink(path)

    def flush(self, timeout: float | None = None) -> bool:
        return True


@dataclass
class SpyStore:
    """A store whose only part is a ``SpyRecorder``."""

    recorder: SpyRecorder = field(default_factory=SpyRecorder)


async def app_reading_everything(scope: Scope, receive: Receive, send: Send) -> None:
    """A raw ASGI app that keeps every message it received (in ``scope['state']``) and answers."""
    received: list[Message] = scope["state"].setdefault("received", [])
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b'{"ok": true}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(app: ASGIApp) -> Iterator[str]:
    """uvicorn serving ``app`` on 127.0.0.1 (a free port) in a thread; yields its base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:  # uvicorn offers no event for this; bounded by the deadline
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        (sock,) = server.servers[0].sockets
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass (for state in another
    process or a store, which offers no event); its last answer."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@contextmanager
def small_tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``16m``) mounted on ``folder`` (made); the test is skipped with the
    reason where ``mount`` is refused (it needs root)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() or 'refused'}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)
