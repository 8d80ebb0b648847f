"""``genstore``: the command line (``genstore --help``).

Exit codes: 0 ok, 1 findings or failures, 2 usage, 3 store or configuration error, 4 not found.
Errors are one red line on stderr; ``GENSTORE_DEBUG=1`` shows tracebacks and debug logs.
"""

from __future__ import annotations

import logging
import os
import sys

from ._cli import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_OK, EXIT_STORE, EXIT_USAGE, app

__all__ = ["EXIT_FAILURE", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_STORE", "EXIT_USAGE", "app", "main"]


class _QuietPluginLoads(logging.Filter):
    """Plugins that fail to load are listed by ``genstore plugins`` and in unknown-scheme errors;
    a warning about them on every command would only be noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "genstore._plugins" or record.levelno >= logging.ERROR


def _configure_logging(debug: bool) -> None:
    # The CLI is an application: here, and only here, genstore's logging is configured.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("genstore: %(levelname)s: %(message)s"))
    if not debug:
        handler.addFilter(_QuietPluginLoads())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def main() -> None:
    """Entry point of the ``genstore`` script."""
    _configure_logging(bool(os.environ.get("GENSTORE_DEBUG")))
    app(prog_name="genstore")


if __name__ == "__main__":
    main()
