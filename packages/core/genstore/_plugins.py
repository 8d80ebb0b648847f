"""The plugin manager: built on first use, loading entry points one by one so one broken plugin
never stops the others from loading."""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs

__all__ = [
    "entry_points",
    "get_plugin_manager",
    "plugin_load_errors",
    "register_plugin",
    "unregister_plugin",
]

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
