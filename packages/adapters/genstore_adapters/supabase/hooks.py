"""The Supabase plugin's specs: the ``supabase://`` backend and the ``supabase`` catalog."""

from __future__ import annotations

from genstore.plugin import BackendSpec, CatalogSpec, hookimpl

__all__ = ["BACKEND", "CATALOG", "genstore_backends", "genstore_catalogs"]

BACKEND = BackendSpec(
    name="supabase",
    schemes=("supabase",),
    description="Supabase Storage bucket (supabase://<bucket>[/prefix]); supabase catalog by "
    "default",
    factory="genstore_adapters.supabase.blobs:open_supabase",
    extra="supabase",
)
CATALOG = CatalogSpec(
    name="supabase",
    schemes=("supabase",),
    description="tables genstore_operations/genstore_images through PostgREST "
    "(apply `genstore supabase-sql` first)",
    factory="genstore_adapters.supabase.catalog:open_supabase_catalog",
    extra="supabase",
)


@hookimpl
def genstore_backends() -> list[BackendSpec]:
    """Supabase Storage."""
    return [BACKEND]


@hookimpl
def genstore_catalogs() -> list[CatalogSpec]:
    """The Supabase catalog."""
    return [CATALOG]
