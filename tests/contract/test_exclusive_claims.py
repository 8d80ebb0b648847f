"""Races exactly one writer must win, on local files (SQLite catalog) and S3 (moto, sidecar and
PostgreSQL catalogs): 12 processes with one idempotency key, 16 image creates in one millisecond.
The real Supabase server runs the same races in test_supabase_real.py."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from _race import RaceContract


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
