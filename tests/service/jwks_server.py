"""Token minting in Clerk's shape and a loopback JWKS server for the auth tests."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

CLERK_HOST = "clerk.genstore.test"
CLERK_ISSUER = f"https://{CLERK_HOST}"
AZP = "http://localhost:3000"


class SigningKey:
    """An RSA key pair with a Clerk-like ``kid`` (``ins_...``)."""

    def __init__(self, kid: str | None = None) -> None:
        self.kid = kid or f"ins_{uuid.uuid4().hex[:24]}"
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def public_pem(self) -> str:
        return (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def jwk(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**data, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, sub: str = "user_2ta6NRH0kZxG51Gcn6gCaVzJQPe", **claims: Any) -> str:
        """A session token as Clerk issues them (v2 claims), overridable claim by claim."""
        now = int(time.time())
        body = {
            "azp": AZP,
            "exp": now + 60,
            "fva": [0, -1],
            "iat": now,
            "iss": CLERK_ISSUER,
            "nbf": now - 10,
            "sid": f"sess_{uuid.uuid4().hex[:24]}",
            "sts": "active",
            "sub": sub,
            "v": 2,
        }
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        headers = {"kid": self.kid, "typ": "JWT"}
        return jwt.encode(body, self.private, algorithm="RS256", headers=headers)


class JwksServer:
    """Serves ``keys`` as a JWKS on 127.0.0.1 at any path; counts fetches; can be held back.

    ``hold()`` makes every fetch wait until ``release()``; ``fetching`` is set when one arrives.
    ``require`` is the Authorization header the server insists on (Clerk's Backend API).
    """

    def __init__(self, *keys: SigningKey, require: str | None = None) -> None:
        self.keys = list(keys)
        self.require = require
        self.fetches = 0
        self.status = 200
        self.fetching = threading.Event()
        self._open = threading.Event()
        self._open.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.fetches += 1
                server.fetching.set()
                server._open.wait(timeout=30)
                if server.require and self.headers.get("Authorization") != server.require:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
