"""Health says ok/unavailable and which part failed, never where the data lives; links are never
built from the Host header."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import genstore
import jwt
from genstore.exceptions import BackendUnavailable
from genstore_asgi.service import JWTAuthenticator, create_app
from helpers import free_port, png_bytes

from .service_harness import serve

SECRET = "health-secret-" + "x" * 32
HIDDEN = "/srv/very/secret/place"


class BrokenCatalog:
    """Delegates to a real catalog, but every lookup fails naming a private path."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def get_operation(self, operation_id: str) -> Any:
        raise BackendUnavailable(f"database at {HIDDEN} is locked")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def auth() -> dict[str, str]:
    token = jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {token}"}


def test_health_ok_names_no_path_or_url(tmp_path: Path) -> None:
    with (
        genstore.open_store(tmp_path / "data") as store,
        serve(create_app(store, auth=JWTAuthenticator(secret=SECRET)), free_port()) as http,
    ):
        r = http.get("/api/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"blobs": "ok", "catalog": "ok"}}
    assert str(tmp_path) not in r.text


def test_health_says_which_part_failed_and_nothing_else(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path / "data") as real:
        store = genstore.Store(real.blobs, BrokenCatalog(real.catalog), real.options)  # type: ignore[arg-type]
        with serve(create_app(store, auth=JWTAuthenticator(secret=SECRET)), free_port()) as http:
            r = http.get("/api/health")
    assert r.status_code == 503
    assert r.json() == {
        "status": "unavailable",
        "checks": {"blobs": "ok", "catalog": "unavailable"},
    }
    assert HIDDEN not in r.text and "locked" not in r.text


def _create(http: Any, headers: dict[str, str]) -> dict[str, Any]:
    body = {"prompt": "p", "imageData": base64.b64encode(png_bytes()).decode()}
    r = http.post("/api/images", json=body, headers=headers)
    assert r.status_code == 201
    return r.json()["data"]  # type: ignore[no-any-return]


def test_base_url_makes_links_absolute_whatever_the_host_header(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path) as store:
        app = create_app(
            store, auth=JWTAuthenticator(secret=SECRET), base_url="https://images.example.test/"
        )
        with serve(app, free_port()) as http:
            data = _create(http, {**auth(), "Host": "evil.test"})
    assert data["image_url"] == f"https://images.example.test/api/images/{data['image_id']}/file"


def test_trusted_hosts_refuse_other_host_headers(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path) as store:
        app = create_app(store, auth=JWTAuthenticator(secret=SECRET), trusted_hosts=["127.0.0.1"])
        with serve(app, free_port()) as http:
            assert (
                http.get("/api/images", headers={**auth(), "Host": "evil.test"}).status_code == 400
            )
            assert http.get("/api/images", headers=auth()).status_code == 200
