"""The web UI in real headless Chromium (Debian's package) driven by Playwright, against uvicorn.

Skipped locally when /usr/bin/chromium is missing; under CI=true a missing Chromium fails.
"""

from __future__ import annotations

import io
import os
import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import genstore
import jwt
import pytest
from genstore_asgi.service import JWTAuthenticator
from genstore_asgi.service.ui import ui_routes
from helpers import need_server
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright
from starlette.applications import Starlette

from .service_harness import running as serve

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SECRET = "ui-browser-secret-" + "x" * 32
ALICE, BOB = "user_alice", "user_bob"


def token(sub: str) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")


def picture(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A PNG with some structure (gradients and blocks), so a blank render is easy to tell."""
    rng = random.Random(seed)
    image = Image.new("RGB", size)
    w, h = size
    base = [rng.randrange(256) for _ in range(3)]
    image.putdata(
        [
            ((base[0] + x) % 256, (base[1] + y) % 256, (base[2] + x * y // 64) % 256)
            for y in range(h)
            for x in range(w)
        ]
    )
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    need_server(CHROMIUM.exists(), f"Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: $GENSTORE_UI_SCREENSHOTS (kept by CI as artefacts) or a temp dir."""
    folder = Path(os.environ.get("GENSTORE_UI_SCREENSHOTS") or tmp_path / "shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshot(page: Page, path: Path) -> None:
    """A full-page screenshot, saved, and checked not blank."""
    shot = page.screenshot(full_page=True, path=str(path))
    assert distinct_colours(shot) > 500, f"{path.name} looks blank"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[genstore.Store]:
    with genstore.open_store(tmp_path / "data") as s:
        yield s


@pytest.fixture
def base_url(store: genstore.Store) -> Iterator[str]:
    authenticate = JWTAuthenticator(secret=SECRET).user_id
    with serve(Starlette(routes=[ui_routes(lambda: store, authenticate)])) as url:
        yield url


RECORD_WEBM = """async () => {
  const canvas = Object.assign(document.createElement("canvas"), {width: 64, height: 48});
  const paint = canvas.getContext("2d");
  const recorder = new MediaRecorder(canvas.captureStream(10), {mimeType: "video/webm;codecs=vp8"});
  const parts = [];
  recorder.ondataavailable = (e) => parts.push(e.data);
  const stopped = new Promise((resolve) => { recorder.onstop = resolve; });
  recorder.start();
  for (let i = 0; i < 8; i++) {
    paint.fillStyle = `hsl(${i * 40}, 80%, 50%)`;
    paint.fillRect(0, 0, 64, 48);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  recorder.stop();
  await stopped;
  return Array.from(new Uint8Array(await new Blob(parts).arrayBuffer()));
}"""
"""A short real WebM, recorded by Chromium itself from a canvas (no ffmpeg on the machine)."""


def distinct_colours(png: bytes) -> int:
    with Image.open(io.BytesIO(png)) as shot:
        colours = shot.convert("RGB").getcolors(maxcolors=1 << 24)
    return len(colours or [])


@contextmanager
def signed_in(chromium: Browser, base_url: str, user: str, *, js: bool = True) -> Iterator[Page]:
    """A fresh browser context (its own cookies) signed in through the sign-in form."""
    context = chromium.new_context(
        java_script_enabled=js, viewport={"width": 1280, "height": 900}, base_url=base_url
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto("/ui/")
        expect(page).to_have_url(f"{base_url}/ui/sign-in")
        page.fill("#token", token(user))
        page.get_by_role("button", name="Sign in", exact=True).click()
        expect(page).to_have_url(f"{base_url}/ui/operations")
        yield page
        # A CSP violation or a script error shows up here (404s of other users' files aside).
        assert [e for e in errors if "404" not in e] == []
    finally:
        context.close()


def loaded_images(page: Page, selector: str, *, js: bool = True) -> list[int]:
    """naturalWidth of every image matching ``selector`` once loaded (0 for a broken one)."""
    if js:  # lazy images may finish after the load event
        page.wait_for_function(
            "s => [...document.querySelectorAll(s)].every(e => e.complete)", arg=selector
        )
    else:  # without script, lazy loading is off: the load event waits for every image
        page.wait_for_load_state("load")
    widths: list[int] = page.eval_on_selector_all(selector, "els => els.map(e => e.naturalWidth)")
    return widths


def test_list_detail_status_change_delete_in_chromium(
    chromium: Browser, base_url: str, store: genstore.Store, shots: Path
) -> None:
    op = store.save_complete_operation(
        operation_type="text_to_image",
        prompt="un chat roux sur un toit de Paris",
        parameters={"steps": 30, "cfgScale": 7, "model": "stability-ai"},
        result=picture(1),
        user_id=ALICE,
        duration_ms=2100,
    ).operation_id
    store.save_complete_operation(
        operation_type="img_to_img", prompt="échec", error="quota exceeded", user_id=ALICE
    )
    kept = store.images.create(user_id=ALICE, prompt="un phare", image_data=picture(2))
    doomed = store.images.create(user_id=ALICE, prompt="une tasse", image_data=picture(3))

    with signed_in(chromium, base_url, ALICE) as page:
        rows = page.locator("table.ops tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.first).to_contain_text("échec")  # newest first
        assert loaded_images(page, ".thumbs img") == [256]  # 320x240 made 256x192
        screenshot(page, shots / "operations.png")

        page.click("text=un chat roux sur un toit de Paris")
        expect(page).to_have_url(f"{base_url}/ui/operations/{op}")
        expect(page.locator("blockquote.prompt-full")).to_have_text(
            "un chat roux sur un toit de Paris"
        )
        expect(page.locator("pre.json")).to_contain_text('"cfgScale": 7')
        assert loaded_images(page, "figure.artifact img") == [320]
        expect(page.locator(".facts")).to_contain_text("2100 ms")
        screenshot(page, shots / "operation.png")

        page.click("nav >> text=Images")
        tiles = page.locator("li.tile")
        expect(tiles).to_have_count(2)
        assert loaded_images(page, "li.tile img") == [256, 256]
        tile = page.locator(f"#image-{kept.image_id}")
        for status in ("printed", "ordered"):
            tile.locator("select").select_option(status)
            tile.locator("text=Set").click()
            expect(page.locator(".flash")).to_contain_text(f"un phare: {status}")
            expect(tile.locator(".badge")).to_have_text(status)
        assert store.images.get(user_id=ALICE, image_id=kept.image_id).status.value == "ordered"

        screenshot(page, shots / "images.png")

        page.once("dialog", lambda dialog: dialog.accept())
        page.locator(f"#image-{doomed.image_id}").locator("text=Delete").click()
        expect(page.locator(".flash")).to_contain_text("deleted: une tasse")
        expect(tiles).to_have_count(1)
    with pytest.raises(genstore.NotFound):
        store.images.get(user_id=ALICE, image_id=doomed.image_id)


def test_a_second_user_never_sees_the_first_users_items_in_chromium(
    chromium: Browser, base_url: str, store: genstore.Store
) -> None:
    op = store.save_complete_operation(
        operation_type="text_to_image", prompt="alice private", result=picture(4), user_id=ALICE
    ).operation_id
    alice_image = store.images.create(user_id=ALICE, prompt="alice photo", image_data=picture(5))
    store.images.create(user_id=BOB, prompt="bob's boat", image_data=picture(6))

    with signed_in(chromium, base_url, BOB) as page:
        expect(page.locator("main")).to_contain_text("No operations")
        assert "alice" not in page.content()
        page.goto("/ui/images")
        expect(page.locator("li.tile")).to_have_count(1)
        expect(page.locator("li.tile")).to_contain_text("bob's boat")
        assert "alice" not in page.content()
        for path in (
            f"/ui/operations/{op}",
            f"/ui/operations/{op}/results/0",
            f"/ui/images/{alice_image.image_id}/file",
            f"/ui/images/{alice_image.image_id}/thumb",
        ):
            response = page.goto(path)
            assert response is not None and response.status == 404, path
            assert "alice" not in page.content()


def test_reading_works_without_javascript(
    chromium: Browser, base_url: str, store: genstore.Store
) -> None:
    op = store.save_complete_operation(
        operation_type="text_to_image", prompt="sans script", result=picture(7), user_id=ALICE
    ).operation_id
    with signed_in(chromium, base_url, ALICE, js=False) as page:
        page.select_option("select[name=status]", "succeeded")
        page.click("text=Filter")
        expect(page).to_have_url(re.compile(r".*/ui/operations\?.*status=succeeded"))
        expect(page.locator("table.ops tbody tr")).to_have_count(1)
        page.click("text=sans script")
        expect(page).to_have_url(f"{base_url}/ui/operations/{op}")
        assert loaded_images(page, "figure.artifact img", js=False) == [320]


def test_a_video_result_plays_in_chromium(
    chromium: Browser, base_url: str, store: genstore.Store
) -> None:
    context = chromium.new_context()
    try:
        recorder = context.new_page()
        recorder.set_content("<p>recording</p>")
        webm = bytes(recorder.evaluate(RECORD_WEBM))
    finally:
        context.close()
    assert webm[:4] == b"\x1a\x45\xdf\xa3"
    op = store.save_complete_operation(
        operation_type="image_to_video_single",
        prompt="un train qui passe",
        input_images=[picture(8)],
        result=webm,
        user_id=ALICE,
    ).operation_id
    with signed_in(chromium, base_url, ALICE) as page:
        expect(page.locator(".thumbs a.kind-video")).to_have_text("video")
        page.click("text=un train qui passe")
        expect(page).to_have_url(f"{base_url}/ui/operations/{op}")
        video = page.locator("figure.artifact video")
        expect(video).to_have_count(1)
        page.wait_for_function("document.querySelector('video').readyState >= 1")
        assert video.evaluate("v => [v.videoWidth, v.videoHeight, v.error]") == [64, 48, None]
        assert loaded_images(page, "figure.artifact img") == [320]  # the input image
