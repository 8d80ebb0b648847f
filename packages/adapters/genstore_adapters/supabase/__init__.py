"""genstore's Supabase plugin: blobs in Supabase Storage (``supabase://<bucket>[/prefix]``) and
the ``supabase`` catalog (PostgREST tables), both through the official ``supabase`` client.

Environment: ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY``; ``SUPABASE_STORAGE_URL`` points
at a storage server's root directly (self-hosted, no gateway). The specs are in ``hooks``; the
client is imported by ``connection`` when a store is opened, so this package imports without the
``supabase`` extra. Apply ``migration_sql()`` (``genstore supabase-sql``) before using the catalog.
"""

from __future__ import annotations

from .sql import migration_sql

__all__ = ["migration_sql"]
