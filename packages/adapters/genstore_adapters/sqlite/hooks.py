"""The SQLite catalog plugin's spec."""

from __future__ import annotations

from genstore.plugin import CatalogSpec, hookimpl

__all__ = ["SPEC", "genstore_catalogs"]

SPEC = CatalogSpec(
    name="sqlite",
    schemes=("sqlite",),
    description="embedded SQLite catalog (sqlite:///path.sqlite3; bare 'sqlite' beside local files)",
    factory="genstore_adapters.sqlite.catalog:open_sqlite",
)


@hookimpl
def genstore_catalogs() -> list[CatalogSpec]:
    """The SQLite catalog."""
    return [SPEC]
