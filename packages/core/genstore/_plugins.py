"""The plugin manager and the spec registry.

The manager is built on first use, loading entry points one by one so one broken plugin never
stops the others from loading. Backends and catalogs are found through the specs plugins declare
(``genstore_backends``/``genstore_catalogs``), fsspec-registry style: a scheme maps to a
``"module:callable"`` factory imported only when that scheme is opened, and an ``ImportError``
there becomes ``MissingDependency`` naming the spec's extra. Routing, ``genstore plugins`` and
install hints all read the same specs, so they cannot disagree.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import pluggy

from . import hookspecs
from ._url import StoreURL
from .exceptions import ConfigurationError, MissingDependency
from .plugin import BackendSpec, BlobStore, Catalog, CatalogSpec

__all__ = [
    "Registered",
    "backend_candidates",
    "backend_specs",
    "catalog_specs",
    "entry_points",
    "get_plugin_manager",
    "load_factory",
    "open_backend",
    "open_catalog",
    "plugin_load_errors",
    "register_plugin",
    "unregister_plugin",
]

SpecT = TypeVar("SpecT", BackendSpec, CatalogSpec)

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_manager: pluggy.PluginManager | None = None
_load_errors: dict[str, str] = {}


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every ``genstore`` entry point that loads."""
    global _manager
    with _lock:
        if _manager is None:
            pm = pluggy.PluginManager("genstore")
            pm.add_hookspecs(hookspecs)
            for ep in entry_points(group="genstore"):
                if pm.has_plugin(ep.name):
                    continue
                try:
                    pm.register(ep.load(), name=ep.name)
                except Exception as exc:  # a broken plugin must not break the others
                    _load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                    logger.warning("genstore plugin %r failed to load: %s", ep.name, exc)
            _manager = pm
        return _manager


def register_plugin(plugin: Any, name: str | None = None) -> None:
    """Register a plugin object or module by hand (tests, apps that do not use entry points)."""
    pm = get_plugin_manager()
    if name is not None and pm.has_plugin(name):
        pm.unregister(name=name)
    pm.register(plugin, name=name)


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered by name (missing is fine)."""
    pm = get_plugin_manager()
    if pm.has_plugin(name):
        pm.unregister(name=name)


def plugin_load_errors() -> dict[str, str]:
    """Entry points that failed to load, with why."""
    get_plugin_manager()
    return dict(_load_errors)


@dataclass(frozen=True, slots=True)
class Registered(Generic[SpecT]):
    """The specs one hook returned, in routing order, and the plugins whose hook failed."""

    specs: list[tuple[str, SpecT]]
    """``(plugin name, spec)``: a plugin registered later comes first, so it can override."""
    failed: dict[str, str]
    """Plugin name -> why its hook raised or returned something that is not a spec."""


def _collect(hook_name: str, kind: type[SpecT]) -> Registered[SpecT]:
    hook = getattr(get_plugin_manager().hook, hook_name)
    specs: list[tuple[str, SpecT]] = []
    failed: dict[str, str] = {}
    # pluggy calls the latest registered first: so do we, so an app's own plugin wins.
    for impl in reversed(hook.get_hookimpls()):
        try:
            served = list(impl.function())
            bad = [s for s in served if not isinstance(s, kind)]
            if bad:
                raise TypeError(f"returned {type(bad[0]).__name__}, not {kind.__name__}")
        except Exception as exc:  # a broken plugin must not hide the others
            failed[impl.plugin_name] = f"{hook_name}: {type(exc).__name__}: {exc}"
            logger.warning("genstore plugin %r: %s failed: %s", impl.plugin_name, hook_name, exc)
            continue
        specs.extend((impl.plugin_name, spec) for spec in served)
    return Registered(specs, failed)


def backend_specs() -> Registered[BackendSpec]:
    """Every declared blob-store spec, in routing order."""
    return _collect("genstore_backends", BackendSpec)


def catalog_specs() -> Registered[CatalogSpec]:
    """Every declared catalog spec, in routing order."""
    return _collect("genstore_catalogs", CatalogSpec)


def load_factory(spec: BackendSpec | CatalogSpec, scheme: str) -> Callable[..., Any]:
    """The spec's factory, imported now; ``MissingDependency`` naming ``spec.extra`` when a
    library it needs is missing, ``ConfigurationError`` when the plugin itself is broken."""
    if callable(spec.factory):
        return spec.factory
    module_name, _, attribute = spec.factory.partition(":")
    what = f"the {scheme}:// {'catalog' if isinstance(spec, CatalogSpec) else 'backend'}"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or ""
        own = missing and module_name.split(".")[0] == missing.split(".")[0]
        if spec.extra is None or own:
            raise ConfigurationError(
                f"{what} of plugin {spec.name!r} cannot be imported ({spec.factory}): {exc}"
            ) from exc
        raise MissingDependency(what, extra=spec.extra, package=missing or module_name) from exc
    factory = getattr(module, attribute, None) if attribute else None
    if not callable(factory):
        raise ConfigurationError(
            f"{what} of plugin {spec.name!r}: {spec.factory!r} is not a 'module:callable' path"
        )
    return factory  # type: ignore[no-any-return]


def backend_candidates(scheme: str, registered: Registered[BackendSpec]) -> list[BackendSpec]:
    """The specs ``open_backend`` tries for ``scheme``, in order: the first declaring it, else
    every catch-all spec."""
    exact = [spec for _, spec in registered.specs if scheme in spec.schemes]
    return exact[:1] or [spec for _, spec in registered.specs if spec.catch_all]


def open_backend(url: StoreURL) -> BlobStore:
    """The blob store for ``url``, from the first spec declaring its scheme (else a catch-all)."""
    registered = backend_specs()
    for spec in backend_candidates(url.scheme, registered):
        blobs = load_factory(spec, url.scheme)(url)
        if blobs is not None:
            if not isinstance(blobs, BlobStore):
                raise ConfigurationError(f"plugin {spec.name!r} did not return a BlobStore")
            return blobs
    known = {s for _, spec in registered.specs for s in spec.schemes}
    raise ConfigurationError(_unknown("store", url.scheme, known, registered.failed))


def open_catalog(url: StoreURL, blobs: BlobStore) -> Catalog:
    """The catalog for ``url`` (a catalog URL), indexing ``blobs``."""
    registered = catalog_specs()
    for _, spec in registered.specs:
        if url.scheme in spec.schemes:
            catalog = load_factory(spec, url.scheme)(url, blobs)
            if not isinstance(catalog, Catalog):
                raise ConfigurationError(f"plugin {spec.name!r} did not return a Catalog")
            return catalog
    known = {s for _, spec in registered.specs for s in spec.schemes}
    raise ConfigurationError(_unknown("catalog", url.scheme, known, registered.failed))


def _unknown(what: str, scheme: str, known: set[str], failed: dict[str, str]) -> str:
    message = f"no {what} plugin serves the scheme {scheme!r}; known: {', '.join(sorted(known))}"
    errors = {**plugin_load_errors(), **failed}
    if errors:
        message += "; plugins that failed to load: " + ", ".join(sorted(errors))
    return message
