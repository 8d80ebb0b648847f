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
``InvalidKey`` to ``~``, ``[``, ``]`` and non-ASCII. An ``exclusive`` write is not an
``x-upsert: false`` upload (several racing ones succeed on the real server) but an upload to a
hidden temporary (``.tmp/``) moved onto the key: exactly one racing move wins.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
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

_TEMPORARIES = ".tmp"
"""Hidden folder (under the prefix) of exclusive writes' temporaries: never listed."""
_PLACEHOLDER = ".emptyFolderPlaceholder"
"""What the Supabase dashboard writes to keep an empty folder: not a blob."""


class SupabaseBlobStore(BlobStore):
    """Blobs in one Supabase Storage bucket, optionally under a prefix.

    Every write is one upload request (readers see the old or the new blob, never a mix); an
    exclusive one is an upload and a move (atomic). Errors are translated through
    ``_errors``; 5xx, timeouts and dropped connections are retried within ``deadline``.
    """

    default_catalog = "supabase"
    exclusive_writes_are_atomic = True
    """An exclusive write uploads a hidden temporary and moves it onto the key: the move is
    decided by the database's unique index (``x-upsert: false`` alone is not atomic)."""
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
        what = self._what("write", key)
        with spool(chunks, memory_limit=self.memory_limit) as payload:
            if not exclusive:
                self._upload(self._path(key), payload, content_type, what)
                return payload.size
            # x-upsert: false is a check before the upload, not a lock: of 32 racing uploads to
            # one key, storage-api v1.70.6 let 10 to 15 succeed. A move renames the object's
            # row, and the database's unique index on names lets exactly one racing move win.
            temporary = self._path(f"{_TEMPORARIES}/{uuid.uuid4().hex}")
            self._upload(temporary, payload, content_type, what)
            try:
                self._move(temporary, self._path(key), payload.md5, what)
            except BaseException:
                self._discard(temporary)
                raise
            return payload.size

    def _upload(self, path: str, payload: Any, content_type: str, what: str) -> None:
        options = {"content-type": content_type, "cache-control": "3600", "x-upsert": "true"}
        call(self.retry, lambda: self._files.upload(path, payload.data, options), what=what)

    def _move(self, source: str, path: str, md5: str, what: str) -> None:
        attempts = 0

        def move() -> None:
            nonlocal attempts
            attempts += 1
            self._files.move(source, path)

        try:
            call(self.retry, move, what=what, upsert=False)
        except (AlreadyExists, NotFound):
            # A reply lost after the server moved our temporary makes the retry find the key
            # taken (or the temporary gone): our bytes there (the etag is their MD5) mean success.
            if attempts > 1 and self._etag(path, what) == md5:
                return
            raise

    def _discard(self, path: str) -> None:
        try:
            self._files.remove([path])
        except Exception:  # swept later by sweep_temporaries
            logger.warning("could not remove the temporary %s/%s", self.url, path)

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
        for entry in self._objects(remote, what=f"list {self.url}/{prefix}"):
            key = entry.name[cut:]
            if key.startswith(".") or "/." in key or key.endswith(_PLACEHOLDER):
                continue
            metadata = entry.metadata or {}
            size = metadata.get("size", metadata.get("contentLength", 0))
            yield BlobInfo(key, int(size or 0), entry.updated_at)

    def _objects(self, remote: str, *, what: str) -> Iterator[Any]:
        """Every object whose full name starts with ``remote`` (v2 list entries), by name."""
        cursor: str | None = None
        while True:
            options: dict[str, Any] = {"prefix": remote, "limit": self.list_page_size}
            if cursor:
                options["cursor"] = cursor
            page = call(self.retry, lambda: self._files.list_v2(options), what=what)  # noqa: B023
            yield from (entry for entry in page.objects if entry.name.startswith(remote))
            cursor = page.nextCursor
            if not page.hasNext or not cursor:
                return

    def sweep_temporaries(self, older_than: float = 3600.0) -> int:
        """Remove the temporaries of exclusive writes that a killed process left behind."""
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        remote = self._path(f"{_TEMPORARIES}/")
        stale = [
            entry.name
            for entry in self._objects(remote, what=f"sweep {self.url}/{_TEMPORARIES}")
            if entry.updated_at < cutoff
        ]
        for start in range(0, len(stale), 100):
            batch = stale[start : start + 100]
            call(self.retry, lambda: self._files.remove(batch), what=f"sweep {self.url}")  # noqa: B023
        return len(stale)

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
