"""Inputs that once answered 500 (found by fuzzing): each now gets a 4xx, or a 503 in the one
error shape when the stored data itself is corrupt."""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import genstore
import httpx
import jwt
import pytest
from genstore_asgi.service import JWTAuthenticator, create_app
from helpers import free_port, png_bytes

from .service_harness import serve

SECRET = "regress-secret-" + "x" * 32
PNG = base64.b64encode(png_bytes()).decode()


def auth(sub: str = "user_r") -> dict[str, str]:
    token = jwt.encode({"sub": sub, "exp": int(time.time()) + 300}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def http(root: Path) -> Iterator[httpx.Client]:
    with genstore.open_store(root) as store:
        store.save_complete_operation(operation_type="text_to_image", prompt="p", user_id="user_r")
        app = create_app(store, auth=JWTAuthenticator(secret=SECRET), rate_limit="10000/minute")
        with serve(app, free_port()) as client:
            yield client


def body_with_metadata(metadata_json: str) -> str:
    return f'{{"prompt": "p", "imageData": "{PNG}", "metadata": {metadata_json}}}'


@pytest.mark.parametrize("depth", [100, 1_000, 100_000])
def test_deeply_nested_json_is_refused(http: httpx.Client, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    r = http.post("/api/images", content=body_with_metadata(f'{{"a": {nested}}}'), headers=auth())
    assert r.status_code == 400 and r.json()["success"] is False


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1" + "0" * 5000])
def test_numbers_json_cannot_hold_are_refused(http: httpx.Client, number: str) -> None:
    r = http.post("/api/images", content=body_with_metadata(f'{{"n": {number}}}'), headers=auth())
    assert r.status_code == 400


def test_a_big_integer_is_kept_and_listed(http: httpx.Client) -> None:
    big = "1" + "0" * 400
    created = http.post(
        "/api/images", content=body_with_metadata(f'{{"n": {big}}}'), headers=auth()
    )
    assert created.status_code == 201
    listed = http.get("/api/images", headers=auth())
    assert listed.status_code == 200 and listed.json()["data"][0]["metadata"]["n"] == int(big)


@pytest.mark.parametrize("page", [2**31, 2**63 - 1, 2**63, 2**64, 10**30, -(2**63), 0])
def test_page_numbers_past_any_offset_are_refused(http: httpx.Client, page: int) -> None:
    r = http.get("/api/images", params={"page": page}, headers=auth())
    assert r.status_code == 400 and "page" in r.json()["error"]


@pytest.mark.parametrize("limit", [2**63, 0, -1, 10**6])
def test_history_limits_out_of_range_are_refused(http: httpx.Client, limit: int) -> None:
    assert http.get("/api/history", params={"limit": limit}, headers=auth()).status_code == 400


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        _cursor("9999-12-31T23:59:59-14:00|20260101_01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        _cursor("0001-01-01T00:00:00+14:00|20260101_01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        _cursor("2020-01-01T00:00:00|20260101_01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        _cursor("2020-01-01T00:00:00+00:00|../../etc"),
        _cursor("not a time|x"),
        "%%%",
        "A" * 10_000,
    ],
)
def test_out_of_range_or_forged_cursors_are_refused(http: httpx.Client, cursor: str) -> None:
    r = http.get("/api/history", params={"cursor": cursor}, headers=auth())
    assert r.status_code == 400 and r.json()["error"] == "cursor is not one this store handed out"


ROW_READERS = [
    ("images", "GET", "/api/images", None),
    ("images", "GET", "/api/images/{id}", None),
    ("images", "GET", "/api/images/{id}/file", None),
    ("images", "DELETE", "/api/images/{id}", None),
    ("operations", "GET", "/api/history", None),
]


@pytest.mark.parametrize(("table", "method", "path", "body"), ROW_READERS)
def test_a_corrupt_catalog_row_is_503_not_a_crash(
    http: httpx.Client, root: Path, table: str, method: str, path: str, body: str | None
) -> None:
    created = http.post("/api/images", content=body_with_metadata("{}"), headers=auth())
    assert created.status_code == 201
    image_id = created.json()["data"]["image_id"]
    with sqlite3.connect(root / "catalog.sqlite3") as db:
        db.execute(f"UPDATE {table} SET record = ?", ('{"schema_version": 2, "oops": true}',))
    r = http.request(method, path.format(id=image_id), content=body, headers=auth())
    assert r.status_code == 503
    assert r.json() == {
        "success": False,
        "error": "stored data is unreadable: an operator must run genstore verify",
    }
    assert str(root) not in r.text


def test_a_status_change_rewrites_a_corrupt_image_row_from_its_record(
    http: httpx.Client, root: Path
) -> None:
    created = http.post("/api/images", content=body_with_metadata("{}"), headers=auth())
    image_id = created.json()["data"]["image_id"]
    with sqlite3.connect(root / "catalog.sqlite3") as db:
        db.execute("UPDATE images SET record = ?", ('{"schema_version": 2, "oops": true}',))
    path = f"/api/images/{image_id}"
    changed = http.patch(f"{path}/status", content='{"status": "printed"}', headers=auth())
    assert changed.status_code == 200 and changed.json()["data"]["status"] == "printed"
    assert http.get(path, headers=auth()).json()["data"]["status"] == "printed"
