"""The ``sqlite`` catalog: one SQLite file (WAL), next to local data by default.
The spec is in ``hooks``; the implementation in ``catalog``."""

from __future__ import annotations
