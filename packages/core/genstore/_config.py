"""Opening stores from URLs and environment variables; the process-wide default store."""

from __future__ import annotations

import os
import threading
from typing import Any

from ._options import StoreOptions
from ._plugins import open_backend, open_catalog
from ._records import SaveResult
from ._store import Store
from ._url import DEFAULT_URL, parse_catalog_url, parse_url
from .exceptions import ConfigurationError

__all__ = ["default_store", "open_store", "save_complete_operation", "set_default_store"]

_default: Store | None = None
_default_lock = threading.Lock()


def open_store(
    url: str | os.PathLike[str] | None = None, *, catalog: str | None = None, **options: Any
) -> Store:
    """Open a store: ``url``, else ``$GENSTORE_URL``, else ``./genstore-data`` (files + SQLite).

    The catalog is ``catalog``, else the URL's ``?catalog=``, else ``$GENSTORE_CATALOG``, else the
    backend's default (SQLite beside local files; the JSON records themselves elsewhere).
    ``options`` are ``StoreOptions`` fields (limits and timeouts).
    """
    raw = os.fspath(url) if url is not None else os.environ.get("GENSTORE_URL") or DEFAULT_URL
    parsed = parse_url(raw)
    catalog_url = (
        catalog or parsed.options.pop("catalog", None) or os.environ.get("GENSTORE_CATALOG")
    )
    try:
        store_options = StoreOptions(**options)
    except TypeError as exc:
        raise ConfigurationError(f"unknown store option: {exc}") from exc
    blobs = open_backend(parsed)
    try:
        cat = open_catalog(parse_catalog_url(catalog_url or blobs.default_catalog), blobs)
    except BaseException:
        blobs.close()
        raise
    return Store(blobs, cat, store_options)


def default_store() -> Store:
    """The process-wide store used by module-level calls (opened from the environment once)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = open_store()
        return _default


def set_default_store(store: Store | None) -> None:
    """Replace the process-wide default store (None: open from the environment next time)."""
    global _default
    with _default_lock:
        _default = store


def save_complete_operation(**kwargs: Any) -> SaveResult:
    """``Store.save_complete_operation`` on the default store: the seed guide's one call."""
    return default_store().save_complete_operation(**kwargs)
