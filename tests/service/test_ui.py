"""The web UI over HTTP (real uvicorn on 127.0.0.1): sign-in, isolation, CSRF, files, filters."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import genstore
import httpx
import jwt
import pytest
from genstore_asgi.service import JWTAuthenticator
from genstore_asgi.service.ui import ui_routes
from helpers import FileServer, png_bytes
from PIL import Image
from starlette.applications import Starlette

from .service_harness import running as serve

SECRET = "ui-test-secret-" + "x" * 32
ALICE, BOB = "user_alice", "user_bob"


def token(sub: str, ttl: int = 300) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + ttl}, SECRET, algorithm="HS256")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[genstore.Store]:
    with genstore.open_store(tmp_path / "data") as s:
        yield s


@pytest.fixture
def base_url(store: genstore.Store) -> Iterator[str]:
    app = Starlette(
        routes=[ui_routes(lambda: store, JWTAuthenticator(secret=SECRET).user_id, dev_token=None)]
    )
    with serve(app) as url:
        yield url


@contextmanager
def browser_like(base_url: str, user: str | None) -> Iterator[httpx.Client]:
    """An httpx client signed in as ``user`` through the sign-in form (cookie kept)."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        if user is not None:
            signed = http.post("/ui/sign-in", data={"token": token(user), "next": "/ui/images"})
            assert signed.status_code == 303, signed.text
        yield http


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def add_operation(store: genstore.Store, user: str, prompt: str, **kwargs: object) -> str:
    kwargs.setdefault("operation_type", "text_to_image")
    saved = store.save_complete_operation(prompt=prompt, user_id=user, **kwargs)  # type: ignore[arg-type]
    return saved.operation_id


def add_image(store: genstore.Store, user: str, prompt: str, color: str = "red") -> str:
    return store.images.create(
        user_id=user, prompt=prompt, image_data=png_bytes(300, 200, color), metadata={}
    ).image_id


