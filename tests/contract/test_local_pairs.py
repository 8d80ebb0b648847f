"""The contract suites of genstore.testing on local files (SQLite and sidecar catalogs) and on
fsspec memory:// + SQLite, inherited exactly as a third-party backend inherits them."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from genstore.testing import BlobStoreContract, CatalogContract, StoreContract


class TestLocalSQLite(StoreContract, BlobStoreContract, CatalogContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return str(tmp_path / "data")


class TestLocalSidecar(StoreContract, BlobStoreContract, CatalogContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"{tmp_path / 'data'}?catalog=sidecar"


class TestMemorySQLite(StoreContract, BlobStoreContract, CatalogContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path) -> str:
        return f"memory://{uuid.uuid4().hex}?catalog=sqlite:///{tmp_path}/catalog.sqlite3"
