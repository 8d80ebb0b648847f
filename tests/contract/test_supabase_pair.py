"""The contract on the supabase backend + supabase catalog, against the FAKE Supabase server.

The real Storage server runs in test_supabase_real.py, but without PostgREST, so the Supabase
*catalog* is tested here against ``tests/fakes/supabase_server.py``: a fake at the HTTP boundary
that follows the real Storage server (compared with it in test_supabase_fake_vs_real.py) and the
PostgREST calls the client makes; the store talks to it through the real ``supabase`` client,
configured only by ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY``.
"""

from __future__ import annotations

from collections.abc import Iterator

import genstore
import pytest
from fakes.supabase_server import FakeSupabase, running_fake_supabase
from genstore.testing import BlobStoreContract, CatalogContract, StoreContract


@pytest.fixture(scope="module")
def supabase_server() -> Iterator[tuple[FakeSupabase, str]]:
    with running_fake_supabase() as running:
        yield running


class TestSupabasePair(StoreContract, BlobStoreContract, CatalogContract):
    @pytest.fixture
    def store_url(
        self, supabase_server: tuple[FakeSupabase, str], monkeypatch: pytest.MonkeyPatch
    ) -> str:
        fake, url = supabase_server
        fake.reset()
        monkeypatch.setenv("SUPABASE_URL", url)
        monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", fake.service_role_key)
        monkeypatch.delenv("SUPABASE_STORAGE_URL", raising=False)
        monkeypatch.delenv("GENSTORE_CATALOG", raising=False)
        return "supabase://genstore-contract"  # the supabase catalog is the default

    def test_the_pair_is_supabase_storage_and_the_supabase_catalog(
        self, store: genstore.Store, supabase_server: tuple[FakeSupabase, str]
    ) -> None:
        from genstore_adapters.supabase.blobs import SupabaseBlobStore
        from genstore_adapters.supabase.catalog import SupabaseCatalog

        assert isinstance(store.blobs, SupabaseBlobStore)
        assert isinstance(store.catalog, SupabaseCatalog)
        assert "genstore-contract" in supabase_server[0].buckets
