"""The contract on local files with the PostgreSQL catalog, each test in a fresh schema."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from genstore.testing import BlobStoreContract, CatalogContract, StoreContract

pytestmark = pytest.mark.postgres


class TestLocalPostgres(StoreContract, BlobStoreContract, CatalogContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path, postgres_url: str) -> str:
        # Quoted: the catalog URL has its own query (?schema=...) inside the store URL's.
        return f"{tmp_path / 'data'}?catalog={quote(postgres_url, safe='')}"
