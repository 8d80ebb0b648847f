"""The examples run as written (each in a subprocess, on a temporary store)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parents[2] / "examples"


def run(script: str, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("catalog", ["", "sidecar"])
def test_swap_backends_runs_on_any_url(tmp_path: Path, catalog: str) -> None:
    env = {"GENSTORE_URL": str(tmp_path / "store"), "GENSTORE_CATALOG": catalog}
    out = run("swap_backends.py", env=env)
    assert str(tmp_path / "store") in out
    assert ("SidecarCatalog" if catalog else "SQLiteCatalog") in out


def test_quickstart(tmp_path: Path) -> None:
    out = run("quickstart.py", str(tmp_path / "q"), env={})
    assert "succeeded" in out and "failed" in out
    assert "text_to_video" in out and "image_edit_single" in out


def test_third_party_plugin(tmp_path: Path) -> None:
    out = run("third_party_plugin.py", env={"TMPDIR": str(tmp_path)})
    assert "vault://demo" in out
    assert "'steps': 30" in out and "api_key" not in out


def test_images_service_token(tmp_path: Path) -> None:
    import jwt

    token = run(
        "images_service.py", "--token", "user_1", env={"GENSTORE_JWT_SECRET": "s" * 40}
    ).strip()
    assert jwt.decode(token, "s" * 40, algorithms=["HS256"])["sub"] == "user_1"


def test_swap_backends_on_s3(s3_url: str) -> None:
    """The same script on S3 (moto on 127.0.0.1): only GENSTORE_URL differs."""
    out = run("swap_backends.py", env={"GENSTORE_URL": s3_url, "GENSTORE_CATALOG": ""})
    assert "s3://" in out and "SidecarCatalog" in out


def test_swap_backends_on_supabase(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same script on Supabase (the FAKE server of tests/fakes, the real supabase client)."""
    from fakes.supabase_server import running_fake_supabase

    with running_fake_supabase() as (fake, url):
        env = {
            "GENSTORE_URL": "supabase://examples",
            "GENSTORE_CATALOG": "",
            "SUPABASE_URL": url,
            "SUPABASE_SERVICE_ROLE_KEY": fake.service_role_key,
        }
        monkeypatch.delenv("SUPABASE_STORAGE_URL", raising=False)
        out = run("swap_backends.py", env=env)
    assert "supabase://examples" in out
