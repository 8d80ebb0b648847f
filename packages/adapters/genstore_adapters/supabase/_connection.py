"""Settings from the environment, and one HTTP connection pool shared by the backend and catalog.

The ``supabase`` client (storage3 + postgrest) is imported here, lazily: a missing extra gives a
``MissingDependency`` when a store is opened, never when the plugin module is imported.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genstore.exceptions import ConfigurationError, MissingDependency

if TYPE_CHECKING:
    import httpx

__all__ = ["Settings", "SupabaseConnection", "require_client"]

URL_VAR = "SUPABASE_URL"
KEY_VAR = "SUPABASE_SERVICE_ROLE_KEY"
STORAGE_URL_VAR = "SUPABASE_STORAGE_URL"


def require_client() -> None:
    """Raise ``MissingDependency`` unless the ``supabase`` client and its parts import."""
    try:
        import httpx  # noqa: F401
        import postgrest  # noqa: F401
        import storage3  # noqa: F401
        import supabase  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            "the Supabase backend", extra="supabase", package="supabase"
        ) from exc


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


class SupabaseConnection:
    """An httpx pool and the storage3/postgrest clients over it; closed when its last user releases.

    With ``SUPABASE_STORAGE_URL`` set, Storage is reached with storage3's ``SyncStorageClient``
    at that root directly (a self-hosted storage server has no gateway); PostgREST still goes
    through ``SUPABASE_URL``.
    """

    def __init__(self, settings: Settings, *, timeout: float) -> None:
        require_client()
        import httpx

        self.settings = settings
        self.http: httpx.Client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=True,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self._lock = threading.Lock()
        self._users = 1
        self._client: Any = None
        self._storage: Any = None

    def acquire(self) -> SupabaseConnection:
        """Count one more user (a catalog sharing the backend's pool)."""
        with self._lock:
            if self._users <= 0:
                raise ConfigurationError("this Supabase connection is already closed")
            self._users += 1
        return self

    def release(self) -> None:
        """Drop one user; the last one closes the pool."""
        with self._lock:
            self._users -= 1
            last = self._users == 0
        if last:
            self.http.close()

    def _supabase(self) -> Any:
        if self._client is None:
            from supabase import create_client
            from supabase.lib.client_options import SyncClientOptions

            if self.settings.api_url is None:
                raise ConfigurationError(
                    f"the Supabase catalog needs the environment variable {URL_VAR}"
                )
            options = SyncClientOptions(
                httpx_client=self.http,
                # Our own retry (with a deadline, for writes too) replaces postgrest's, which
                # sleeps whole seconds and only covers GET.
                postgrest_client_retry=False,
                auto_refresh_token=False,
                persist_session=False,
            )
            try:
                self._client = create_client(self.settings.api_url, self.settings.key, options)
            except Exception as exc:  # supabase.SupabaseException: bad URL or key
                raise ConfigurationError(f"cannot create the Supabase client: {exc}") from exc
        return self._client

    @property
    def storage(self) -> Any:
        """The storage3 ``SyncStorageClient``."""
        with self._lock:
            if self._storage is None:
                if self.settings.api_url is not None and self.settings.storage_url == (
                    f"{self.settings.api_url}/storage/v1/"
                ):
                    self._storage = self._supabase().storage
                else:
                    from storage3 import SyncStorageClient

                    self._storage = SyncStorageClient(
                        url=self.settings.storage_url,
                        headers=self.settings.auth_headers,
                        http_client=self.http,
                    )
            return self._storage

    def table(self, name: str) -> Any:
        """A postgrest request builder for table ``name`` (``client.table(name)``)."""
        with self._lock:
            client = self._supabase()
        return client.table(name)
