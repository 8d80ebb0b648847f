"""The contract on S3 (moto's ThreadedMotoServer on 127.0.0.1, a fresh bucket per test) with the
sidecar catalog (the default for s3://) and with the PostgreSQL catalog (a fresh schema per test),
and two S3 prefixes sharing one PostgreSQL catalog."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import genstore
import pytest
from genstore.testing import BlobStoreContract, CatalogContract, StoreContract, png_bytes

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


@pytest.mark.postgres
def test_two_s3_prefixes_on_one_postgres_catalog_stay_apart(s3_url: str, postgres_url: str) -> None:
    """Each store's history, stats, verify and reindex see and touch only its own rows."""
    catalog = quote(postgres_url, safe="")
    urls = [s3_url.replace("/store?", f"/{name}?") + f"&catalog={catalog}" for name in "ab"]
    with genstore.open_store(urls[0]) as a, genstore.open_store(urls[1]) as b:
        mine = [a.save_complete_operation(operation_type="t", prompt=f"a{i}") for i in range(3)]
        theirs = b.save_complete_operation(operation_type="t", prompt="b0", user_id="u")
        b.images.create(user_id="u", prompt="p", image_data=png_bytes(4, 4))

        def history(store: genstore.Store) -> list[str]:
            return [r.operation_id for r in store.history(limit=100).items]

        assert history(a) == [s.operation_id for s in reversed(mine)]
        assert history(b) == [theirs.operation_id]
        assert (a.stats()["operations"], a.stats()["images"]) == (3, 0)
        assert (b.stats()["operations"], b.stats()["images"]) == (1, 1)
        assert a.verify(grace=timedelta(0)).ok and b.verify(grace=timedelta(0)).ok
        a.verify(fix=True, grace=timedelta(0))  # once emptied the other store's history
        assert a.reindex().operations == 3
        assert history(b) == [theirs.operation_id]
        assert b.images.list(user_id="u").total == 1
        assert b.verify(grace=timedelta(0)).ok
        assert history(a) == [s.operation_id for s in reversed(mine)]
