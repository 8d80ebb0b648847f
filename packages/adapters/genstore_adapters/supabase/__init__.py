"""genstore's Supabase plugin: blobs in Supabase Storage (``supabase://<bucket>[/prefix]``) and
the ``supabase`` catalog (PostgREST tables), both through the official ``supabase`` client.

Environment: ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY``; ``SUPABASE_STORAGE_URL`` points
at a storage server's root directly (self-hosted, no gateway). The client is imported when a store
is opened, so this module imports without the ``supabase`` extra. Apply ``migration_sql()``
(``genstore supabase-sql``) before using the catalog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genstore.plugin import hookimpl

from ._sql import migration_sql

if TYPE_CHECKING:
    from genstore._url import StoreURL
    from genstore.plugin import BlobStore, Catalog

__all__ = [
    "genstore_open_backend",
    "genstore_open_catalog",
    "genstore_schemes",
    "migration_sql",
]

SCHEME = "supabase"


@hookimpl
def genstore_open_backend(url: StoreURL) -> BlobStore | None:
    """Open ``supabase://<bucket>[/prefix]``; other schemes are not ours."""
    if url.scheme != SCHEME:
        return None
    from .backend import open_backend

    return open_backend(url)


@hookimpl
def genstore_open_catalog(url: StoreURL, blobs: BlobStore) -> Catalog | None:
    """Open the ``supabase`` catalog; other schemes are not ours."""
    if url.scheme != SCHEME:
        return None
    from .catalog import open_catalog

    return open_catalog(url, blobs)


@hookimpl
def genstore_schemes() -> dict[str, str]:
    """The scheme this plugin serves (as a backend and as a catalog)."""
    return {
        SCHEME: "Supabase Storage bucket (supabase://<bucket>[/prefix]) and the supabase "
        "catalog (tables genstore_operations/genstore_images); needs genstore[supabase]"
    }
