"""The PostgreSQL catalog plugin: ``postgresql://user@host/db?schema=NAME`` (extra ``postgres``).

Registered through the ``genstore`` entry point ``postgres``. Importing this module never needs
psycopg: it is imported when a catalog is opened, and its absence is a ``MissingDependency``
naming the extra to install. The implementation lives in ``genstore_adapters.postgres``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from genstore.exceptions import MissingDependency
from genstore.plugin import hookimpl

if TYPE_CHECKING:
    from genstore._url import StoreURL
    from genstore.plugin import Catalog

    from .postgres._catalog import PostgresCatalog

__all__ = ["genstore_open_catalog", "genstore_schemes", "open_postgres_catalog"]

_SCHEMES = frozenset({"postgresql", "postgres"})


def _catalog_class() -> type[PostgresCatalog]:
    try:
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            "the PostgreSQL catalog", extra="postgres", package="psycopg"
        ) from exc
    from .postgres._catalog import PostgresCatalog

    return PostgresCatalog


def open_postgres_catalog(url: str, **options: object) -> PostgresCatalog:
    """A ``PostgresCatalog`` for ``url``; ``options`` as its keyword arguments (``schema``...)."""
    return _catalog_class()(url, **options)  # type: ignore[arg-type]


@hookimpl
def genstore_open_catalog(url: StoreURL) -> Catalog | None:
    """A PostgreSQL catalog for ``postgresql://`` and ``postgres://`` URLs, else None."""
    if url.scheme not in _SCHEMES:
        return None
    return _catalog_class()(url.raw)


@hookimpl
def genstore_schemes() -> dict[str, str]:
    """The catalog scheme this plugin serves."""
    return {
        "postgresql": "PostgreSQL catalog, shared by many processes "
        "(postgresql://user@host:5432/db?schema=NAME; extra 'postgres')"
    }
