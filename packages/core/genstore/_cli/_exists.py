"""Whether a store exists at a URL, found out without creating anything.

Opening a store creates what it lacks (a local folder, its SQLite catalog), which is right for
commands that write and wrong for those that only read: ``genstore history`` on a mistyped path
must say so, not leave an empty store behind. Read-only commands call ``require_store`` first.
"""

from __future__ import annotations

import os
from pathlib import Path

from .._plugins import open_backend
from .._url import DEFAULT_URL, parse_url
from ..exceptions import ConfigurationError, NotFound

__all__ = ["LOCAL_MARKERS", "require_store"]

LOCAL_MARKERS = ("operations", "images", "inputs", "catalog.sqlite3", ".tmp")
"""What a local store folder holds once any store has opened it (``.tmp`` is made on open)."""


def _no_store(where: str, why: str = "") -> ConfigurationError:
    return ConfigurationError(f"no genstore store at {where}{': ' + why if why else ''}")


def _local_store_exists(root: Path) -> bool:
    return root.is_dir() and any((root / name).exists() for name in LOCAL_MARKERS)


def require_store(url: str | None) -> None:
    """Raise ``ConfigurationError("no genstore store at …")`` unless a store exists at ``url``
    (else ``$GENSTORE_URL``, else the default); nothing is created either way.

    A local store exists when its folder holds anything a store writes; any other backend when it
    lists at least one blob (an object store holds nothing for a store that never saved). An
    unknown scheme or a missing extra raises what opening would.
    """
    raw = url or os.environ.get("GENSTORE_URL") or DEFAULT_URL
    parsed = parse_url(raw)
    if parsed.scheme == "file":
        if not _local_store_exists(parsed.path):
            raise _no_store(str(parsed.path))
        return
    blobs = open_backend(parsed)
    try:
        first = next(iter(blobs.list("")), None)
    except (ConfigurationError, NotFound) as exc:  # no such bucket, container or folder
        raise _no_store(blobs.url, str(exc)) from None
    finally:
        blobs.close()
    if first is None:
        raise _no_store(blobs.url, "it holds nothing")
