"""Fixtures of the middleware tests: a real store on a temporary directory (or a store URL per
backend pair), and a spy store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import genstore
import pytest

from asgi.service_process import ServiceProcess
from asgi.support import SpyStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[genstore.Store]:
    """A real store: local files and SQLite under ``tmp_path/store``, with the real recorder."""
    with genstore.open_store(tmp_path / "store") as opened:
        yield opened


@pytest.fixture
def spy() -> SpyStore:
    """A store double that only collects what the middleware submits (see asgi.support)."""
    return SpyStore()


@pytest.fixture(
    params=["local", pytest.param("s3+postgres", marks=[pytest.mark.s3, pytest.mark.postgres])]
)
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store's URL, once per backend pair: local files and SQLite, S3 (moto) and
    PostgreSQL."""
    if request.param == "local":
        return str(tmp_path / "store")
    catalog = quote(request.getfixturevalue("postgres_url"), safe="")
    return f"{request.getfixturevalue('s3_url')}&catalog={catalog}"


@pytest.fixture
def services() -> Iterator[list[ServiceProcess]]:
    """Append each service a test starts: those still running at its end are killed."""
    started: list[ServiceProcess] = []
    yield started
    for service in started:
        if service.process.poll() is None:
            service.kill()
        service.client.close()
