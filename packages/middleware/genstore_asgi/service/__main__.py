"""``python -m genstore_asgi.service``: serve the images API with uvicorn and JSON logs.

Settings come from the environment only (``--help`` lists them); this is ``genstore serve``
without the command line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from genstore.exceptions import GenstoreError

from ._server import ServeOptions, serve
from ._settings import environment_help

_USAGE = "usage: python -m genstore_asgi.service   (or: genstore serve --help)"


def main(argv: Sequence[str] = ()) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(f"{_USAGE}\n\n{environment_help()}")
        return 0
    if argv:
        print(f"{_USAGE}\nunexpected arguments: {' '.join(argv)}", file=sys.stderr)
        return 2
    try:
        return serve(ServeOptions.from_env())
    except GenstoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
