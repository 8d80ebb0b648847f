"""``python -m genstore_asgi.service``: serve the images API with uvicorn and JSON logs.

Settings: GENSTORE_URL / GENSTORE_CATALOG (the store), GENSTORE_JWT_SECRET or _PUBLIC_KEY or
GENSTORE_JWKS_URL (auth), HOST (127.0.0.1), PORT (5002, as the seed), LOG_LEVEL (info).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

import genstore
from genstore.exceptions import GenstoreError

from ._app import create_app

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))


class JSONFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def main() -> int:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JSONFormatter())
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "info").upper(), handlers=[handler])
    try:
        import uvicorn
    except ImportError:
        print("the images service needs uvicorn: pip install 'genstore[server]'", file=sys.stderr)
        return 3
    try:
        store = genstore.open_store()
        app = create_app(store)
    except GenstoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    try:
        uvicorn.run(
            app,
            host=os.environ.get("HOST", "127.0.0.1"),
            port=int(os.environ.get("PORT", "5002")),
            log_config=None,
        )
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
