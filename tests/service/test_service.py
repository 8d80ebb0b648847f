"""The reference images service: the seed's REST API, auth, rate limit, validation, health, gallery."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import genstore
import httpx
import jwt
import pytest
from genstore_asgi.service import JWTAuthenticator, create_app
from helpers import free_port, png_bytes
from starlette.applications import Starlette

from . import service_harness

SECRET = "test-secret-" + "x" * 32


def token(sub: str = "user_2ta6NRH0kZxG51Gcn6gCaVzJQPe", ttl: int = 300) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + ttl}, SECRET, algorithm="HS256")


def auth(sub: str = "user_2ta6NRH0kZxG51Gcn6gCaVzJQPe") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub)}"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[genstore.Store]:
    with genstore.open_store(tmp_path / "data", max_image_bytes=200_000) as s:
        yield s


@contextmanager
def serve(app: Starlette) -> Iterator[httpx.Client]:
    """The app in a real uvicorn on 127.0.0.1, and an httpx client for it."""
    with service_harness.serve(app, free_port()) as http:
        yield http


@pytest.fixture
def client(store: genstore.Store) -> Iterator[httpx.Client]:
    app = create_app(store, auth=JWTAuthenticator(secret=SECRET), rate_limit=1000)
    with serve(app) as c:
        yield c


def b64_png(w: int = 12, h: int = 8) -> str:
    return base64.b64encode(png_bytes(w, h)).decode()


def test_create_list_get_status_delete(client: httpx.Client) -> None:
    body = {
        "prompt": "developer",
        "imageData": b64_png(),
        "metadata": {"model": "stability-ai", "steps": 30},
    }
    created = client.post("/api/images", json=body, headers=auth())
    assert created.status_code == 201
    data = created.json()["data"]
    assert data["user_id"] == "user_2ta6NRH0kZxG51Gcn6gCaVzJQPe"
    assert data["status"] == "generated" and data["prompt"] == "developer"
    assert (data["width"], data["height"]) == (12, 8)
    assert data["metadata"]["model"] == "stability-ai"
    image_id = data["image_id"]

    png = client.get(data["image_url"], headers=auth())
    assert png.status_code == 200 and png.content == png_bytes(12, 8)

    listed = client.get("/api/images?page=1&limit=10", headers=auth()).json()
    assert [i["image_id"] for i in listed["data"]] == [image_id]
    assert listed["pagination"] == {"page": 1, "limit": 10, "total": 1, "pages": 1}

    patched = client.patch(
        f"/api/images/{image_id}/status", json={"status": "printed"}, headers=auth()
    )
    assert patched.status_code == 200 and patched.json()["data"]["status"] == "printed"
    assert client.get("/api/images?status=generated", headers=auth()).json()["data"] == []
    assert client.get(f"/api/images/{image_id}", headers=auth()).json()["data"]["status"] == (
        "printed"
    )

    assert client.delete(f"/api/images/{image_id}", headers=auth()).status_code == 200
    assert client.get(f"/api/images/{image_id}", headers=auth()).status_code == 404


def test_a_user_never_reaches_another_users_image(client: httpx.Client) -> None:
    created = client.post(
        "/api/images", json={"prompt": "p", "imageData": b64_png()}, headers=auth("user_a")
    ).json()["data"]
    other = auth("user_b")
    assert client.get(f"/api/images/{created['image_id']}", headers=other).status_code == 404
    assert client.delete(f"/api/images/{created['image_id']}", headers=other).status_code == 404
    assert client.get(f"/api/images/{created['image_id']}/file", headers=other).status_code == 404
    assert client.get("/api/images", headers=other).json()["pagination"]["total"] == 0


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"Authorization": "Basic abc"}, "Bearer"),
        ({"Authorization": "Bearer not.a.jwt"}, "invalid"),
        ({"Authorization": "Bearer " + token(ttl=-60)}, "expired"),
        (
            {
                "Authorization": "Bearer "
                + jwt.encode(
                    {"sub": "u", "exp": int(time.time()) + 60},
                    "wrong-secret-" + "y" * 32,
                    algorithm="HS256",
                )
            },
            "invalid",
        ),
    ],
)
def test_requests_without_a_valid_token_get_401(
    client: httpx.Client, headers: dict[str, str], reason: str
) -> None:
    r = client.get("/api/images", headers=headers)
    assert r.status_code == 401
    assert reason in r.json()["error"]
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"prompt": "p"}, 400),
        ({"imageData": b64_png()}, 400),
        ({"prompt": "p", "imageData": "%%% not base64"}, 400),
        ({"prompt": "p", "imageData": base64.b64encode(b"\xff\xd8\xff jpeg").decode()}, 400),
        ({"prompt": "p", "imageData": "A" * 300_000}, 413),
        ({"prompt": 12, "imageData": b64_png()}, 400),
        ({"prompt": "p", "imageData": b64_png(), "metadata": [1]}, 400),
    ],
)
def test_bad_bodies_get_the_right_status_and_store_nothing(
    client: httpx.Client, store: genstore.Store, body: dict[str, object], status: int
) -> None:
    r = client.post("/api/images", json=body, headers=auth())
    assert r.status_code == status
    assert r.json()["success"] is False
    assert list(store.blobs.list("images/")) == []


def test_bad_status_and_paging_values(client: httpx.Client) -> None:
    created = client.post(
        "/api/images", json={"prompt": "p", "imageData": b64_png()}, headers=auth()
    ).json()["data"]
    r = client.patch(
        f"/api/images/{created['image_id']}/status", json={"status": "lost"}, headers=auth()
    )
    assert r.status_code == 400 and "generated" in r.json()["error"]
    assert client.get("/api/images?page=0", headers=auth()).status_code == 400
    assert client.get("/api/images?limit=abc", headers=auth()).status_code == 400
    assert client.post("/api/images", content=b"{not json", headers=auth()).status_code == 400


def test_rate_limit_answers_429_with_retry_after(store: genstore.Store) -> None:
    app = create_app(store, auth=JWTAuthenticator(secret=SECRET), rate_limit=3)
    with serve(app) as c:
        codes = [c.get("/api/images", headers=auth("user_r")).status_code for _ in range(5)]
        assert codes == [200, 200, 200, 429, 429]
        limited = c.get("/api/images", headers=auth("user_r"))
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert c.get("/api/images", headers=auth("user_other")).status_code == 200


def test_health_and_gallery(client: httpx.Client) -> None:
    health = client.get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    page = client.get("/gallery")
    assert page.status_code == 200 and "<title>genstore gallery</title>" in page.text


def test_history_lists_the_users_operations(client: httpx.Client, store: genstore.Store) -> None:
    store.save_complete_operation(operation_type="text_to_image", prompt="mine", user_id="user_h")
    store.save_complete_operation(operation_type="text_to_image", prompt="theirs", user_id="x")
    body = client.get("/api/history", headers=auth("user_h")).json()
    assert [r["prompt"] for r in body["data"]] == ["mine"]


def test_oversized_bodies_are_refused_before_reading(store: genstore.Store) -> None:
    app = create_app(store, auth=JWTAuthenticator(secret=SECRET))
    with serve(app) as http:
        big = http.post(
            "/api/images",
            content=b"x" * 600_000,
            headers={**auth(), "Content-Type": "application/json"},
        )
        assert big.status_code == 413

        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                yield b"y" * 60_000

        chunked = http.post("/api/images", content=chunks(), headers=auth())
        assert chunked.status_code == 413
        assert http.get("/api/images", headers=auth()).json()["pagination"]["total"] == 0
