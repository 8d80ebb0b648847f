"""The examples run as written (each in a subprocess, on a temporary store)."""

from __future__ import annotations

import os
import re
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


# -- the third-party plugin inherits the contract suites, and docs/backends.md quotes it --------

DOCS = Path(__file__).parents[2] / "docs" / "backends.md"


def test_third_party_plugin_passes_the_contract_suites_as_a_third_party_runs_them() -> None:
    """pytest on the example file alone: no conftest, no helper from tests/, only genstore.testing."""
    from genstore.testing import BlobStoreContract, CatalogContract, StoreContract

    expected = {
        name
        for suite in (StoreContract, BlobStoreContract, CatalogContract)
        for name in dir(suite)
        if name.startswith("test_")
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(EXAMPLES / "third_party_plugin.py"),
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            "--rootdir",
            str(EXAMPLES),
            "-c",
            os.devnull,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=EXAMPLES,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"{len(expected)} passed" in done.stdout


def _python_blocks(markdown: str) -> list[str]:
    blocks: list[str] = []
    current: list[str] = []
    inside = False
    for line in markdown.splitlines():
        if line.strip() == "```python" and not inside:
            inside, current = True, []
        elif line.strip() == "```" and inside:
            inside = False
            blocks.append("\n".join(current))
        elif inside:
            current.append(line)
    return blocks


def test_the_backend_guide_quotes_the_example_verbatim() -> None:
    example = (EXAMPLES / "third_party_plugin.py").read_text()
    blocks = _python_blocks(DOCS.read_text())
    assert len(blocks) >= 5
    # Compared as code, not as layout: a method quoted at the left margin fits on a line that
    # ruff splits inside its class (both files are formatted by ruff, with its line length).
    for block in blocks:
        assert _as_code(block) in _as_code(example), f"no longer in the example:\n{block}"


def _as_code(text: str) -> str:
    spaced = re.sub(r"\s+", " ", text)
    return re.sub(r"\( ", "(", re.sub(r" \)", ")", spaced))


def test_the_backend_guide_names_every_method_a_backend_implements() -> None:
    from genstore.plugin import BlobStore, Catalog

    text = DOCS.read_text()
    for name in BlobStore.__abstractmethods__ | {"_read", "_url_for"}:
        assert f"`{name}(" in text, name
    for name in ("local_root", "sweep_temporaries", "close"):
        assert callable(getattr(BlobStore, name)) and f"`{name}(" in text, name
    for name in Catalog.__abstractmethods__:
        assert f"`{name}" in text, name
    assert "12 methods" in text and len(Catalog.__abstractmethods__) == 12
