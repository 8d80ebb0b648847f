"""Local files: a path or ``file://`` URL, with the SQLite catalog beside the files by default.
The spec is in ``hooks``; the implementation (``LocalBlobStore``) in ``blobs``."""

from __future__ import annotations
