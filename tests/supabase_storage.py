"""The real Supabase Storage server (a pytest plugin, loaded by tests/conftest.py).

``../shared/supabase-storage`` (next to the project's folder; ``GENSTORE_SUPABASE_KIT`` overrides)
holds the open-source storage-api v1.70.6 and scripts that build it from the npm registry and serve
it on 127.0.0.1. The session fixture ``supabase_storage`` builds it once into
``~/.cache/supabase-storage-v1.70.6`` (``GENSTORE_SUPABASE_BUILD`` overrides; later runs reuse
it), serves it, yields the ``export`` variables ``serve.sh`` printed, and stops it at the end.

Locally the tests are skipped with the reason when the kit, Node/npm, a compiler or PostgreSQL is
missing, or the build fails; under ``CI=true`` they fail instead (``helpers.need_server``).

    def test_x(supabase_env: RealSupabase) -> None:   # the environment points at the server
        url = f"supabase://{supabase_env.new_bucket_name()}?catalog=sqlite:///..."

There is no PostgREST here, so the Supabase *catalog* cannot run against it: tests pair the
Supabase blob store with another catalog (SQLite, PostgreSQL).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import need_server

__all__ = ["KIT", "RealSupabase"]

_ROOT = Path(__file__).resolve().parents[1]
KIT = Path(os.environ.get("GENSTORE_SUPABASE_KIT", _ROOT.parent / "shared" / "supabase-storage"))
"""The kit (``build.sh``, ``serve.sh``, ``stop.sh``, the source tarball): ``../shared`` next to
the project, or ``GENSTORE_SUPABASE_KIT``."""
BUILD = Path(
    os.environ.get("GENSTORE_SUPABASE_BUILD", Path.home() / ".cache" / "supabase-storage-v1.70.6")
)
_BUILD_TIMEOUT = 900.0
_TOOLS = ("npm", "node", "make", "g++", "python3", "psql", "createdb", "dropdb")


class RealSupabase:
    """A running storage-api: its variables and a helper to give each test a fresh bucket."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.url: str = env["SUPABASE_STORAGE_URL"]
        self.service_role_key: str = env["SUPABASE_SERVICE_ROLE_KEY"]

    def new_bucket_name(self) -> str:
        """A bucket name no test used (buckets are created by the store on open)."""
        return f"gs-{uuid.uuid4().hex[:12]}"


def _why_unavailable() -> str | None:
    """What is missing for the kit to build and serve, or None."""
    if not (KIT / "build.sh").is_file():
        return f"the Supabase Storage kit ({KIT})"
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"Supabase Storage server (missing tools: {', '.join(missing)})"
    return None


def _build() -> str | None:
    """Build (once; a built folder returns at once). The failure's one line, or None."""
    try:
        done = subprocess.run(
            [str(KIT / "build.sh"), str(BUILD)],
            capture_output=True,
            text=True,
            timeout=_BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"the Supabase Storage build took over {_BUILD_TIMEOUT:.0f} s"
    if done.returncode != 0:
        return (done.stderr.strip() or done.stdout.strip())[-300:] or "build.sh failed"
    return None


def _serve() -> tuple[dict[str, str] | None, str]:
    env = {**os.environ, "SB_WATCH_PID": str(os.getpid())}
    try:
        done = subprocess.run(
            [str(KIT / "serve.sh"), str(BUILD)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "serve.sh did not answer within 120 s"
    if done.returncode != 0:
        return None, done.stderr.strip()[-300:] or "serve.sh failed"
    variables: dict[str, str] = {}
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            variables[name] = value
    if "SUPABASE_STORAGE_URL" not in variables:
        return None, f"serve.sh printed no SUPABASE_STORAGE_URL: {done.stdout[:200]!r}"
    return variables, ""


@pytest.fixture(scope="session")
def supabase_storage() -> Iterator[RealSupabase]:
    """The real Supabase Storage server for the session (built once, cached across runs)."""
    missing = _why_unavailable()
    need_server(missing is None, missing or "")
    failure = _build()
    need_server(failure is None, f"Supabase Storage server (build failed: {failure})")
    variables, failure = _serve()
    need_server(variables is not None, f"Supabase Storage server (serve failed: {failure})")
    assert variables is not None
    try:
        yield RealSupabase(variables)
    finally:
        subprocess.run(
            [str(KIT / "stop.sh")],
            env={**os.environ, **variables},
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def supabase_env(supabase_storage: RealSupabase, monkeypatch: pytest.MonkeyPatch) -> RealSupabase:
    """The environment a Supabase blob store reads, pointing at the real server's root."""
    monkeypatch.setenv("SUPABASE_STORAGE_URL", supabase_storage.url)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", supabase_storage.service_role_key)
    monkeypatch.delenv("SUPABASE_URL", raising=False)  # no PostgREST: the catalog is elsewhere
    monkeypatch.delenv("GENSTORE_CATALOG", raising=False)
    return supabase_storage
