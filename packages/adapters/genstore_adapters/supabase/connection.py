"""One HTTP connection pool shared by the backend and catalog, and the clients over it.

Importing this module imports the ``supabase`` client (httpx, storage3, postgrest): the spec's
factories import it when a ``supabase`` URL is opened, so a missing extra is reported by the
registry as ``MissingDependency`` naming ``genstore[supabase]``, never when the plugin loads.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import postgrest  # noqa: F401 - imported now so a missing extra shows when the store opens
import storage3
import supabase
from genstore.exceptions import ConfigurationError
from supabase.lib.client_options import SyncClientOptions

from .config import URL_VAR, Settings

__all__ = ["SupabaseConnection"]


class SupabaseConnection:
    """An httpx pool and the storage3/postgrest clients over it; closed when its last user releases.

    With ``SUPABASE_STORAGE_URL`` set, Storage is reached with storage3's ``SyncStorageClient``
    at that root directly (a self-hosted storage server has no gateway); PostgREST still goes
    through ``SUPABASE_URL``.
    """

    def __init__(self, settings: Settings, *, timeout: float) -> None:
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
                self._client = supabase.create_client(
                    self.settings.api_url, self.settings.key, options
                )
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
                    self._storage = storage3.SyncStorageClient(
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