def test_sign_in_sets_a_strict_httponly_cookie_and_bad_tokens_do_not(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        first = http.get("/ui/operations?type=img_to_img")
        assert first.status_code == 303
        assert first.headers["location"].startswith("/ui/sign-in?next=%2Fui%2Foperations")
        for bad in ("", "not-a-jwt", token(ALICE, ttl=-60), "a b"):
            refused = http.post("/ui/sign-in", data={"token": bad})
            assert refused.status_code == 401 and "Not signed in" in refused.text
            assert "set-cookie" not in refused.headers
        ok = http.post("/ui/sign-in", data={"token": token(ALICE), "next": "/ui/images"})
        assert ok.status_code == 303 and ok.headers["location"] == "/ui/images"
        cookie = ok.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui/" in cookie
        assert http.get("/ui/operations").status_code == 200


def test_sign_in_never_redirects_off_the_ui(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        for target in ("https://evil.example/", "//evil.example/ui/", "/api/images", "/ui\\x"):
            r = http.post("/ui/sign-in", data={"token": token(ALICE), "next": target})
            assert r.headers["location"] == "/ui/operations", target


def test_sign_in_from_another_site_is_refused(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        r = http.post(
            "/ui/sign-in", data={"token": token(ALICE)}, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert r.status_code == 401 and "set-cookie" not in r.headers


def test_dev_mode_signs_in_with_the_development_token(store: genstore.Store) -> None:
    dev = token("user_dev")
    app = Starlette(
        routes=[ui_routes(lambda: store, JWTAuthenticator(secret=SECRET).user_id, dev_token=dev)]
    )
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        assert "development token" in http.get("/ui/sign-in").text
        assert http.post("/ui/sign-in", data={"dev": "1"}).status_code == 303
        assert "user_dev" in http.get("/ui/images").text


def test_without_dev_mode_the_dev_button_is_absent_and_ignored(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        assert "development token" not in http.get("/ui/sign-in").text
        assert http.post("/ui/sign-in", data={"dev": "1"}).status_code == 401


def test_a_second_user_never_sees_or_touches_the_first_users_items(
    base_url: str, store: genstore.Store
) -> None:
    op = add_operation(store, ALICE, "alice's secret cat", result=png_bytes(40, 30))
    image = add_image(store, ALICE, "alice's secret dog")
    with browser_like(base_url, ALICE) as alice, browser_like(base_url, BOB) as bob:
        assert "alice&#39;s secret cat" in alice.get("/ui/operations").text
        assert "alice&#39;s secret dog" in alice.get("/ui/images").text
        assert alice.get(f"/ui/operations/{op}/results/0/thumb").status_code == 200

        assert "secret" not in bob.get("/ui/operations").text
        assert "secret" not in bob.get("/ui/images").text
        for path in (
            f"/ui/operations/{op}",
            f"/ui/operations/{op}/results/0",
            f"/ui/operations/{op}/results/0/thumb",
            f"/ui/images/{image}/file",
            f"/ui/images/{image}/thumb",
        ):
            r = bob.get(path)
            assert r.status_code == 404, path
            assert "secret" not in r.text
        bob_csrf = csrf_of(bob.get("/ui/images").text)
        for action in ("delete", "status"):
            r = bob.post(
                f"/ui/images/{image}/{action}", data={"csrf": bob_csrf, "status": "ordered"}
            )
            assert r.status_code == 404, action
    kept = store.images.get(user_id=ALICE, image_id=image)
    assert kept.status.value == "generated"


def test_unsigned_requests_for_files_get_401_not_bytes(
    base_url: str, store: genstore.Store
) -> None:
    op = add_operation(store, ALICE, "p", result=png_bytes(10, 10))
    image = add_image(store, ALICE, "q")
    with httpx.Client(base_url=base_url, timeout=10) as http:
        for path in (f"/ui/operations/{op}/results/0", f"/ui/images/{image}/thumb"):
            r = http.get(path)
            assert r.status_code == 401 and not r.content.startswith(b"\x89PNG")


def test_forms_need_the_sessions_csrf_token_and_this_site(
    base_url: str, store: genstore.Store
) -> None:
    image = add_image(store, ALICE, "a print")
    with browser_like(base_url, ALICE) as alice:
        csrf = csrf_of(alice.get("/ui/images").text)
        url = f"/ui/images/{image}/status"
        assert alice.post(url, data={"status": "printed"}).status_code == 403
        assert alice.post(url, data={"status": "printed", "csrf": "0" * 64}).status_code == 403
        assert (
            alice.post(url, data={"status": "printed", "csrf": csrf_of_other()}).status_code == 403
        )
        cross = alice.post(
            url,
            data={"status": "printed", "csrf": csrf},
            headers={"Origin": "http://evil.example"},
        )
        assert cross.status_code == 403
        assert store.images.get(user_id=ALICE, image_id=image).status.value == "generated"
        done = alice.post(url, data={"status": "printed", "csrf": csrf})
        assert done.status_code == 303 and done.headers["location"].startswith("/ui/images?")
        assert store.images.get(user_id=ALICE, image_id=image).status.value == "printed"


def csrf_of_other() -> str:
    """A well-formed CSRF value of another session (a stolen page of another user)."""
    from genstore_asgi.service.ui._session import csrf_token

    return csrf_token(token(BOB))


def test_status_moves_along_and_delete_removes_image_and_thumbnail(
    base_url: str, store: genstore.Store
) -> None:
    image = add_image(store, ALICE, "to be ordered")
    with browser_like(base_url, ALICE) as alice:
        csrf = csrf_of(alice.get("/ui/images").text)
        for status in ("printed", "ordered"):
            alice.post(f"/ui/images/{image}/status", data={"status": status, "csrf": csrf})
            assert store.images.get(user_id=ALICE, image_id=image).status.value == status
            assert f'<span class="badge {status}">' in alice.get("/ui/images").text
        assert alice.get(f"/ui/images/{image}/thumb").status_code == 200
        assert list(store.blobs.list("thumbnails/"))
        r = alice.post(f"/ui/images/{image}/delete", data={"csrf": csrf})
        assert r.status_code == 303
        assert "deleted: to be ordered" in alice.get(r.headers["location"]).text
    with pytest.raises(genstore.NotFound):
        store.images.get(user_id=ALICE, image_id=image)
    assert list(store.blobs.list("thumbnails/")) == []


def test_thumbnails_are_small_cached_in_the_store_and_revalidated_by_etag(
    base_url: str, store: genstore.Store
) -> None:
    image = add_image(store, ALICE, "big", color="blue")
    with browser_like(base_url, ALICE) as alice:
        first = alice.get(f"/ui/images/{image}/thumb")
        assert first.status_code == 200 and first.headers["content-type"] == "image/webp"
        assert first.headers["cache-control"] == "private, max-age=3600"
        with Image.open(io.BytesIO(first.content)) as thumb:
            assert max(thumb.size) == 256 and thumb.size == (256, 171)
        keys = [b.key for b in store.blobs.list("thumbnails/")]
        sha = store.images.get(user_id=ALICE, image_id=image).sha256
        assert keys == [f"thumbnails/{sha[:2]}/{sha}-256.webp"]
        again = alice.get(
            f"/ui/images/{image}/thumb", headers={"If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""
        full = alice.get(f"/ui/images/{image}/file")
        assert full.content == store.images.read(user_id=ALICE, image_id=image)
        assert full.headers["etag"] == f'"{sha}"'
    report = store.verify(grace=timedelta(0))
    assert report.ok, report.as_dict()


def test_operation_detail_shows_everything_and_files_download(
    base_url: str, store: genstore.Store, file_server: FileServer
) -> None:
    op = add_operation(
        store,
        ALICE,
        "un chat <b>roux</b>",
        operation_type="image_to_video_single",
        parameters={"steps": 30, "cfgScale": 7, "nested": {"seed": 42}},
        input_images=[png_bytes(20, 20, "green")],
        result=b"\x1a\x45\xdf\xa3" + b"\x00" * 64,
        duration_ms=1234.5,
        request={"route": "/api/video", "method": "POST", "status_code": 200},
    )
    failed = add_operation(store, ALICE, "oops", error="provider said no")
    html = add_operation(
        store,
        ALICE,
        "html",
        result_url=file_server.add("x.html", b"<script>alert(1)</script>", "text/html"),
    )
    with browser_like(base_url, ALICE) as alice:
        page = alice.get(f"/ui/operations/{op}")
        assert page.status_code == 200
        assert page.headers["cache-control"] == "no-store"
        assert "script-src 'self'" in page.headers["content-security-policy"]
        text = page.text
        assert "un chat &lt;b&gt;roux&lt;/b&gt;" in text
        assert "&#34;cfgScale&#34;: 7" in text and "&#34;seed&#34;: 42" in text
        assert f'<video controls preload="metadata" src="/ui/operations/{op}/results/0">' in text
        assert f'src="/ui/operations/{op}/inputs/0"' in text
        assert "1234 ms" in text or "1235 ms" in text
        assert "POST /api/video" in text
        video = alice.get(f"/ui/operations/{op}/results/0")
        assert video.headers["content-type"] == "video/webm"
        assert video.headers["accept-ranges"] == "bytes" and len(video.content) == 68
        part = alice.get(f"/ui/operations/{op}/results/0", headers={"Range": "bytes=1-3"})
        assert part.status_code == 206 and part.content == b"\x45\xdf\xa3"
        assert part.headers["content-range"] == "bytes 1-3/68"
        beyond = alice.get(f"/ui/operations/{op}/results/0", headers={"Range": "bytes=68-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == "bytes */68"
        stale = alice.get(
            f"/ui/operations/{op}/results/0", headers={"Range": "bytes=1-3", "If-Range": '"x"'}
        )
        assert stale.status_code == 200 and len(stale.content) == 68
        download = alice.get(f"/ui/operations/{op}/results/0?download=1")
        assert download.headers["content-disposition"].startswith("attachment;")
        assert "provider said no" in alice.get(f"/ui/operations/{failed}").text
        served = alice.get(f"/ui/operations/{html}/results/0")
        assert served.headers["content-type"] == "application/octet-stream"
        assert served.headers["content-disposition"].startswith("attachment;")
        assert "sandbox" in served.headers["content-security-policy"]
        assert alice.get(f"/ui/operations/{op}/results/1").status_code == 404
        assert alice.get(f"/ui/operations/{op}/secrets/0").status_code == 404


def test_history_filters_by_type_status_date_and_prompt(
    base_url: str, store: genstore.Store
) -> None:
    day = datetime(2026, 3, 1, 12, tzinfo=UTC)
    add_operation(store, ALICE, "Un Café noir", created_at=day)
    add_operation(store, ALICE, "a dog", operation_type="img_to_img", created_at=day)
    add_operation(store, ALICE, "a café crème", error="boom", created_at=day + timedelta(days=2))

    def prompts(query: str) -> set[str]:
        page = alice.get(f"/ui/operations?{query}").text
        return {p for p in ("Un Café noir", "a dog", "a café crème") if p in page}

    with browser_like(base_url, ALICE) as alice:
        assert prompts("") == {"Un Café noir", "a dog", "a café crème"}
        assert prompts("type=img_to_img") == {"a dog"}
        assert prompts("status=failed") == {"a café crème"}
        assert prompts("since=2026-03-02") == {"a café crème"}
        assert prompts("until=2026-03-01") == {"Un Café noir", "a dog"}
        assert prompts("q=CAFÉ") == {"Un Café noir", "a café crème"}
        assert prompts("q=cafe%CC%81") == {"Un Café noir", "a café crème"}  # decomposed é
        assert prompts("q=caf%C3%A9&status=succeeded") == {"Un Café noir"}
        searched = alice.get("/ui/operations?q=dog").text
        assert "The catalog has no text search" in searched
        bad = alice.get("/ui/operations?since=yesterday&status=lost").text
        assert "must be a date" in bad and "is not one of" in bad
        assert alice.get("/ui/operations?cursor=garbage").status_code == 400


def test_history_pages_newest_first_with_an_older_link(
    base_url: str, store: genstore.Store
) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(30):
        add_operation(store, ALICE, f"prompt number {i:02d}", created_at=start + timedelta(hours=i))
    with browser_like(base_url, ALICE) as alice:
        first = alice.get("/ui/operations").text
        shown = re.findall(r"prompt number (\d\d)", first)
        assert shown == [f"{i:02d}" for i in range(29, 4, -1)]
        older = re.search(r'rel="next" href="([^"]+)"', first)
        assert older
        second = alice.get(older.group(1).replace("&amp;", "&")).text
        assert re.findall(r"prompt number (\d\d)", second) == ["04", "03", "02", "01", "00"]
        assert 'rel="next"' not in second


def test_pages_escape_what_users_wrote(base_url: str, store: genstore.Store) -> None:
    add_image(store, ALICE, "<img src=x onerror=alert(1)>")
    with browser_like(base_url, ALICE) as alice:
        page = alice.get("/ui/images").text
        assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_static_assets_are_served_with_validators(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        css = http.get("/ui/static/ui.css")
        assert css.status_code == 200 and "etag" in css.headers
        assert http.get("/ui/static/../_session.py").status_code == 404


def test_an_async_authenticator_is_awaited(store: genstore.Store) -> None:
    verifier = JWTAuthenticator(secret=SECRET)
    seen: list[str] = []

    async def authenticate(header: str) -> str:
        seen.append(header)
        return await verifier.user_id(header)

    app = Starlette(routes=[ui_routes(lambda: store, authenticate)])
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        assert http.post("/ui/sign-in", data={"token": "x.y.z"}).status_code == 401
        assert http.post("/ui/sign-in", data={"token": token(ALICE)}).status_code == 303
        assert ALICE in http.get("/ui/operations").text
    assert seen[0] == "Bearer x.y.z" and len(seen) == 3  # sign-in, then the page's check


def test_sign_out_clears_the_cookie_and_an_expired_cookie_signs_out(base_url: str) -> None:
    with browser_like(base_url, ALICE) as alice:
        csrf = csrf_of(alice.get("/ui/operations").text)
        assert alice.post("/ui/sign-out", data={}).status_code == 403
        out = alice.post("/ui/sign-out", data={"csrf": csrf})
        assert out.status_code == 303 and out.headers["location"] == "/ui/sign-in"
        assert 'genstore_ui_token=""' in out.headers["set-cookie"]
        assert alice.get("/ui/operations").status_code == 303
    with httpx.Client(base_url=base_url, timeout=10) as http:
        http.cookies.set("genstore_ui_token", token(ALICE, ttl=-60), path="/ui/")
        assert http.get("/ui/operations").status_code == 303
        http.cookies.set("genstore_ui_token", token(ALICE), path="/ui/")
        assert http.get("/ui/operations").status_code == 200
