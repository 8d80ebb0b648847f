"""Contract suites a storage backend or catalog inherits to prove it behaves as genstore expects.

Ours and third parties' run the same tests (docs/backends.md has the walk-through)::

    import pytest
    from genstore.testing import BlobStoreContract, CatalogContract, StoreContract

    class TestMine(StoreContract, BlobStoreContract, CatalogContract):
        @pytest.fixture
        def store_url(self, tmp_path):
            return f"mine://{tmp_path}?catalog=sidecar"

Each suite opens ``genstore.open_store(store_url)`` for each test (so the backend is found through
its registered spec, as users will find it) and closes it afterwards. Override the ``store``
fixture to build the ``Store`` some other way. Everything a suite needs ships here (a loopback
file server, PNG bytes), so nothing is imported from the project's own tests. Needs pytest.
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401 - the suites are pytest classes
except ImportError as exc:  # pragma: no cover - pytest is a test-time dependency
    raise ImportError(
        "genstore.testing holds pytest suites: install pytest to use it (pip install pytest)"
    ) from exc

from ._blobs import BlobStoreContract
from ._catalog import CatalogContract
from ._store import StoreContract
from ._support import FileServer, StoreFixtures, png_bytes

__all__ = [
    "BlobStoreContract",
    "CatalogContract",
    "FileServer",
    "StoreContract",
    "StoreFixtures",
    "png_bytes",
]
