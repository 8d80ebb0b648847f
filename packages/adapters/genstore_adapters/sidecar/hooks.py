"""The sidecar catalog plugin's spec."""

from __future__ import annotations

from genstore.plugin import CatalogSpec, hookimpl

__all__ = ["SPEC", "genstore_catalogs"]

SPEC = CatalogSpec(
    name="sidecar",
    schemes=("sidecar",),
    description="no index: list and read the JSON records (small stores)",
    factory="genstore_adapters.sidecar.catalog:open_sidecar",
)


@hookimpl
def genstore_catalogs() -> list[CatalogSpec]:
    """The sidecar catalog."""
    return [SPEC]
