"""A third-party plugin: a backend for a new URL scheme, and a hook that redacts records.

A real plugin ships as a package with an entry point in the ``genstore`` group::

    [project.entry-points.genstore]
    vault = "genstore_vault"

Here it is registered by hand so the example runs as one file:

    python examples/third_party_plugin.py
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

import genstore
from genstore.plugin import BlobInfo, BlobStore, StoreURL


class DictBlobStore(BlobStore):
    """Blobs in a dict: the smallest complete BlobStore (writes are atomic: one assignment)."""

    default_catalog = "sidecar"

    def __init__(self, url: str) -> None:
        self.url = url
        self.blobs: dict[str, bytes] = {}

    def write(
        self,
        key: str,
        chunks: Iterable[bytes],
        *,
        content_type: str = "application/octet-stream",
        exclusive: bool = False,
    ) -> int:
        if exclusive and key in self.blobs:
            raise genstore.AlreadyExists(key)
        data = b"".join(chunks)
        self.blobs[key] = data
        return len(data)

    def open(self, key: str) -> IO[bytes]:
        import io

        return io.BytesIO(self.read(key))

    def read(self, key: str) -> bytes:
        try:
            return self.blobs[key]
        except KeyError:
            raise genstore.NotFound(key) from None

    def exists(self, key: str) -> bool:
        return key in self.blobs

    def delete(self, key: str) -> None:
        self.blobs.pop(key, None)

    def list(self, prefix: str) -> Iterator[BlobInfo]:
        for key in sorted(self.blobs):
            if key.startswith(prefix):
                yield BlobInfo(key, len(self.blobs[key]))


class VaultPlugin:
    """Serves ``vault://`` and strips API keys from parameters before anything is written."""

    @genstore.hookimpl
    def genstore_open_backend(self, url: StoreURL) -> BlobStore | None:
        return DictBlobStore(url.without_options()) if url.scheme == "vault" else None

    @genstore.hookimpl
    def genstore_schemes(self) -> dict[str, str]:
        return {"vault": "an in-process dict (example plugin)"}

    @genstore.hookimpl
    def genstore_before_save(
        self, record: genstore.OperationRecord
    ) -> genstore.OperationRecord | None:
        if isinstance(record.parameters, dict) and "api_key" in record.parameters:
            params = {k: v for k, v in record.parameters.items() if k != "api_key"}
            return record.model_copy(update={"parameters": params})
        return None


def main() -> int:
    genstore.register_plugin(VaultPlugin(), name="example-vault")
    with genstore.open_store("vault://demo") as store:
        saved = store.save_complete_operation(
            operation_type="text_to_image", prompt="p", parameters={"api_key": "sk-1", "steps": 30}
        )
        print(f"{store.blobs.url}: {saved.operation_id} parameters={saved.record.parameters}")
    with genstore.open_store(tempfile.mkdtemp()) as local:  # built-in backends still work
        print(f"{local.blobs.url}: {len(local.history().items)} records")
    return 0


if __name__ == "__main__":
    sys.exit(main())
