"""The contract on local files (SQLite and sidecar catalogs) and on fsspec memory:// + SQLite."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from contract import StoreContract


class TestLocalSQLite(StoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return str(tmp_path / "data")


class TestLocalSidecar(StoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"{tmp_path / 'data'}?catalog=sidecar"


class TestMemorySQLite(StoreContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"memory://{uuid.uuid4().hex}?catalog=sqlite:///{tmp_path}/catalog.sqlite3"
