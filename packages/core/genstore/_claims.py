"""Claims that exactly one of several racing writers wins, on every backend.

Two things in genstore must be created by one writer only: the marker that reserves an operation
id for an idempotency key, and a user image's PNG name. Where the blob store's exclusive write is
atomic (local files: a hard link; S3: a conditional write; Supabase: a temporary moved onto the
key) that write is the claim. Where it is not (``BlobStore.exclusive_writes_are_atomic`` False:
the generic fsspec backend checks, then writes), the catalog's unique constraint decides
(``Catalog.claim``: SQLite, PostgreSQL) and the blob is then written by the winner alone. A
catalog that cannot claim (sidecar, Supabase) leaves only the check-then-write: a documented
limitation, logged once per store as a warning, under which racing writers may both win.
"""

from __future__ import annotations

import json
import logging
import threading

from .exceptions import AlreadyExists, NotFound
from .plugin import BlobStore, Catalog

__all__ = ["claim_blob", "claim_marker"]

logger = logging.getLogger(__name__)

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _catalog_decides(blobs: BlobStore, catalog: Catalog) -> bool:
    if blobs.exclusive_writes_are_atomic:
        return False
    if catalog.can_claim:
        return True
    with _warned_lock:
        first = blobs.url not in _warned
        _warned.add(blobs.url)
    if first:
        logger.warning(
            "%s cannot create blobs exclusively and its catalog (%s) cannot claim keys: racing "
            "saves with one idempotency key, or image creates in one millisecond, may both win; "
            "use a SQLite or PostgreSQL catalog",
            blobs.url,
            type(catalog).__name__,
        )
    return False


def claim_blob(
    blobs: BlobStore, catalog: Catalog, key: str, data: bytes, *, content_type: str
) -> None:
    """Create the blob at ``key`` if this caller wins it; ``AlreadyExists`` if another did."""
    if _catalog_decides(blobs, catalog) and catalog.claim(f"blob:{key}", "") is not None:
        raise AlreadyExists(f"a blob already exists at {key!r}")
    # The exclusive write still refuses a blob that was there before claims were kept.
    blobs.write(key, [data], content_type=content_type, exclusive=True)


def claim_marker(blobs: BlobStore, catalog: Catalog, marker: str, operation_id: str) -> str | None:
    """Reserve ``operation_id`` through the marker blob ``marker``.

    Returns None if this caller won (the marker now names ``operation_id``), else the operation
    id the winner reserved. With a catalog deciding, a marker written before the catalog kept
    claims (or before it was lost and rebuilt) still wins over the catalog's claim.
    """
    document = json.dumps({"operation_id": operation_id}).encode()
    if not _catalog_decides(blobs, catalog):
        try:
            blobs.write(marker, [document], content_type="application/json", exclusive=True)
            return None
        except AlreadyExists:
            return _marked(blobs, marker)
    held = catalog.claim(f"marker:{marker}", operation_id)
    if held is not None:
        try:
            return _marked(blobs, marker)
        except NotFound:  # the winner has not written its marker yet: the claim says who won
            return held
    try:
        blobs.write(marker, [document], content_type="application/json", exclusive=True)
    except AlreadyExists:
        return _marked(blobs, marker)
    return None


def _marked(blobs: BlobStore, marker: str) -> str:
    return str(json.loads(blobs.read(marker))["operation_id"])
