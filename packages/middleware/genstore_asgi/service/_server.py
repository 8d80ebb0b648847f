"""Running the service: ``genstore serve`` and ``python -m genstore_asgi.service`` both call
``serve()``; each uvicorn worker builds its app with ``app_from_env()`` from the environment."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import genstore
import jwt
from genstore.exceptions import ConfigurationError
from starlette.applications import Starlette

from ._app import DEFAULT_MAX_INFLIGHT_BYTES, create_app
from ._auth import Authenticator
from ._clerk import DEV_SECRET_ENV
from ._ratelimit import limit_item

__all__ = ["JSONFormatter", "ServeOptions", "app_from_env", "dev_token", "serve"]

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None)))
DEV_USER = "user_dev"
_DEV_TOKEN_TTL = 24 * 3600


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


@dataclass(frozen=True)
class ServeOptions:
    """How to run the service; ``None`` fields fall back to the environment."""

    url: str | None = None
    catalog: str | None = None
    host: str = "127.0.0.1"
    port: int = 5002
    workers: int = 1
    dev: bool = False

    @classmethod
    def from_env(cls) -> ServeOptions:
        """HOST and PORT from the environment (``python -m genstore_asgi.service``)."""
        port = os.environ.get("PORT", "5002")
        if not port.isdigit():
            raise ConfigurationError(f"PORT must be a number, not {port!r}")
        return cls(host=os.environ.get("HOST", "127.0.0.1"), port=int(port))


def dev_token(secret: str, user_id: str = DEV_USER, ttl: int = _DEV_TOKEN_TTL) -> str:
    """A bearer token for ``user_id`` signed with the development ``secret``."""
    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + ttl}, secret, algorithm="HS256")


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    if not raw.isdigit():
        raise ConfigurationError(f"{name} must be a whole number of bytes, not {raw!r}")
    return int(raw)


def _app_options(env: Mapping[str, str]) -> dict[str, Any]:
    """``create_app``'s options from ``env``, checked (a bad value raises ConfigurationError)."""
    hosts = [h.strip() for h in env.get("GENSTORE_TRUSTED_HOSTS", "").split(",") if h.strip()]
    options: dict[str, Any] = {
        "rate_limit": env.get("GENSTORE_RATE_LIMIT") or "100/minute",
        "anonymous_rate_limit": env.get("GENSTORE_RATE_LIMIT_ANONYMOUS") or "120/minute",
        "rate_limit_storage": env.get("GENSTORE_RATE_LIMIT_STORAGE") or "memory://",
        "max_inflight_bytes": _int_env(
            env, "GENSTORE_MAX_INFLIGHT_BYTES", DEFAULT_MAX_INFLIGHT_BYTES
        ),
        "base_url": env.get("GENSTORE_BASE_URL") or None,
        "trusted_hosts": hosts,
    }
    limit_item(options["rate_limit"])
    limit_item(options["anonymous_rate_limit"])
    return options


def app_from_env(env: Mapping[str, str] = os.environ) -> Starlette:
    """The service as the environment configures it (``genstore serve --help`` lists the
    variables), over the store it names, closed at shutdown (uvicorn's app factory)."""
    options = _app_options(env)
    auth = Authenticator.from_env(env)
    secret = env.get(DEV_SECRET_ENV)
    token = dev_token(secret) if secret else None
    return create_app(
        genstore.open_store(), auth=auth, close_store=True, dev_token=token, **options
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _prepare_dev(options: ServeOptions) -> str | None:
    """Set up development auth when asked (or when none is configured); the token, or None."""
    if not options.dev and Authenticator.configured():
        return None
    if not options.dev and not _is_loopback(options.host):
        raise ConfigurationError(
            "no token verification is configured (see genstore serve --help); refusing to serve "
            f"{options.host} with a development secret unless --dev is given"
        )
    secret = os.environ.setdefault(DEV_SECRET_ENV, secrets.token_urlsafe(32))
    return dev_token(secret)


def _announce(options: ServeOptions, token: str) -> None:
    base = f"http://{options.host}:{options.port}"
    page = f"{base}/ui/"
    print(
        "genstore serve: development mode, tokens are signed with a secret made for this run\n"
        f"  token:    {token}\n"
        f"  UI:       {page}#token={token}\n"
        f"  API docs: {base}/docs",
        file=sys.stderr,
        flush=True,
    )


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JSONFormatter())
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "info").upper(), handlers=[handler])


def serve(options: ServeOptions) -> int:
    """Run uvicorn until stopped; the exit status. Store settings travel to workers by environment."""
    import uvicorn  # the server extra; imported here so the app itself does not need it

    if options.url is not None:
        os.environ["GENSTORE_URL"] = options.url
    if options.catalog is not None:
        os.environ["GENSTORE_CATALOG"] = options.catalog
    token = _prepare_dev(options)
    # Build once here so a misconfigured store or setting fails now, with exit 3, not in
    # every worker.
    _app_options(os.environ)
    Authenticator.from_env(os.environ)
    genstore.open_store().close()
    _configure_logging()
    if token is not None:
        _announce(options, token)
    uvicorn.run(
        f"{__name__}:app_from_env",
        factory=True,
        host=options.host,
        port=options.port,
        workers=options.workers,
        log_config=None,
    )
    return 0
