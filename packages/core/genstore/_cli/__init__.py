"""The ``genstore`` command line, one module per group of commands (``genstore.cli`` runs it)."""

from __future__ import annotations

from . import _demo, _extras, _reading, _serve, _upkeep  # noqa: F401 - each registers its commands
from ._app import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_OK, EXIT_STORE, EXIT_USAGE, app

__all__ = ["EXIT_FAILURE", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_STORE", "EXIT_USAGE", "app"]
