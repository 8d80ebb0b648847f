"""The contract on S3 (moto's ThreadedMotoServer on 127.0.0.1, a fresh bucket per test) with the
sidecar catalog (the default for s3://) and with the PostgreSQL catalog (a fresh schema per test)."""

from __future__ import annotations

from urllib.parse import quote

import genstore
import pytest
from genstore.testing import BlobStoreContract, CatalogContract, StoreContract

pytestmark = pytest.mark.s3


class TestS3Sidecar(StoreContract, BlobStoreContract, CatalogContract):
    @pytest.fixture
    def store_url(self, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
        monkeypatch.delenv("GENSTORE_CATALOG", raising=False)
        return s3_url

    def test_the_pair_is_s3_and_the_sidecar_catalog(self, store: genstore.Store) -> None:
        assert type(store.blobs).__name__ == "S3BlobStore"
        assert type(store.catalog).__name__ == "SidecarCatalog"


@pytest.mark.postgres
class TestS3Postgres(StoreContract, BlobStoreContract, CatalogContract):
    @pytest.fixture
    def store_url(self, s3_url: str, postgres_url: str) -> str:
        # Quoted: the catalog URL has its own query (?schema=...) inside the store URL's.
        return f"{s3_url}&catalog={quote(postgres_url, safe='')}"

    def test_the_pair_is_s3_and_the_postgres_catalog(self, store: genstore.Store) -> None:
        assert type(store.blobs).__name__ == "S3BlobStore"
        assert type(store.catalog).__name__ == "PostgresCatalog"
