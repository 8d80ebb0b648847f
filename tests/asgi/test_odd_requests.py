"""Requests whose content genstore cannot keep as sent, through a real uvicorn on 127.0.0.1.

A lone surrogate in the prompt, a ``Host: [::1`` header, JSON with ``NaN``, ``Infinity``, ``1e999``
or 300-deep nesting: each is answered 200 by the app and recorded with what could be read plus a
note, on its own; the healthy records around them are saved straight away, none diverted to the
spool (once, 121 of 196 were, and the odd ones stayed in the spool for ever or were silently not
recorded). On local files with SQLite, and on S3 (moto) with PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import genstore
import httpx
import pytest
from genstore import OperationRecord, RecorderCounters
from genstore_asgi import RecordingMiddleware
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from asgi.support import serving

ROUTE = "/api/generate/text-to-image"
WAIT = 30.0
JSON = {"content-type": "application/json"}


async def generate(request: Request) -> JSONResponse:
    body = await request.json()  # the app itself takes NaN, Infinity, 1e999 and deep nesting
    return JSONResponse({"success": True, "images": [], "steps": body.get("steps")})


@pytest.fixture
def store(backend_url: str) -> Iterator[genstore.Store]:
    with genstore.open_store(backend_url) as opened:
        yield opened


@dataclass
class Served:
    """The recorded app, served by uvicorn, and a client of it."""

    app: RecordingMiddleware
    http: httpx.Client

    def settle(self, store: genstore.Store) -> RecorderCounters:
        """Wait until every request is recorded (or spooled); the recorder's counters."""
        assert self.app.flush(WAIT) and store.recorder.flush(WAIT)
        return store.recorder.counters


@pytest.fixture
def served(store: genstore.Store) -> Iterator[Served]:
    app = RecordingMiddleware(
        Starlette(routes=[Route(ROUTE, generate, methods=["POST"])]),
        store=store,
        routes={ROUTE: "text_to_image"},
    )
    with serving(app) as url, httpx.Client(base_url=url, timeout=WAIT) as http:
        yield Served(app, http)


def by_prompt(store: genstore.Store) -> dict[str | None, OperationRecord]:
    records = list(store.iter_operations())
    found = {record.prompt: record for record in records}
    assert len(found) == len(records), "a prompt was recorded twice"
    return found


def test_a_lone_surrogate_and_a_broken_host_are_recorded_alone_and_divert_no_one(
    store: genstore.Store, served: Served
) -> None:
    client = served.http
    statuses = []
    for i in range(196):
        statuses.append(client.post(ROUTE, json={"prompt": f"ok-{i}"}).status_code)
        if i == 60:  # JSON's escape: valid JSON text, not valid Unicode
            body = b'{"prompt": "a \\ud800 cat"}'
            statuses.append(client.post(ROUTE, content=body, headers=JSON).status_code)
        if i == 120:
            odd_host = {"host": "[::1"}
            statuses.append(
                client.post(ROUTE, json={"prompt": "host"}, headers=odd_host).status_code
            )
    assert statuses == [200] * 198
    counters = served.settle(store)
    assert (counters.recorded, counters.spooled, counters.quarantined) == (198, 0, 0)
    assert (counters.dropped, counters.rejected) == (0, 0)
    records = by_prompt(store)
    assert set(records) == {*(f"ok-{i}" for i in range(196)), "a \ufffd cat", "host"}
    assert any("not valid Unicode" in note for note in records["a \ufffd cat"].notes)


ODD_JSON = {
    "nan": b'{"prompt": "nan", "x": NaN, "steps": 4}',
    "infinity": b'{"prompt": "infinity", "x": -Infinity, "steps": 4}',
    "1e999": b'{"prompt": "1e999", "x": 1e999, "steps": 4}',
    "deep": b'{"prompt": "deep", "x": ' + b"[" * 300 + b"]" * 300 + b', "steps": 4}',
}


def test_json_a_record_cannot_hold_is_recorded_with_the_fields_read_and_a_note(
    store: genstore.Store, served: Served
) -> None:
    for body in ODD_JSON.values():
        assert served.http.post(ROUTE, content=body, headers=JSON).status_code == 200
    assert served.settle(store).rejected == 0
    records = by_prompt(store)
    assert set(records) == set(ODD_JSON)  # none silently left unrecorded
    notes = {"nan": "NaN", "infinity": "Infinity", "1e999": "Infinity", "deep": "nested deeper"}
    kept: dict[str, Any] = {}
    for prompt, note in notes.items():
        record = records[prompt]
        assert isinstance(record.parameters, dict)
        assert record.parameters["steps"] == 4, record.parameters  # the readable fields are kept
        assert any(note in n for n in record.notes), (prompt, record.notes)
        json.dumps(record.parameters, allow_nan=False)  # what was kept is strict JSON
        kept[prompt] = record.parameters["x"]
    assert (kept["nan"], kept["infinity"], kept["1e999"]) == ("NaN", "-Infinity", "Infinity")
