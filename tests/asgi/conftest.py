"""Fixtures of the middleware tests: a real store on a temporary directory, and a spy store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import genstore
import pytest

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
