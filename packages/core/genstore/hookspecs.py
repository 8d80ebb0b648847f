"""The hooks a genstore plugin may implement (entry-point group ``genstore``).

Built-in backends and catalogs register through exactly these hooks, as a third-party plugin would:
they declare specs (``genstore.plugin.BackendSpec``/``CatalogSpec``) whose factories are imported
only when their scheme is opened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._records import OperationRecord
    from .plugin import BackendSpec, CatalogSpec

hookspec = pluggy.HookspecMarker("genstore")


@hookspec
def genstore_backends() -> list[BackendSpec]:  # type: ignore[empty-body]
    """Called when stores are routed and plugins listed: return the ``BackendSpec`` you serve."""


@hookspec
def genstore_catalogs() -> list[CatalogSpec]:  # type: ignore[empty-body]
    """Called when catalogs are routed and plugins listed: return the ``CatalogSpec`` you serve."""


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
