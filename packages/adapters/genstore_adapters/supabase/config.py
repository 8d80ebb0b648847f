"""Supabase settings: secrets from the environment, behaviour from the URL's options.

Environment: ``SUPABASE_URL`` and ``SUPABASE_SERVICE_ROLE_KEY``; ``SUPABASE_STORAGE_URL`` points
at a storage server's root directly (self-hosted, no gateway). Options (``?name=value``, parsed by
the adapters' one parser): backend ``public``, ``timeout`` (seconds per request, default 30),
``deadline`` (seconds one call may spend retrying, default 15); catalog ``timeout``, ``deadline``
(default the backend's), ``max_rows``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from genstore.exceptions import ConfigurationError
from genstore.plugin import StoreURL

from .._options import UrlOptions
from .._retry import RetryPolicy

__all__ = [
    "DEFAULT_DEADLINE",
    "KEY_VAR",
    "MAX_ROWS",
    "STORAGE_URL_VAR",
    "URL_VAR",
    "BackendOptions",
    "CatalogOptions",
    "Settings",
    "retry_policy",
]

URL_VAR = "SUPABASE_URL"
KEY_VAR = "SUPABASE_SERVICE_ROLE_KEY"
STORAGE_URL_VAR = "SUPABASE_STORAGE_URL"
DEFAULT_DEADLINE = 15.0
"""Seconds one call may spend retrying transient failures."""
MAX_ROWS = 1000
"""Supabase's default ``db-max-rows``: PostgREST cuts longer answers silently, so no request asks
for more (the ``max_rows`` option lowers it for projects configured lower)."""


def retry_policy(deadline: float = DEFAULT_DEADLINE) -> RetryPolicy:
    """The shared backoff with Supabase's waits (up to 2 s: the gateway throttles in seconds)."""
    return RetryPolicy(deadline=deadline, cap=2.0)


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """``supabase://<bucket>[/prefix]?...``: where the blobs live and how requests behave."""

    bucket: str
    prefix: str
    public: bool
    timeout: float
    deadline: float

    @classmethod
    def from_url(cls, url: StoreURL) -> BackendOptions:
        """Parse the URL; unknown options are refused."""
        bucket, _, prefix = url.location.strip("/").partition("/")
        if not bucket:
            raise ConfigurationError(
                f"{url.without_options()!r}: give a bucket, as in supabase://<bucket>[/prefix]"
            )
        options = UrlOptions(url.options, "supabase://")
        options.check_known({"public", "timeout", "deadline"})
        return cls(
            bucket=bucket,
            prefix=prefix,
            public=options.flag("public"),
            timeout=options.number("timeout", 30.0),
            deadline=options.number("deadline", DEFAULT_DEADLINE),
        )


@dataclass(frozen=True, slots=True)
class CatalogOptions:
    """``supabase?...``: the catalog's request timeout, retry deadline and page size."""

    timeout: float
    deadline: float | None
    """None: the backend's deadline when sharing its connection, else ``DEFAULT_DEADLINE``."""
    max_rows: int

    @classmethod
    def from_url(cls, url: StoreURL) -> CatalogOptions:
        """Parse the catalog URL; unknown options are refused."""
        options = UrlOptions(url.options, "supabase catalog")
        options.check_known({"timeout", "deadline", "max_rows"})
        given = "deadline" in url.options
        return cls(
            timeout=options.number("timeout", 30.0),
            deadline=options.number("deadline", DEFAULT_DEADLINE) if given else None,
            max_rows=options.count("max_rows", MAX_ROWS),
        )


def _http_url(var: str, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ConfigurationError(f"{var} must be an http(s) URL, not {value[:60]!r}")
    return value.rstrip("/")


@dataclass(frozen=True, slots=True)
class Settings:
    """Where Supabase is and the key to use, read from the environment."""

    key: str
    """The service role key (sent as ``apikey`` and ``Authorization: Bearer``)."""
    api_url: str | None
    """``SUPABASE_URL`` without a trailing slash; None when only the storage root is known."""
    storage_url: str
    """The Storage root, ending in ``/``: ``SUPABASE_STORAGE_URL`` or ``<api_url>/storage/v1/``."""

    @classmethod
    def from_env(cls, *, need_api: bool) -> Settings:
        """Read the variables; ``need_api``: PostgREST is used, so ``SUPABASE_URL`` is required."""
        api = os.environ.get(URL_VAR, "").strip()
        key = os.environ.get(KEY_VAR, "").strip()
        storage = os.environ.get(STORAGE_URL_VAR, "").strip()
        missing = [name for name, value in ((URL_VAR, api), (KEY_VAR, key)) if not value]
        if URL_VAR in missing and storage and not need_api:
            missing.remove(URL_VAR)
        if missing:
            names = " and ".join(missing)
            raise ConfigurationError(
                f"Supabase needs the environment variable{'s' if len(missing) > 1 else ''} "
                f"{names} (the project URL and its service role key, from the project's API "
                f"settings; {STORAGE_URL_VAR} may replace {URL_VAR} for a storage server alone)"
            )
        api_url = _http_url(URL_VAR, api) if api else None
        storage_url = (
            _http_url(STORAGE_URL_VAR, storage) if storage else f"{api_url}/storage/v1"
        ) + "/"
        return cls(key=key, api_url=api_url, storage_url=storage_url)

    @property
    def auth_headers(self) -> dict[str, str]:
        """The headers every Supabase request carries."""
        return {"apikey": self.key, "Authorization": f"Bearer {self.key}"}
