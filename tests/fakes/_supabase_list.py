"""The fake's two Storage listings, as storage-api v1.70.6 answers them (observed on the real
server, and read in its ``storage.search`` SQL):

- v1 (``POST /object/list/{bucket}``), folder by folder: the prefix and ``search`` match
  case-insensitively (``lower(name)``), so ``images/alice/`` and ``images/Alice/`` are one
  folder, listed once (spelt as its first object in lower-case order spells it), and listing
  either shows both users' files by their last segment alone. At most 1,500 entries a request, whatever ``limit`` asks.
- v2 (``POST /object/list-v2/{bucket}``): whole keys, the prefix matched exactly (case-sensitive),
  in code-point order, at most 1,000 a page with ``hasNext`` and an opaque ``nextCursor``;
  ``with_delimiter`` gives the next level's folders (``key``, and ``name`` ending in ``/``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from .supabase_server import StoredObject

__all__ = ["V1_MAX", "V2_MAX", "file_entry", "list_v1", "list_v2", "stamp", "visible_objects"]

V1_MAX = 1500
V2_MAX = 1000

Objects = Iterable[tuple[str, StoredObject]]


def stamp(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_entry(name: str, obj: StoredObject) -> dict[str, Any]:
    """A listed (or removed) object: ``name`` is what the listing shows for it."""
    return {
        "name": name,
        "id": obj.id,
        "updated_at": stamp(obj.updated_at),
        "created_at": stamp(obj.created_at),
        "last_accessed_at": stamp(obj.updated_at),
        "metadata": {
            "eTag": f'"{obj.etag}"',
            "size": len(obj.data),
            "mimetype": obj.content_type,
            "cacheControl": obj.cache_control,
            "lastModified": stamp(obj.updated_at),
            "contentLength": len(obj.data),
            "httpStatusCode": 200,
        },
    }


def _folder_entry(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "id": None,
        "updated_at": None,
        "created_at": None,
        "last_accessed_at": None,
        "metadata": None,
    }


def _sort_key(item: tuple[str, StoredObject], column: str) -> Any:
    name, obj = item
    if column == "created_at":
        return (obj.created_at, name)
    if column in ("updated_at", "last_accessed_at"):
        return (obj.updated_at, name)
    return name.lower()


def list_v1(objects: Objects, body: dict[str, Any]) -> list[dict[str, Any]]:
    """One page of the v1 listing of ``body["prefix"]`` (a folder)."""
    prefix = str(body.get("prefix") or "").lower()
    folder = prefix if not prefix or prefix.endswith("/") else prefix + "/"
    search = str(body.get("search") or "").lower()
    limit = min(int(body.get("limit", 100)), V1_MAX)
    offset = int(body.get("offset", 0))
    sort = body.get("sortBy") or {}
    column, reverse = sort.get("column", "name"), sort.get("order", "asc") == "desc"
    folders: dict[str, str] = {}
    files: list[tuple[str, StoredObject]] = []
    for name, obj in sorted(objects, key=lambda item: item[0].lower()):
        lowered = name.lower()
        rest = name[len(folder) :]
        if not lowered.startswith(folder) or not rest.lower().startswith(search):
            continue
        if "/" in rest:
            # Merged across case, named as the first object in lower-case order spells it.
            segment = rest.split("/", 1)[0]
            folders.setdefault(segment.lower(), segment)
        else:
            files.append((rest, obj))
    files.sort(key=lambda f: _sort_key(f, column), reverse=reverse)
    ordered = sorted(folders.items(), reverse=reverse)
    entries = [_folder_entry(spelt) for _, spelt in ordered]
    entries += [file_entry(name, obj) for name, obj in files]
    return entries[offset : offset + limit]


def _cursor(name: str) -> str:
    return base64.b64encode(f"l:{name}".encode()).decode()


def _after(cursor: str) -> str:
    return base64.b64decode(cursor).decode()[2:]


def list_v2(objects: Objects, body: dict[str, Any]) -> dict[str, Any]:
    """One page of the v2 listing: whole keys under ``body["prefix"]``, matched exactly."""
    prefix = str(body.get("prefix") or "")
    limit = min(int(body.get("limit", V2_MAX)), V2_MAX)
    after = _after(str(body["cursor"])) if body.get("cursor") else None
    delimited = bool(body.get("with_delimiter"))
    names: list[tuple[str, StoredObject | None]] = []
    seen_folders: set[str] = set()
    for name, obj in sorted(objects, key=lambda item: item[0]):
        if not name.startswith(prefix):
            continue
        rest = name[len(prefix) :]
        if delimited and "/" in rest:
            folder = prefix + rest.split("/", 1)[0] + "/"
            if folder not in seen_folders:
                seen_folders.add(folder)
                names.append((folder, None))
            continue
        names.append((name, obj))
    if after is not None:
        # A folder's cursor is its name without the slash: nothing under it comes again.
        names = [
            (n, o) for n, o in names if n.rstrip("/") > after and not n.startswith(after + "/")
        ]
    page, more = names[:limit], len(names) > limit
    folders = [
        {**_folder_entry(n), "key": n[len(prefix) :].rstrip("/")} for n, o in page if o is None
    ]
    files = [_v2_file(n, o) for n, o in page if o is not None]
    result: dict[str, Any] = {"hasNext": more, "folders": folders, "objects": files}
    if more:
        last = page[-1][0].rstrip("/")
        result.update(nextCursor=_cursor(last), nextCursorKey=last)
    return result


def _v2_file(name: str, obj: StoredObject) -> dict[str, Any]:
    entry = file_entry(name, obj)
    return {k: entry[k] for k in ("id", "name", "metadata", "updated_at", "created_at")} | {
        "last_accessed_at": entry["last_accessed_at"]
    }


def visible_objects(
    objects: dict[str, StoredObject], allowed: Callable[[str], bool]
) -> list[tuple[str, StoredObject]]:
    """The bucket's objects the caller may see (a snapshot, taken under the fake's lock)."""
    return [(name, obj) for name, obj in objects.items() if allowed(name)]
