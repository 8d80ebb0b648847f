"""``supabase://<bucket>[/prefix]``: blobs in a Supabase Storage bucket, through storage3.

Options (``?name=value``): ``public`` (``true`` makes a created bucket public and ``url_for``
answer public URLs; default private, signed URLs), ``timeout`` (seconds per request, default 30),
``deadline`` (seconds one call may spend retrying, default 15).

Streaming: ``open`` streams the download through the httpx pool the supabase client uses;
``write`` spools an iterable past 8 MiB to a temporary file (storage3 uploads bytes or a file
path, never an iterable) and httpx streams that file as the one upload request. Listing uses the
v2 list endpoint (whole keys, case-sensitive prefixes, 1,000 a page with a cursor).

Keys reach this backend already checked by ``genstore._keys.check_blob_key``, which refuses what
Supabase rewrites or refuses: storage3 decodes ``%XX``, httpx cuts at ``#`` and the server answers
``InvalidKey`` to ``~``, ``[``, ``]`` and non-ASCII. ``exclusive`` writes are not atomic here
(``exclusive_writes_are_atomic`` is False): several racing ``x-upsert: false`` uploads succeed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import IO, Any
from urllib.parse import quote

from genstore.exceptions import AlreadyExists, NotFound
from genstore.plugin import BlobInfo, BlobStore, StoreURL
from storage3.exceptions import StorageApiError

from .._retry import RetryPolicy
from .config import BackendOptions, Settings, retry_policy
from .connection import SupabaseConnection
from .errors import call
from .stream import MEMORY_LIMIT, StreamingReader, spool

__all__ = ["SupabaseBlobStore", "open_supabase"]

logger = logging.getLogger(__name__)

_PLACEHOLDER = ".emptyFolderPlaceholder"
"""What the Supabase dashboard writes to keep an empty folder: not a blob."""


class SupabaseBlobStore(BlobStore):
    """Blobs in one Supabase Storage bucket, optionally under a prefix.

    Every write is one upload request (readers see the old or the new blob, never a mix); an
    exclusive write is a check on the server, not a lock. Errors are translated through
    ``_errors``; 5xx, timeouts and dropped connections are retried within ``deadline``.
    """

    default_catalog = "supabase"
    exclusive_writes_are_atomic = False
    """``x-upsert: false`` is a check, then a write: of 32 racing uploads to one key, storage-api
    v1.70.6 let 10 to 15 succeed. genstore claims through the catalog instead."""
    list_page_size = 1000
    """Keys per v2 list request (the server's most)."""
    memory_limit = MEMORY_LIMIT
    """Uploads larger than this are spooled to a temporary file instead of memory."""

    def __init__(
        self,
        connection: SupabaseConnection,
        bucket: str,
        prefix: str = "",
        *,
        public: bool = False,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.connection = connection
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.public = public
        self.retry = retry or retry_policy()
        self.url = f"supabase://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self._files: Any = connection.storage.from_(bucket)
        self._closed = False

    # -- setup -------------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if missing (private unless ``public``); adopt an existing one's."""
        storage = self.connection.storage
        try:
            bucket = call(
                self.retry,
                lambda: storage.get_bucket(self.bucket),
                what=f"get bucket {self.bucket!r}",
            )
        except NotFound:
            try:
                call(
                    self.retry,
                    lambda: storage.create_bucket(self.bucket, options={"public": self.public}),
                    what=f"create bucket {self.bucket!r}",
                )
                logger.info("created %s Supabase bucket %r", self._kind(), self.bucket)
            except AlreadyExists:  # another process created it first
                pass
            return
        if bool(bucket.public) != self.public:
            logger.warning(
                "Supabase bucket %r exists and is %s; using it as such (URL asked for %s)",
                self.bucket,
                "public" if bucket.public else "private",
                self._kind(),
            )
            self.public = bool(bucket.public)

    def _kind(self) -> str:
        return "public" if self.public else "private"

    # -- paths -------------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _what(self, action: str, key: str) -> str:
        return f"{action} {self.url}/{key}"

    # -- BlobStore ---------------------------------------------------------------------------

    def _write(
        self, key: str, chunks: Iterable[bytes], *, content_type: str, exclusive: bool
    ) -> int:
        path = self._path(key)
        what = self._what("write", key)
        options = {
            "content-type": content_type,
            "cache-control": "3600",
            "x-upsert": "false" if exclusive else "true",
        }
        attempts = 0
        with spool(chunks, memory_limit=self.memory_limit) as payload:

            def upload() -> None:
                nonlocal attempts
                attempts += 1
                self._files.upload(path, payload.data, options)

            try:
                call(self.retry, upload, what=what, upsert=not exclusive)
            except AlreadyExists:
                # A reply lost after the server stored our upload makes the retry find it taken:
                # the same bytes there (Supabase's etag is their MD5) mean the write succeeded.
                if attempts > 1 and self._etag(path, what) == payload.md5:
                    return payload.size
                raise
            return payload.size

    def _info(self, path: str, what: str) -> dict[str, Any]:
        info: dict[str, Any] = call(self.retry, lambda: self._files.info(path), what=what)
        return info

    def _etag(self, path: str, what: str) -> str | None:
        try:
            etag = self._info(path, what).get("etag")
        except NotFound:
            return None
        return etag.strip('"') if isinstance(etag, str) else None

    def _open(self, key: str) -> IO[bytes]:
        import io

        path = self._path(key)
        what = self._what("read", key)
        http = self.connection.http
        url = (
            f"{self.connection.settings.storage_url}object/{quote(self.bucket, safe='')}/"
            + "/".join(quote(part, safe="") for part in path.split("/"))
        )

        def request() -> Any:
            response = http.send(
                http.build_request("GET", url, headers=self.connection.settings.auth_headers),
                stream=True,
            )
            if response.status_code >= 400:
                body = response.read()
                response.close()
                raise _storage_error(response.status_code, body)
            return response

        response = call(self.retry, request, what=what)
        return io.BufferedReader(StreamingReader(response, what=what), buffer_size=64 * 1024)

    def _exists(self, key: str) -> bool:
        path = self._path(key)
        try:
            self._info(path, self._what("stat", key))
        except NotFound:
            return False
        return True

    def _delete(self, key: str) -> None:
        path = self._path(key)
        # Removing a missing object answers 200 [] on Supabase: nothing to special-case.
        call(self.retry, lambda: self._files.remove([path]), what=self._what("delete", key))

    def _list(self, prefix: str) -> Iterator[BlobInfo]:
        # The v2 list answers whole keys, matched case-sensitively, 1,000 a page with a cursor.
        # The v1 list (folder by folder) cannot serve: it matches prefixes case-insensitively and
        # merges folders that differ only in case (images/alice/ and images/Alice/ list as one,
        # with names that carry no folder), so another user's files would show under a key that
        # does not exist. Every key is still checked against the exact prefix.
        remote = self._path(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        cursor: str | None = None
        while True:
            options: dict[str, Any] = {"prefix": remote, "limit": self.list_page_size}
            if cursor:
                options["cursor"] = cursor
            page = call(
                self.retry,
                lambda: self._files.list_v2(options),  # noqa: B023 - called at once
                what=f"list {self.url}/{prefix}",
            )
            for entry in page.objects:
                if not entry.name.startswith(remote):
                    continue
                key = entry.name[cut:]
                if key.startswith(".") or "/." in key or key.endswith(_PLACEHOLDER):
                    continue
                metadata = entry.metadata or {}
                size = metadata.get("size", metadata.get("contentLength", 0))
                yield BlobInfo(key, int(size or 0), entry.updated_at)
            cursor = page.nextCursor
            if not page.hasNext or not cursor:
                return

    def _url_for(self, key: str, *, expires: int) -> str | None:
        path = self._path(key)
        if self.public:
            url: str = self._files.get_public_url(path)
            return url
        signed = call(
            self.retry,
            lambda: self._files.create_signed_url(path, int(expires)),
            what=self._what("sign", key),
        )
        result: str | None = signed.get("signedURL") or signed.get("signedUrl")
        return result

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.connection.release()


def _storage_error(status: int, body: bytes) -> Exception:
    """The ``StorageApiError`` storage3 would raise for this error response."""
    import json

    try:
        parsed = json.loads(body)
        return StorageApiError(parsed["message"], parsed["error"], parsed["statusCode"])
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode("utf-8", "replace")
        return StorageApiError(f"Unable to parse error message: {text}", "InternalError", status)


def open_supabase(url: StoreURL) -> SupabaseBlobStore:
    """Open ``supabase://<bucket>[/prefix]`` (the spec's factory); the bucket is created if
    missing."""
    options = BackendOptions.from_url(url)
    connection = SupabaseConnection(Settings.from_env(need_api=False), timeout=options.timeout)
    store = SupabaseBlobStore(
        connection,
        options.bucket,
        options.prefix,
        public=options.public,
        retry=retry_policy(options.deadline),
    )
    try:
        store.ensure_bucket()
    except BaseException:
        store.close()
        raise
    return store
