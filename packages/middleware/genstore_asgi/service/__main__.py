"""``python -m genstore_asgi.service``: serve the images API with uvicorn and JSON logs.

Settings come from the environment (``genstore serve --help`` lists them); this is
``genstore serve`` without the command line.
"""

from __future__ import annotations

import sys

from genstore.exceptions import GenstoreError

from ._server import ServeOptions, serve


def main() -> int:
    try:
        return serve(ServeOptions.from_env())
    except GenstoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
