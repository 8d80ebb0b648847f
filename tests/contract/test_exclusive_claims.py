"""Races exactly one writer must win, on local files (SQLite catalog) and S3 (moto, sidecar and
PostgreSQL catalogs): 12 processes with one idempotency key, 16 image creates in one millisecond.
The real Supabase server runs the same races in test_supabase_real.py. Then ``Catalog.claim``
itself, which decides those races where the blob store's exclusive write is not atomic."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import genstore
import pytest
from _race import RaceContract
from genstore.plugin import Catalog


class TestLocalRaces(RaceContract):
    @pytest.fixture
    def store_url(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
        monkeypatch.delenv("GENSTORE_CATALOG", raising=False)
        return str(tmp_path / "data")


@pytest.mark.s3
class TestS3Races(RaceContract):
    @pytest.fixture
    def store_url(self, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
        monkeypatch.delenv("GENSTORE_CATALOG", raising=False)
        return s3_url


@pytest.mark.s3
@pytest.mark.postgres
class TestS3PostgresRaces(RaceContract):
    @pytest.fixture
    def store_url(self, s3_url: str, postgres_url: str) -> str:
        return f"{s3_url}&catalog={quote(postgres_url, safe='')}"


# -- Catalog.claim: the atomic mechanism the races above rely on where blobs cannot decide ------


def _racing_claims(catalog: Catalog, key: str, n: int = 16) -> list[str | None]:
    start = threading.Barrier(n)

    def claim(i: int) -> str | None:
        start.wait(30)
        return catalog.claim(key, f"value-{i}")

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(claim, range(n)))


def _check_claims(open_catalog: Callable[[str], Catalog]) -> None:
    first, second = open_catalog("store-a"), open_catalog("store-b")
    try:
        answers = _racing_claims(first, "marker:one")
        winners = [i for i, answer in enumerate(answers) if answer is None]
        assert len(winners) == 1
        assert {a for a in answers if a is not None} == {f"value-{winners[0]}"}
        first.clear()  # claims are not records: reindex cannot rebuild them, so clear keeps them
        assert first.claim("marker:one", "late") == f"value-{winners[0]}"
        assert second.claim("marker:one", "b") is None  # another store's claims stay apart
        assert first.can_claim and second.can_claim
    finally:
        first.close()
        second.close()


def test_sqlite_claims_have_one_winner_per_store_and_survive_clear(tmp_path: Path) -> None:
    from genstore_adapters.sqlite.catalog import SQLiteCatalog

    _check_claims(lambda store: SQLiteCatalog(tmp_path / "shared.sqlite3", store=store))


@pytest.mark.postgres
def test_postgres_claims_have_one_winner_per_store_and_survive_clear(postgres_url: str) -> None:
    from genstore_adapters.postgres.catalog import PostgresCatalog

    _check_claims(lambda store: PostgresCatalog(postgres_url, store=store, pool_max=16))


def test_a_marker_older_than_the_catalog_still_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With claims in the catalog, a catalog lost and rebuilt must not let a retried key make a
    second operation: the marker blob written before still names the first."""
    from genstore_adapters.local.blobs import LocalBlobStore

    data = tmp_path / "data"
    with genstore.open_store(str(data)) as store:
        first = store.save_complete_operation(operation_type="t", idempotency_key="k")
    monkeypatch.setattr(LocalBlobStore, "exclusive_writes_are_atomic", False)
    fresh = quote(f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}", safe="")
    with genstore.open_store(f"{data}?catalog={fresh}") as store:
        assert store.catalog.can_claim
        again = store.save_complete_operation(operation_type="t", idempotency_key="k")
        assert (again.operation_id, again.created) == (first.operation_id, False)
        other = store.save_complete_operation(operation_type="t", idempotency_key="k2")
        assert other.created and other.operation_id != first.operation_id
