"""User images, as the images service of the seed keeps them: create, list, get, delete, status.

Layout (``genstore._keys``)::

    images/<user_id>/<ts>_generated_<ts>[-n].png    the PNG, created exclusively (``_claims``)
    images/<user_id>/<image_id>.json                the record: written last, the commit point

Decisions a caller may rely on:

- A user only ever reaches their own images: another user's image is ``NotFound``, exactly as a
  missing one, and never shows in their listing.
- ``list`` without ``status`` leaves out images whose status is ``deleted`` (the seed's soft
  delete, set with ``update_status``); ask for ``status="deleted"`` to see them.
- ``image_url`` is never stored (signed URLs expire and are bearer secrets); it is made afresh,
  with ``url_expires`` seconds of life, each time a record is returned.
- Once the record is written the image is saved: a catalog that fails afterwards is logged, not
  raised (``verify --fix`` or ``reindex`` indexes the record), so a retry never stores it twice.
"""

from __future__ import annotations

import builtins
import hashlib
import heapq
import logging
import time
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Protocol

from pydantic import JsonValue, ValidationError

from ._claims import claim_blob
from ._ids import check_id, new_image_id
from ._keys import IMAGES_PREFIX, image_blob_key, image_record_key, parse_key
from ._records import ImageRecord, ImageStatus, OperationRecord, Page
from ._sniff import extension_for
from ._validation import (
    IMAGE_TYPES,
    check_image,
    check_metadata,
    check_status,
    decode_image_data,
    sanitize_prompt,
)
from .exceptions import (
    AlreadyExists,
    ConfigurationError,
    CorruptRecord,
    GenstoreError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
)
from .plugin import BlobStore, Catalog

__all__ = ["MAX_PAGE_SIZE", "ImagesAPI", "OperationReader"]

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
"""Largest ``limit`` accepted by ``ImagesAPI.list``."""

_MAX_SUFFIX = 100
"""How many ``-<n>`` suffixes are tried when PNG names clash within one millisecond."""

_LISTED_BY_DEFAULT = tuple(s for s in ImageStatus if s is not ImageStatus.DELETED)


def _now_ms() -> int:
    """Milliseconds since the epoch: the seed's ``Date.now()`` (tests replace this clock)."""
    return time.time_ns() // 1_000_000


def _sort_key(record: ImageRecord) -> tuple[datetime, str]:
    return record.created_at, record.image_id


class OperationReader(Protocol):
    """Where ``create_from_operation`` reads operations (a ``Store``)."""

    def get_operation(self, operation_id: str) -> OperationRecord:
        """The operation; ``NotFound`` if there is none."""
        ...


