"""Rate limits (per user, per address, shared through Redis) and the bound on bytes in flight."""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import genstore
import jwt
import pytest
from genstore_asgi.service import JWTAuthenticator, create_app
from genstore_asgi.service._uploads import Busy, UploadBudget
from helpers import free_port, png_bytes
from starlette.applications import Starlette

from .service_harness import serve

SECRET = "limits-secret-" + "x" * 32


def auth(sub: str) -> dict[str, str]:
    token = jwt.encode({"sub": sub, "exp": int(time.time()) + 300}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[genstore.Store]:
    with genstore.open_store(tmp_path / "data", max_image_bytes=200_000) as s:
        yield s


def app(store: genstore.Store, **options: object) -> Starlette:
    return create_app(store, auth=JWTAuthenticator(secret=SECRET), **options)  # type: ignore[arg-type]


def test_per_user_limit_answers_429_with_ratelimit_headers(store: genstore.Store) -> None:
    with serve(app(store, rate_limit="3/minute"), free_port()) as http:
        answers = [http.get("/api/images", headers=auth("user_r")) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert all(a.headers["x-ratelimit-limit"] == "3" for a in answers)
        reset = int(answers[-1].headers["x-ratelimit-reset"])
        assert time.time() < reset <= time.time() + 61
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
        assert answers[-1].json() == {"success": False, "error": "rate limit exceeded"}
        assert http.get("/api/images", headers=auth("user_other")).status_code == 200


def test_requests_without_a_valid_token_are_limited_per_address(store: genstore.Store) -> None:
    with serve(app(store, anonymous_rate_limit="3/minute"), free_port()) as http:
        codes = [http.get("/api/images").status_code for _ in range(3)]
        codes.append(http.get("/api/images", headers={"Authorization": "Bearer junk"}).status_code)
        codes.append(http.get("/docs").status_code)
        assert codes == [401, 401, 401, 429, 429]
        # A valid token is counted per user, not against the address.
        assert http.get("/api/images", headers=auth("user_ok")).status_code == 200


def test_redis_storage_shares_one_limit_between_instances(
    store: genstore.Store, redis_url: str
) -> None:
    user = f"user_{uuid.uuid4().hex}"  # a fresh key: runs never see each other's counts
    options = {"rate_limit": "4/minute", "rate_limit_storage": redis_url}
    with (
        serve(app(store, **options), free_port()) as one,
        serve(app(store, **options), free_port()) as two,
    ):
        codes = [c.get("/api/images", headers=auth(user)).status_code for c in (one, two) * 3]
    assert codes == [200, 200, 200, 200, 429, 429]


def test_an_unreachable_limiter_fails_open(store: genstore.Store) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with serve(app(store, rate_limit_storage=dead), free_port()) as http:
        r = http.get("/api/images", headers=auth("user_x"))
    assert r.status_code == 200 and "x-ratelimit-limit" not in r.headers


def test_budget_takes_and_gives_back() -> None:
    budget = UploadBudget(100)
    budget.take(150)  # alone: let through, however large
    with pytest.raises(Busy):
        budget.take(1)
    budget.give_back(150)
    budget.take(60)
    budget.take(40)
    with pytest.raises(Busy):
        budget.take(1)
    assert (budget.in_flight, budget.peak) == (100, 150)


def test_uploads_past_the_budget_get_503_with_retry_after(store: genstore.Store) -> None:
    body = (
        '{"prompt": "p", "imageData": "' + base64.b64encode(png_bytes()).decode() + '"}'
    ).encode()
    padded = body[:-1] + b" " * (150_000 - len(body)) + b"}"
    sent_first, go_on = threading.Event(), threading.Event()

    def slow() -> Iterator[bytes]:
        yield padded[:1000]
        sent_first.set()
        go_on.wait(timeout=30)
        yield padded[1000:]

    headers = {**auth("user_u"), "Content-Type": "application/json"}
    sized = {**headers, "Content-Length": str(len(padded))}
    with (
        serve(app(store, max_inflight_bytes=200_000), free_port()) as http,
        ThreadPoolExecutor(1) as pool,
    ):
        first = pool.submit(http.post, "/api/images", content=slow(), headers=sized)
        assert sent_first.wait(10)
        second = http.post("/api/images", content=padded, headers=headers)
        assert second.status_code == 503 and second.headers["retry-after"] == "1"
        assert "too many uploads" in second.json()["error"]
        go_on.set()
        assert first.result(timeout=30).status_code == 201
        assert http.post("/api/images", content=padded, headers=headers).status_code == 201
