"""The seed's images service, served by uvicorn on 127.0.0.1:5002 with a development secret.

    GENSTORE_JWT_SECRET=change-me python examples/images_service.py
    curl -H "Authorization: Bearer $(python examples/images_service.py --token user_1)" \\
         http://127.0.0.1:5002/api/images

In production set GENSTORE_JWKS_URL to your Clerk instance's JWKS instead of a shared secret, and
run ``python -m genstore_asgi.service`` (JSON logs, settings from the environment).
"""

from __future__ import annotations

import os
import sys
import time

import genstore
import jwt
import uvicorn
from genstore_asgi.service import JWTAuthenticator, create_app


def dev_token(user_id: str, secret: str) -> str:
    """A one-hour HS256 token for ``user_id`` (development only)."""
    return jwt.encode({"sub": user_id, "exp": int(time.time()) + 3600}, secret, algorithm="HS256")


def main(argv: list[str]) -> int:
    secret = os.environ.get("GENSTORE_JWT_SECRET", "development-secret-change-me-0000")
    if len(argv) == 2 and argv[0] == "--token":
        print(dev_token(argv[1], secret))
        return 0
    with genstore.open_store() as store:
        app = create_app(store, auth=JWTAuthenticator(secret=secret))
        uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "5002")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
