"""examples/generation_service.py: the guide's 10 routes, recorded 10/10 by one middleware line.

Driven through a real uvicorn on 127.0.0.1, so the result URLs the routes return (served by the
app itself) are really downloaded into the store.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import genstore
import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "generation_service.py"

EXPECTED_TYPES = {
    "/api/generate/text-to-image": "text_to_image",
    "/api/generate/img-to-img": "img_to_img",
    "/api/edit/image": "image_edit_single",
    "/api/edit/pose": "image_edit_multiple",
    "/api/edit/style": "image_edit_multiple",
    "/api/video/text-to-video": "text_to_video",
    "/api/video/img-to-video": "image_to_video_single",
    "/api/video-image/animate-image": "image_to_video_single",
    "/api/video-image/transition": "image_to_video_transition",
    "/api/workflow/execute": "edit_then_video",
}


@pytest.fixture(scope="module")
def service() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generation_service", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_all_ten_routes_are_recorded_with_inputs_and_downloaded_results(
    service: ModuleType, tmp_path: Path
) -> None:
    calls = service.demo_calls()
    assert [path for path, _ in calls] == list(EXPECTED_TYPES)
    with genstore.open_store(tmp_path / "store") as store:
        app = service.create_app(store, tmp_path / "files")
        with service.BackgroundServer(app) as base_url, httpx.Client(base_url=base_url) as client:
            for path, kwargs in calls:
                response = client.post(path, headers={"X-User-Id": "user_7"}, **kwargs)
                assert response.status_code == 200, (path, response.text)
                assert response.json()["resultUrl"].startswith(f"{base_url}/files/")
            operations = service.wait_for_history(client, len(calls))
            assert len(operations) == len(calls)
            served = {
                op["result_source_url"]: client.get(op["result_source_url"]).content
                for op in operations
            }
        records = {r.request.route: r for r in store.history(limit=50).items if r.request}

    assert {route: r.operation_type for route, r in records.items()} == EXPECTED_TYPES
    for path, kwargs in calls:
        record = records[path]
        assert record.status == "succeeded"
        assert record.user_id == "user_7"
        uploaded = [blob for _, (_, blob, _) in kwargs.get("files", [])]
        assert [ref.sha256 for ref in record.inputs] == [sha(blob) for blob in uploaded], path
        prompt = (kwargs.get("json") or kwargs.get("data"))["prompt"]
        assert record.prompt == prompt
        # The result was downloaded from the app's own URL, byte for byte.
        assert record.result is not None and record.result_error is None, path
        assert record.result.sha256 == sha(served[record.result_source_url])
        expected_type = "image/gif" if "video" in path or "workflow" in path else "image/png"
        assert record.result.content_type == expected_type
    assert records["/api/workflow/execute"].workflow_analysis == {
        "detected": "edit_then_video",
        "steps": ["edit", "video"],
    }
    assert records["/api/generate/img-to-img"].parameters == {"strength": "0.7"}
    assert records["/api/generate/text-to-image"].parameters == {"aspectRatio": "16:9"}


def test_an_edit_route_refusing_six_images_is_recorded_failed(
    service: ModuleType, tmp_path: Path
) -> None:
    png = service._png("red")
    files = [("images", (f"{i}.png", png, "image/png")) for i in range(6)]
    with genstore.open_store(tmp_path / "store") as store:
        app = service.create_app(store, tmp_path / "files")
        with service.BackgroundServer(app) as base_url, httpx.Client(base_url=base_url) as client:
            response = client.post("/api/edit/image", data={"prompt": "p"}, files=files)
            assert response.status_code == 400
            (operation,) = service.wait_for_history(client, 1)
    assert operation["status"] == "failed"
    assert operation["error"] == "send 1 to 5 images"
    assert len(operation["inputs"]) == 6  # what was asked is kept, even when refused


@pytest.mark.slow
def test_the_demo_command_runs_the_ten_routes_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--demo"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "10/10 routes recorded with their result" in done.stderr
    for route in EXPECTED_TYPES:
        assert route in done.stdout
