"""``genstore serve`` and ``python -m genstore_asgi.service``: help, dev mode, mounting."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import time
from pathlib import Path

import genstore
import genstore_asgi
import httpx
import jwt
import psutil
import pytest
from genstore.cli import app as cli_app
from genstore_asgi.service import JWTAuthenticator
from genstore_asgi.service._settings import ENVIRONMENT
from helpers import free_port, png_bytes
from starlette.applications import Starlette
from starlette.routing import Mount
from typer.testing import CliRunner

from .service_harness import PYTHON, clean_env, serve, subprocess_service

SECRET = "serve-secret-" + "x" * 32


def test_help_lists_every_setting_and_exits_0_without_any_secret() -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--help"], env={**clean_env(), "COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--url", "--host", "--port", "--workers", "--dev"):
        assert option in result.output
    for setting in ENVIRONMENT:
        assert setting.name in result.output


def test_python_dash_m_help_exits_0_without_any_secret() -> None:
    done = subprocess.run(
        [PYTHON, "-m", "genstore_asgi.service", "--help"],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert all(setting.name in done.stdout for setting in ENVIRONMENT)


def test_help_without_the_server_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "genstore_asgi.service._settings", None)
    result = CliRunner().invoke(cli_app, ["serve", "--help"], env={**clean_env(), "COLUMNS": "200"})
    assert result.exit_code == 0
    assert "pip install 'genstore[server]'" in result.output


def test_help_of_the_root_lists_serve() -> None:
    result = CliRunner().invoke(cli_app, ["--help"], env=clean_env())
    assert result.exit_code == 0 and "serve" in result.output


def test_no_auth_on_a_public_interface_is_refused_with_exit_3(tmp_path: Path) -> None:
    args = [PYTHON, "-c", _CLI, "serve", "--host", "0.0.0.0", "--port", str(free_port())]
    done = subprocess.run(
        args,
        env=clean_env(GENSTORE_URL=str(tmp_path / "d")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    assert "--dev" in done.stderr


_CLI = "import sys; from genstore.cli import main; sys.exit(main())"


def _token_from(proc: subprocess.Popen[str]) -> str:
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        match = re.search(r"token:\s+(\S+)", line)
        if match:
            rest = "".join(proc.stderr.readline() for _ in range(2))
            assert f"#token={match.group(1)}" in rest, rest
            return match.group(1)
    raise AssertionError("no development token printed")


@pytest.mark.slow
def test_dev_mode_prints_a_token_that_the_api_accepts_and_the_ui_url(tmp_path: Path) -> None:
    port = free_port()
    args = [PYTHON, "-c", _CLI, "serve", "--dev", "--port", str(port), "--url", str(tmp_path)]
    with subprocess_service(args, clean_env(), port) as proc:
        token = _token_from(proc)
        base = f"http://127.0.0.1:{port}"
        ok = httpx.get(f"{base}/api/images", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200 and ok.json()["pagination"]["total"] == 0
        assert httpx.get(f"{base}/api/images").status_code == 401


@pytest.mark.slow
def test_python_dash_m_serves_with_settings_from_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(GENSTORE_URL=str(tmp_path), GENSTORE_JWT_SECRET=SECRET, PORT=str(port))
    with subprocess_service([PYTHON, "-m", "genstore_asgi.service"], env, port):
        token = jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/images", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200


def test_create_app_mounts_in_an_existing_app_with_links_under_the_mount(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path) as store:
        images = genstore_asgi.create_app(store, auth=JWTAuthenticator(secret=SECRET))
        outer = Starlette(routes=[Mount("/images", app=images)])
        token = jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
        headers = {"Authorization": f"Bearer {token}"}
        with serve(outer, free_port()) as http:
            body = {"prompt": "p", "imageData": base64.b64encode(png_bytes()).decode()}
            created = http.post("/images/api/images", json=body, headers=headers)
            assert created.status_code == 201
            url = created.json()["data"]["image_url"]
            assert url.startswith("/images/api/images/")
            assert http.get(url, headers=headers).content == png_bytes()


def test_image_urls_never_come_from_the_host_header(tmp_path: Path) -> None:
    with genstore.open_store(tmp_path) as store:
        app = genstore_asgi.create_app(store, auth=JWTAuthenticator(secret=SECRET))
        token = jwt.encode({"sub": "u1", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
        headers = {"Authorization": f"Bearer {token}", "Host": "evil.example:666"}
        with serve(app, free_port()) as http:
            body = {"prompt": "p", "imageData": base64.b64encode(png_bytes()).decode()}
            created = http.post("/api/images", json=body, headers=headers).json()["data"]
            listed = http.get("/api/images", headers=headers).json()["data"]
        for url in (created["image_url"], listed[0]["image_url"]):
            assert "evil" not in url and url.startswith("/api/images/")


@pytest.mark.slow
def test_no_auth_on_loopback_is_dev_mode_and_every_worker_accepts_its_token(
    tmp_path: Path,
) -> None:
    port = free_port()
    args = [PYTHON, "-c", _CLI, "serve", "--workers", "2", "--port", str(port)]
    with subprocess_service(args, clean_env(GENSTORE_URL=str(tmp_path)), port) as proc:
        token = _token_from(proc)
        headers = {"Authorization": f"Bearer {token}"}
        # New connections are spread over both workers by the kernel; all must know the secret.
        codes = {
            httpx.get(f"http://127.0.0.1:{port}/api/images", headers=headers).status_code
            for _ in range(20)
        }
        assert codes == {200}
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len([w for w in workers if "python" in w.name().lower()]) >= 2
