"""A third-party plugin: a backend for a new URL scheme, a hook that redacts records, and the
plugin's own tests, which inherit genstore's contract suites (docs/backends.md walks through it).

A real plugin ships as a package with an entry point in the ``genstore`` group::

    [project.entry-points.genstore]
    vault = "genstore_vault.hooks"

and its spec names the factory by dotted path (``"genstore_vault.blobs:open_vault"``), imported
only when a ``vault://`` URL is opened. Here everything is in one file, registered by hand:

    python examples/third_party_plugin.py          # use it
    pytest examples/third_party_plugin.py          # run genstore's contract suites on it
"""

from __future__ import annotations

import io
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO

import genstore
from genstore.plugin import BackendSpec, BlobInfo, BlobStore, StoreURL


class DictBlobStore(BlobStore):
    """Blobs in a dict: the smallest complete BlobStore (writes are atomic: one assignment).

    Keys arrive already checked by ``BlobStore``: only the implementation methods are written.
    Listings carry each blob's modification time: ``cleanup`` spares inputs younger than its grace.
    """

    default_catalog = "sidecar"

    def __init__(self, url: str) -> None:
        self.url = url
        self.blobs: dict[str, tuple[bytes, datetime]] = {}
        self.lock = threading.Lock()

    def _write(
        self, key: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        data = b"".join(chunks)  # a failing source raises here, before anything changes
        with self.lock:
            if exclusive and key in self.blobs:
                raise genstore.AlreadyExists(f"a blob already exists at {key!r}")
            self.blobs[key] = (data, datetime.now(UTC))
        return len(data)

    def _open(self, key: str) -> IO[bytes]:
        return io.BytesIO(self._read(key))

    def _read(self, key: str) -> bytes:
        try:
            return self.blobs[key][0]
        except KeyError:
            raise genstore.NotFound(f"no blob at {key!r}") from None

    def _exists(self, key: str) -> bool:
        return key in self.blobs

    def _delete(self, key: str) -> None:
        with self.lock:
            self.blobs.pop(key, None)

    def _list(self, prefix: str) -> Iterator[BlobInfo]:
        with self.lock:
            found = sorted((k, v) for k, v in self.blobs.items() if k.startswith(prefix))
        for key, (data, modified) in found:
            yield BlobInfo(key, len(data), modified)


def open_vault(url: StoreURL) -> DictBlobStore:
    """The spec's factory: ``vault://<name>`` opens an empty in-process store."""
    return DictBlobStore(url.without_options())


VAULT = BackendSpec(
    name="vault",
    schemes=("vault",),
    description="an in-process dict (example plugin)",
    factory=f"{__name__}:open_vault",
)


class VaultPlugin:
    """Declares ``vault://`` and strips API keys from parameters before anything is written."""

    @genstore.hookimpl
    def genstore_backends(self) -> list[BackendSpec]:
        return [VAULT]

    @genstore.hookimpl
    def genstore_before_save(
        self, record: genstore.OperationRecord
    ) -> genstore.OperationRecord | None:
        if isinstance(record.parameters, dict) and "api_key" in record.parameters:
            params = {k: v for k, v in record.parameters.items() if k != "api_key"}
            return record.model_copy(update={"parameters": params})
        return None


def register() -> None:
    """What the entry point does for an installed plugin."""
    genstore.register_plugin(VaultPlugin(), name="example-vault")


def main() -> int:
    register()
    with genstore.open_store("vault://demo") as store:
        saved = store.save_complete_operation(
            operation_type="text_to_image", prompt="p", parameters={"api_key": "sk-1", "steps": 30}
        )
        print(f"{store.blobs.url}: {saved.operation_id} parameters={saved.record.parameters}")
    with genstore.open_store(tempfile.mkdtemp()) as local:  # built-in backends still work
        print(f"{local.blobs.url}: {len(local.history().items)} records")
    return 0


# -- the plugin's own tests: genstore's contract suites, inherited ------------------------------

try:
    import pytest
    from genstore.testing import BlobStoreContract, CatalogContract, StoreContract
except ImportError:  # running the example without pytest installed: no tests to define
    pass
else:

    class TestVaultContract(StoreContract, BlobStoreContract, CatalogContract):
        """Every contract test, on ``vault://`` with the sidecar catalog."""

        @pytest.fixture
        def store_url(self) -> str:
            register()
            return f"vault://{uuid.uuid4().hex}"


if __name__ == "__main__":
    sys.exit(main())
