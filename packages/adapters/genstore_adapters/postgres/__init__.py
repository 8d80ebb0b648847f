"""The PostgreSQL catalog: records indexed in PostgreSQL through psycopg 3 and a connection pool.

Opened by URL (``postgresql://user@host:5432/db?schema=NAME``) through the hooks in
``genstore_adapters.postgres_catalog``. This package's ``__init__`` imports nothing from psycopg, so
the settings parser stays importable without the ``postgres`` extra; ``_catalog`` needs it.
"""

from __future__ import annotations
