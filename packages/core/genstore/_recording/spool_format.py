"""How a spooled record is written: ``call.json`` (its fields, a format version) and one file per
source (input images, outputs that are not URLs), in the record's folder.

Format 2 holds a ``SaveRequest`` (or a ``JobCompletion``: the same plus ``completes_job``);
format 1 (keyword arguments, genstore before 0.2) is still read.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from .._redaction import strip_signing
from .._save_request import (
    Fetched,
    FetchFailed,
    JobCompletion,
    ResultSource,
    ResultURL,
    SaveRequest,
)
from .._sources import is_pil_image
from ..exceptions import InvalidInput
from .items import Recordable

__all__ = ["SPOOL_FORMAT", "Fetch", "decode_request", "encode_request", "fsync_dir"]

SPOOL_FORMAT = 2
"""Version of ``call.json``; a newer version is left alone for a newer genstore to replay."""

_CHUNK = 1024 * 1024


Fetch = Callable[[str, Path], "str | None"]
"""Downloads a URL into a new file; returns the error, or None (``Store.fetch``)."""


def encode_request(
    request: Recordable,
    folder: Path,
    *,
    owned: Collection[str] = (),
    fsync: bool = True,
    fetch: Fetch | None = None,
) -> dict[str, Any]:
    """Write ``request``'s sources into ``folder`` and return the JSON document describing it.

    Sources (``input_images`` items, outputs that are not URLs) become files: bytes are written, owned paths moved
    (copied across devices), other paths, file objects and PIL images copied. The creation time
    becomes an ISO string, ``request`` a dict. Raises ``InvalidInput`` for what could never be
    saved (a non-JSON value, a missing source file) and ``OSError`` when the spool's disk fails.
    """
    job_id = None
    if isinstance(request, JobCompletion):
        job_id, request = request.job_id, request.fallback
    moved: dict[str, str] = {}
    files: dict[str, Any] = {
        "input_images": [
            _write_source(item, folder, f"in-{i}", owned, moved, fsync)
            for i, item in enumerate(request.input_images)
        ]
    }
    outputs = [
        _encode_output(output, folder, f"out-{i}", fetch)
        if isinstance(output, ResultURL | Fetched | FetchFailed)
        else {"file": _write_source(output, folder, f"out-{i}", owned, moved, fsync)}
        for i, output in enumerate(request.outputs)
    ]
    fields: dict[str, Any] = {
        "operation_type": request.operation_type,
        "prompt": request.prompt,
        "parameters": request.parameters,
        "workflow_analysis": request.workflow_analysis,
        "error": request.error,
        "user_id": request.user_id,
        "idempotency_key": request.idempotency_key,
        "duration_ms": request.duration_ms,
        "request": None if request.request is None else request.request.model_dump(mode="json"),
        "created_at": None if request.created_at is None else request.created_at.isoformat(),
        "job_id": request.job_id,
        "pending": request.pending,
        "result_note": request.result_note,
        "operation_id": request.operation_id,
    }
    doc = {"format": SPOOL_FORMAT, "fields": fields, "files": files, "outputs": outputs}
    if job_id is not None:
        doc["completes_job"] = job_id
    try:
        json.dumps(doc, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the record cannot be written as JSON: {exc}") from exc
    return doc


def decode_request(doc: Mapping[str, Any], folder: Path) -> Recordable:
    """The request ``doc`` describes, with sources as paths of files in ``folder``.

    Reads this format and format 1 (keyword arguments, written by genstore before 0.2);
    ``ValueError`` for anything else, ``InvalidInput`` for fields a save would refuse.
    """
    version = doc.get("format")
    if version == SPOOL_FORMAT:
        fields = dict(doc["fields"])
    elif version == 1:
        fields = dict(doc["kwargs"])
        for kind in doc.get("types", {}).values():
            if kind != "datetime":
                raise ValueError(f"unknown spooled type {kind!r}")
    else:
        raise ValueError(f"unknown spool format {version!r}")
    if fields.get("created_at") is not None:
        fields["created_at"] = datetime.fromisoformat(fields["created_at"])
    for name, stored in doc.get("files", {}).items():
        if isinstance(stored, list):
            fields[name] = [str(_inside(folder, f)) for f in stored]
        else:
            fields[name] = str(_inside(folder, stored))
    if version == SPOOL_FORMAT:
        fields["outputs"] = [_decode_output(item, folder) for item in doc["outputs"]]
    request = SaveRequest.build(**fields)
    job_id = doc.get("completes_job")
    return request if job_id is None else JobCompletion(job_id=str(job_id), fallback=request)


def _encode_output(
    output: ResultURL | Fetched | FetchFailed, folder: Path, stem: str, fetch: Fetch | None
) -> dict[str, Any]:
    """A URL output is downloaded now when ``fetch`` is given (provider URLs expire, and a signed
    URL is a credential the spool should not keep); else it is kept to download at replay."""
    if isinstance(output, FetchFailed):
        return {"failed": output.source_url, "error": output.error}
    if isinstance(output, Fetched):  # already fetched (a replayed record spooled again)
        return {"fetched": output.source_url, "file": _copy_in(output.path, folder, stem)}
    if fetch is None or output.url[:5].lower() == "data:":
        return {"url": output.url}
    target = folder / f"{stem}.bin"
    error = fetch(output.url, target)
    source = strip_signing(output.url)
    if error is not None:
        return {"failed": source, "error": error}
    return {"fetched": source, "file": target.name}


def _copy_in(path: str, folder: Path, stem: str) -> str:
    target = folder / f"{stem}.bin"
    _copy_path(path, target, fsync=False)
    return target.name


def _decode_output(item: Mapping[str, Any], folder: Path) -> ResultSource:
    if "url" in item:
        return ResultURL(str(item["url"]))
    if "failed" in item:
        return FetchFailed(str(item["failed"]), str(item["error"]))
    path = str(_inside(folder, item["file"]))
    return Fetched(path, str(item["fetched"])) if "fetched" in item else path


def _inside(folder: Path, name: object) -> Path:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name[0] == ".":
        raise ValueError(f"bad spooled file name {name!r}")
    return folder / name


def _write_source(
    source: Any, folder: Path, stem: str, owned: Collection[str], moved: dict[str, str], fsync: bool
) -> str:
    target = folder / f"{stem}.bin"
    if isinstance(source, (bytes, bytearray, memoryview)):
        with open(target, "xb") as out:
            out.write(source)
            _sync(out, fsync)
        return target.name
    if isinstance(source, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(source))
        if path in moved:  # the same file given twice: one copy
            return moved[path]
        if not os.path.isfile(path):
            raise InvalidInput(f"source file {path[:200]!r} does not exist or is not a file")
        if path in owned:
            _move(path, target, fsync)
        else:
            _copy_path(path, target, fsync)
        moved[path] = target.name
        return target.name
    if is_pil_image(source):
        with open(target, "xb") as out:
            try:  # as the store would encode it: its own format, else PNG
                source.save(out, format=source.format or "PNG")
            except (OSError, ValueError, KeyError):
                out.seek(0)
                out.truncate()
                source.save(out, format="PNG")
            _sync(out, fsync)
        return target.name
    if hasattr(source, "read"):
        with open(target, "xb") as out:
            _copy_stream(source, out)
            _sync(out, fsync)
        return target.name
    raise InvalidInput(f"a source must be bytes, a path, a file or a PIL image, not {type(source)}")


def _move(path: str, target: Path, fsync: bool) -> None:
    try:
        os.rename(path, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        _copy_path(path, target, fsync)  # the original is deleted by the caller once committed
        return
    if fsync:
        with open(target, "rb") as f:
            os.fsync(f.fileno())


def _copy_path(path: str, target: Path, fsync: bool) -> None:
    with open(path, "rb") as src, open(target, "xb") as out:
        _copy_stream(src, out)
        _sync(out, fsync)


def _copy_stream(src: IO[bytes] | Any, out: IO[bytes]) -> None:
    while True:
        chunk = src.read(_CHUNK)
        if not chunk:
            return
        if isinstance(chunk, str):
            raise InvalidInput("a source file was opened in text mode; open it with 'rb'")
        out.write(chunk)


def _sync(f: IO[bytes], fsync: bool) -> None:
    f.flush()
    if fsync:
        os.fsync(f.fileno())


def fsync_dir(path: Path, fsync: bool) -> None:
    if not fsync or os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
