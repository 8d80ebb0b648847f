"""The hooks a genstore plugin may implement (entry-point group ``genstore``).

Built-in backends and catalogs register through exactly these hooks, as a third-party plugin would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._records import OperationRecord
    from ._url import StoreURL
    from .plugin import BlobStore, Catalog

hookspec = pluggy.HookspecMarker("genstore")


@hookspec(firstresult=True)
def genstore_open_backend(url: StoreURL) -> BlobStore | None:
    """Called when a store is opened: return a BlobStore if ``url.scheme`` is yours, else None."""


@hookspec(firstresult=True)
def genstore_open_catalog(url: StoreURL, blobs: BlobStore) -> Catalog | None:
    """Called when a store is opened: return a Catalog if ``url.scheme`` is yours, else None."""


@hookspec
def genstore_schemes() -> dict[str, str]:  # type: ignore[empty-body]
    """Called to list what is available: return ``{scheme: one-line description}`` you serve."""


@hookspec
def genstore_before_save(record: OperationRecord) -> OperationRecord | None:
    """Called before a record is written, in plugin order: return a changed copy, or None to keep it."""


@hookspec
def genstore_after_save(record: OperationRecord) -> None:
    """Called after a record is committed (notify, replicate); errors are logged, never raised."""


@hookspec(firstresult=True)
def genstore_extract_results(value: object) -> list[object] | None:
    """Called with what a recorded function returned or a route answered (parsed JSON, an SDK
    object), then with each value nested in it, before the built-in shapes: return its outputs in
    order (URLs, ``data:`` URLs, bytes, paths, PIL images, binary files), ``[]`` if it is your
    shape but holds no output yet, or None if it is not your shape."""
