"""Fixtures shared by the whole test tree."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from helpers import FileServer, need_server

pytest_plugins: list[str] = ["s3_fixtures", "provider_clients", "supabase_storage"]


@pytest.fixture(autouse=True)
def _state_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spools (under the user's state directory) land in a fresh folder per test, never in the
    developer's home; child processes inherit it."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    monkeypatch.delenv("GENSTORE_SPOOL_DIR", raising=False)


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A loopback HTTP server to serve provider result URLs."""
    server = FileServer()
    yield server
    server.close()


PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_DSN, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL catalog URL whose tables live in a fresh schema, dropped afterwards."""
    need_server(_pg_available(), "PostgreSQL on 127.0.0.1:5432")
    import psycopg

    schema = f"gs_{uuid.uuid4().hex[:12]}"
    yield f"{PG_DSN}?schema={schema}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
