"""The local-files plugin's spec."""

from __future__ import annotations

from genstore.plugin import BackendSpec, hookimpl

__all__ = ["SPEC", "genstore_backends"]

SPEC = BackendSpec(
    name="local",
    schemes=("file", "local"),
    description="local files (a path or file:// URL); SQLite catalog beside them by default",
    factory="genstore_adapters.local.blobs:open_local",
)


@hookimpl
def genstore_backends() -> list[BackendSpec]:
    """Local files."""
    return [SPEC]
