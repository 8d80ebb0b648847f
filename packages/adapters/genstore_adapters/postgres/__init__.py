"""The PostgreSQL catalog: records indexed in PostgreSQL through psycopg 3 and a connection pool.

Opened by URL (``postgresql://user@host:5432/db?schema=NAME``). The spec is in ``hooks``
(imported without the ``postgres`` extra); ``catalog``, ``errors`` and ``schema`` need psycopg and
are imported when a PostgreSQL catalog is opened; ``config`` parses the URL.
"""

from __future__ import annotations