class ImagesAPI:
    """A user's images on one ``BlobStore``, indexed by one ``Catalog`` (``store.images``).

    Every method takes the owner's ``user_id`` and raises only ``genstore.exceptions`` errors:
    ``InvalidInput`` (unsafe ids, bad data, unknown status), ``PayloadTooLarge``, ``NotFound``,
    ``BackendUnavailable``.
    """

    def __init__(
        self,
        blobs: BlobStore,
        catalog: Catalog,
        *,
        max_image_bytes: int = 10 * 1024 * 1024,
        max_prompt_length: int = 2000,
        max_pixels: int = 50_000_000,
        url_expires: int = 3600,
        accepted_image_types: Collection[str] = ("image/png",),
        operations: OperationReader | None = None,
    ) -> None:
        unknown = set(accepted_image_types) - IMAGE_TYPES.keys()
        if unknown or not accepted_image_types:
            raise ConfigurationError(
                f"accepted_image_types must be among {sorted(IMAGE_TYPES)}, not {sorted(unknown)}"
            )
        self.blobs = blobs
        self.catalog = catalog
        self.accepted_image_types = frozenset(accepted_image_types)
        self._operations = operations
        self.max_image_bytes = max_image_bytes
        self.max_prompt_length = max_prompt_length
        self.max_pixels = max_pixels
        self.url_expires = url_expires

    # -- writing --------------------------------------------------------------------------------

    def create(
        self,
        *,
        user_id: str,
        prompt: str,
        image_data: str | bytes | bytearray | memoryview,
        metadata: dict[str, JsonValue] | None = None,
    ) -> ImageRecord:
        """Store a user's PNG and its record; return the record (with a fresh ``image_url``).

        ``image_data``: base64 text (a ``data:image/png;base64,`` prefix, URL-safe alphabet, line
        breaks and missing padding are all fine) or the PNG bytes. Checked before anything is
        written: ``user_id`` safe in a key, prompt cleaned (control characters removed, at most
        ``max_prompt_length`` characters), metadata a JSON object, size at most
        ``max_image_bytes`` (``PayloadTooLarge``, judged before decoding), PNG only, at most
        ``max_pixels`` pixels. ``metadata`` is kept as given, with ``width``/``height`` filled
        from the PNG when absent.
        """
        check_id(user_id, "user_id")
        clean_prompt = sanitize_prompt(prompt, max_length=self.max_prompt_length)
        meta = check_metadata(metadata)
        data = decode_image_data(image_data, max_bytes=self.max_image_bytes)
        return self._create(user_id, clean_prompt, data, meta, operation_id=None)

    def create_from_operation(
        self,
        *,
        user_id: str,
        operation_id: str,
        index: int = 0,
        prompt: str | None = None,
        metadata: dict[str, JsonValue] | None = None,
    ) -> ImageRecord:
        """Make a user image from a stored result of an operation (``results[index]``), without
        sending its bytes again: the seed's "generation service, then images service" flow.

        The operation must be the user's own (or have no user): another user's is ``NotFound``,
        as is an ``index`` past its results. The prompt defaults to the operation's; the image is
        checked as ``create`` checks uploads (accepted types, size, pixels).
        """
        check_id(user_id, "user_id")
        check_id(operation_id, "operation_id")
        if self._operations is None:
            raise ConfigurationError("this images API was made without access to operations")
        record = self._operations.get_operation(operation_id)
        if record.user_id not in (None, user_id):
            raise NotFound(f"no operation {operation_id!r} for user {user_id!r}")
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index < len(record.results)
        ):
            raise NotFound(f"operation {operation_id!r} has no result number {index!r}")
        ref = record.results[index]
        if ref.size > self.max_image_bytes:
            raise PayloadTooLarge(
                f"result is {ref.size} bytes, over the limit of {self.max_image_bytes} bytes",
                limit=self.max_image_bytes,
            )
        chosen = prompt if prompt is not None else (record.prompt or "")
        clean_prompt = sanitize_prompt(chosen or "(no prompt)", max_length=self.max_prompt_length)
        meta = check_metadata(metadata)
        meta.setdefault("generated_by", record.operation_type)
        data = self.blobs.read(ref.key)
        return self._create(user_id, clean_prompt, data, meta, operation_id=operation_id)

    def _create(
        self,
        user_id: str,
        clean_prompt: str,
        data: bytes,
        meta: dict[str, JsonValue],
        *,
        operation_id: str | None,
    ) -> ImageRecord:
        content_type, width, height = check_image(
            data, accepted=self.accepted_image_types, max_pixels=self.max_pixels
        )
        meta.setdefault("width", width)
        meta.setdefault("height", height)

        timestamp_ms = _now_ms()
        key = self._write_png(user_id, timestamp_ms, data, content_type)
        created_at = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
        _, image_id = new_image_id()
        record = ImageRecord(
            image_id=image_id,
            user_id=user_id,
            prompt=clean_prompt,
            key=key,
            content_type=content_type,
            status=ImageStatus.GENERATED,
            metadata=meta,
            operation_id=operation_id,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            width=width,
            height=height,
            created_at=created_at,
            updated_at=created_at,
        )
        try:
            self._write_record(record)
        except BaseException:
            # Without its record the PNG is an orphan; `verify --fix` would sweep it, but sooner
            # is better. A failure here must not hide the error that matters.
            try:
                self.blobs.delete(key)
            except Exception:
                logger.warning("image %s: could not remove the orphan PNG %s", image_id, key)
            raise
        self._index(record)
        return self._with_url(record)

    def _write_png(
        self, user_id: str, timestamp_ms: int, data: bytes, content_type: str = "image/png"
    ) -> str:
        """Create the image under the seed's name, adding ``-<n>`` when the millisecond is taken."""
        ext = extension_for(content_type)
        for n in range(_MAX_SUFFIX):
            key = image_blob_key(user_id, timestamp_ms, n, ext)
            try:
                # Exactly one racing create wins a name, even where the blob store's exclusive
                # write is not atomic (Supabase): the catalog decides there.
                claim_blob(self.blobs, self.catalog, key, data, content_type=content_type)
            except AlreadyExists:
                continue
            return key
        raise AlreadyExists(
            f"{_MAX_SUFFIX} images of user {user_id!r} already carry the timestamp {timestamp_ms}"
        )

    def _write_record(self, record: ImageRecord) -> None:
        # image_url stays out of what is stored: it is made fresh on every read.
        stored = record.model_copy(update={"image_url": None})
        self.blobs.write(
            image_record_key(record.user_id, record.image_id),
            [stored.model_dump_json().encode()],
            content_type="application/json",
        )

    def _index(self, record: ImageRecord) -> None:
        try:
            self.catalog.upsert_image(record.model_copy(update={"image_url": None}))
        except GenstoreError:
            # The record is committed; `verify --fix` or `reindex` will index it.
            logger.exception(
                "image %s of %s saved but not indexed", record.image_id, record.user_id
            )

    def update_status(self, *, user_id: str, image_id: str, status: str) -> ImageRecord:
        """Set an image's status (generated | printed | ordered | deleted); return the record.

        ``deleted`` is the seed's soft delete: the PNG stays, the image leaves default listings.
        Setting the status it already has changes nothing (``updated_at`` included).
        """
        new_status = check_status(status)
        record = self._read_record(user_id, image_id)
        if record.status is not new_status:
            record = record.model_copy(
                update={"status": new_status, "updated_at": datetime.now(UTC)}
            )
            self._write_record(record)
            self._index(record)
        return self._with_url(record)

    def delete(self, *, user_id: str, image_id: str) -> None:
        """Remove the image for good: record, catalog row and PNG. ``NotFound`` if absent."""
        record = self._find(user_id, image_id)
        # Record first: once it is gone the image is gone; a crash before the PNG is removed
        # leaves an orphan blob that `verify --fix` sweeps, never a record without its image.
        self.blobs.delete(image_record_key(user_id, image_id))
        self.catalog.delete_image(user_id, image_id)
        self.blobs.delete(self._png_key(record))

    # -- reading --------------------------------------------------------------------------------

    def list(
        self,
        *,
        user_id: str,
        page: int = 1,
        limit: int = 10,
        status: str | None = None,
    ) -> Page[ImageRecord]:
        """One page of the user's images, newest first, with ``page``, ``limit`` and ``total``.

        ``status`` filters; without it, images whose status is ``deleted`` are left out.
        ``page`` counts from 1; ``limit`` is 1 to ``MAX_PAGE_SIZE`` (100).
        """
        check_id(user_id, "user_id")
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise InvalidInput("page must be an integer from 1")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"limit must be an integer from 1 to {MAX_PAGE_SIZE}")
        offset = (page - 1) * limit
        if status is not None:
            items, total = self.catalog.list_images(
                user_id, status=check_status(status), offset=offset, limit=limit
            )
        else:
            items, total = self._list_not_deleted(user_id, offset, limit)
        return Page[ImageRecord](
            items=[self._with_url(r) for r in items], page=page, limit=limit, total=total
        )

    def _list_not_deleted(
        self, user_id: str, offset: int, limit: int
    ) -> tuple[builtins.list[ImageRecord], int]:
        # The Catalog interface filters on one status or none. When the user has no soft-deleted
        # image (the usual case) the unfiltered page is the answer; otherwise the pages of the
        # other statuses are merged, which costs offset + limit rows per status.
        _, deleted = self.catalog.list_images(
            user_id, status=ImageStatus.DELETED, offset=0, limit=1
        )
        if deleted == 0:
            return self.catalog.list_images(user_id, status=None, offset=offset, limit=limit)
        runs: list[list[ImageRecord]] = []
        total = 0
        for status in _LISTED_BY_DEFAULT:
            items, count = self.catalog.list_images(
                user_id, status=status, offset=0, limit=offset + limit
            )
            runs.append(items)
            total += count
        merged = heapq.merge(*runs, key=_sort_key, reverse=True)
        return [r for i, r in enumerate(merged) if offset <= i < offset + limit], total

    def get(self, *, user_id: str, image_id: str) -> ImageRecord:
        """The user's image (fresh ``image_url``); ``NotFound`` if absent or not theirs."""
        return self._with_url(self._find(user_id, image_id))

    def read(self, *, user_id: str, image_id: str) -> bytes:
        """The PNG bytes of one of the user's images; ``NotFound`` if absent or not theirs."""
        return self.blobs.read(self._png_key(self._find(user_id, image_id)))

    def _find(self, user_id: str, image_id: str) -> ImageRecord:
        """The record from the catalog, else from its JSON (the truth); ``NotFound`` if neither."""
        check_id(user_id, "user_id")
        check_id(image_id, "image_id")
        record = self.catalog.get_image(user_id, image_id)
        if record is not None and record.user_id == user_id:
            return record
        return self._read_record(user_id, image_id)

    def _read_record(self, user_id: str, image_id: str) -> ImageRecord:
        """The record JSON, the truth; ``NotFound`` if there is none for that user."""
        key = image_record_key(user_id, image_id)
        try:
            data = self.blobs.read(key)
        except NotFound:
            raise NotFound(f"no image {image_id!r} for user {user_id!r}") from None
        try:
            record = ImageRecord.model_validate_json(data)
        except ValidationError as exc:
            raise CorruptRecord(
                f"image record {key} is corrupt: {exc.errors()[0]['msg']}",
                key=f"{user_id}/{image_id}",
                kind="image",
            ) from None
        if record.user_id != user_id or record.image_id != image_id:
            raise GenstoreError(f"image record {key} names another image")
        return record

    def _png_key(self, record: ImageRecord) -> str:
        # The key comes from a stored record; refuse one that would reach outside the user's folder.
        parsed = parse_key(record.key)
        if (
            parsed is None
            or parsed.kind != "image"
            or parsed.user_id != record.user_id
            or not record.key.startswith(f"{IMAGES_PREFIX}{record.user_id}/")
        ):
            raise GenstoreError(f"image record {record.image_id} has an unexpected key")
        return record.key

    def _with_url(self, record: ImageRecord) -> ImageRecord:
        url = self.blobs.url_for(record.key, expires=self.url_expires)
        return record.model_copy(update={"image_url": url})
