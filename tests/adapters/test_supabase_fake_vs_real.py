"""The fake Supabase Storage and the real server answer one scenario alike.

The fast tests run against ``tests/fakes``; this runs the same small scenario, request by
request, against the fake and the real storage-api v1.70.6 (tests/supabase_storage.py) and
compares what a client can see: statuses, error names and codes, listed names, page sizes. Every
difference found between the two is a row here: list case folding and merged folders, the v2
list, key characters, signed-URL errors, the 1,500-entry v1 page. (Racing ``x-upsert: false``
uploads are compared by their outcome in test_supabase.py and test_supabase_real.py: their count
varies from run to run on the real server.)
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fakes.supabase_server import running_fake_supabase
from supabase_storage import RealSupabase

pytestmark = pytest.mark.supabase

BUCKET = "compare"
MANY = 1510


class Storage:
    """Raw HTTP on one storage root (the fake's ``/storage/v1``, the real server's root)."""

    def __init__(self, root: str, key: str) -> None:
        self.root = root
        self.http = httpx.Client(
            headers={"apikey": key, "Authorization": f"Bearer {key}"}, timeout=30
        )

    def upload(self, path: str, *, upsert: bool = True) -> httpx.Response:
        return self.http.post(
            f"{self.root}/object/{BUCKET}/{path}",
            files={"file": ("f", b"x", "text/plain")},
            headers={"x-upsert": "true" if upsert else "false"},
        )

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"{self.root}{path}", json=body)

    def close(self) -> None:
        self.http.close()


def _error(response: httpx.Response) -> tuple[int, str, str, str]:
    body = response.json()
    return response.status_code, body["statusCode"], body["error"], body.get("code", "")


def _names(response: httpx.Response) -> list[str]:
    return [entry["name"] for entry in response.json()]


def scenario(storage: Storage) -> dict[str, Any]:
    """What a client sees; every value is compared between the fake and the real server."""
    seen: dict[str, Any] = {}
    storage.post("/bucket", {"id": BUCKET, "name": BUCKET, "public": False})
    for path in ("images/alice/a.json", "images/Alice/b.json", "images/Bob/c.json"):
        assert storage.upload(path).status_code == 200
    seen["duplicate"] = _error(storage.upload("images/alice/a.json", upsert=False))

    def v1(prefix: str, **more: Any) -> list[str]:
        body = {"prefix": prefix, "limit": 100, "offset": 0, **more}
        return _names(storage.post(f"/object/list/{BUCKET}", body))

    seen["v1 alice"] = v1("images/alice")
    seen["v1 Alice"] = v1("images/Alice")
    seen["v1 images"] = v1("images/")
    seen["v1 bob"] = v1("images/bob")
    seen["v1 search"] = v1("images", search="AL")

    def v2(prefix: str, **more: Any) -> dict[str, Any]:
        page = storage.post(f"/object/list-v2/{BUCKET}", {"prefix": prefix, **more}).json()
        return {
            "objects": [o["name"] for o in page["objects"]],
            "folders": [(f["key"], f["name"]) for f in page["folders"]],
            "hasNext": page["hasNext"],
        }

    seen["v2 alice"] = v2("images/alice/")
    seen["v2 Alice"] = v2("images/Alice/")
    seen["v2 images"] = v2("images/", limit=2)
    seen["v2 folders"] = v2("images/", with_delimiter=True)

    seen["percent"] = storage.upload("k%41.txt").json()["Key"]
    for name, path in (("tilde", "a~b.txt"), ("bracket", "a[1].txt"), ("accent", "caf%C3%A9")):
        seen[name] = _error(storage.upload(path))
    seen["percent sign"] = _error(storage.upload("a%25b.txt"))

    seen["sign missing object"] = _error(
        storage.post(f"/object/sign/{BUCKET}/nope.txt", {"expiresIn": 60})
    )
    seen["sign missing bucket"] = _error(
        storage.post("/object/sign/no-such-bucket/x.txt", {"expiresIn": 60})
    )
    signed = storage.post(f"/object/sign/{BUCKET}/images/alice/a.json", {"expiresIn": 60})
    url = storage.root + signed.json()["signedURL"]
    seen["signed"] = httpx.get(url).status_code
    seen["tampered token"] = _error(httpx.get(url[:-3] + "xyz"))
    seen["other object"] = _error(httpx.get(url.replace("alice/a.json", "Alice/b.json")))
    seen["no token"] = _error(httpx.get(url.split("?")[0]))

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda i: storage.upload(f"many/f{i:05d}").status_code, range(MANY)))
    seen["v1 page of 2000"] = len(v1("many", limit=2000))
    seen["v2 page of 2000"] = len(v2("many/", limit=2000)["objects"])
    return seen


@pytest.fixture
def real(supabase_storage: RealSupabase) -> Iterator[Storage]:
    storage = Storage(supabase_storage.url, supabase_storage.service_role_key)
    yield storage
    storage.close()


@pytest.fixture
def fake() -> Iterator[Storage]:
    with running_fake_supabase() as (server, url):
        storage = Storage(f"{url}/storage/v1", server.service_role_key)
        yield storage
        storage.close()


def test_the_fake_answers_the_scenario_as_the_real_server(real: Storage, fake: Storage) -> None:
    expected = scenario(real)
    got = scenario(fake)
    assert {k: got[k] for k in expected} == expected
    # The differences this pins, so that neither side drifts back unnoticed:
    assert expected["v1 alice"] == ["a.json", "b.json"]  # merged across case
    assert expected["v1 images"] == ["alice", "Bob"]  # one folder for alice and Alice
    assert expected["v2 alice"]["objects"] == ["images/alice/a.json"]
    assert expected["percent"] == f"{BUCKET}/kA.txt"
    assert expected["v1 page of 2000"] == 1500 and expected["v2 page of 2000"] == 1000
