"""The PostgreSQL catalog plugin's spec (imports nothing from psycopg)."""

from __future__ import annotations

from genstore.plugin import CatalogSpec, hookimpl

__all__ = ["SPEC", "genstore_catalogs"]

SPEC = CatalogSpec(
    name="postgres",
    schemes=("postgresql", "postgres"),
    description="PostgreSQL catalog, shared by many processes "
    "(postgresql://user@host:5432/db?schema=NAME)",
    factory="genstore_adapters.postgres.catalog:open_postgres",
    extra="postgres",
)


@hookimpl
def genstore_catalogs() -> list[CatalogSpec]:
    """The PostgreSQL catalog."""
    return [SPEC]
