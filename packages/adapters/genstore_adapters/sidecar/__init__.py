"""The ``sidecar`` catalog: no index, the JSON records themselves are listed and read.
The spec is in ``hooks``; the implementation in ``catalog``."""

from __future__ import annotations
