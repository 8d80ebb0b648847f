"""The recorder's durable local spool: one directory per record, never half-written.

    <spool>/rec-<ulid>/call.json            a complete record, waiting to be replayed
    <spool>/rec-<ulid>/in-0.bin ...         its artefacts (bytes written beside the call)
    <spool>/tmp-<pid>-<token>-<ulid>/       being written (a crash leaves it; it never replays)
    <spool>/claimed-<pid>-<token>-<ulid>/   being replayed by the process (pid, token) right now
    <spool>/done-<pid>-<token>-<ulid>/      saved, being deleted
    <spool>/bad-<ulid>/                     call.json unreadable: kept for a human, never replayed
    <spool>/owners/<pid>-<token>.lock       held (flock) for as long as that spool owner lives

A record is written into its ``tmp-`` folder (files fsynced, ``call.json`` through a temp file and
``os.replace``) and renamed to ``rec-`` last, so a ``rec-`` folder is always complete. A replay
claims a record by renaming it ``claimed-``: a rename succeeds for exactly one process. Claims and
temp folders of owners whose lock is free again (the process died) are taken back or removed, so
a SIGKILL never strands a record.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import secrets
import shutil
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from .._ids import new_ulid, ulid_time
from .._save_request import JobCompletion, ResultSource, ResultURL, SaveRequest
from .._sources import is_pil_image
from ..exceptions import InvalidInput
from .items import Recordable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: liveness falls back to the pid
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "SPOOL_FORMAT",
    "ClaimedRecord",
    "Spool",
    "SpoolStatus",
    "decode_request",
    "encode_request",
]

logger = logging.getLogger(__name__)

SPOOL_FORMAT = 2
"""Version of ``call.json``; a newer version is left alone for a newer genstore to replay."""

_CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpoolStatus:
    """What waits in a spool (``genstore spool status``)."""

    path: Path
    """The spool folder."""
    count: int
    """Records waiting to be replayed, including those being replayed right now."""
    bytes: int
    """Disk used by those records."""
    oldest: datetime | None
    """When the oldest waiting record was spooled (UTC), or None."""
    claimed: int = 0
    """Of ``count``, records a live process is replaying right now."""
    bad: int = 0
    """Records whose ``call.json`` could not be read; kept, never replayed."""


# -- encoding ---------------------------------------------------------------------------------


def encode_request(
    request: Recordable, folder: Path, *, owned: Collection[str] = (), fsync: bool = True
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
        {"url": output.url}
        if isinstance(output, ResultURL)
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


def _decode_output(item: Mapping[str, Any], folder: Path) -> ResultSource:
    if "url" in item:
        return ResultURL(str(item["url"]))
    return str(_inside(folder, item["file"]))


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


def _fsync_dir(path: Path, fsync: bool) -> None:
    if not fsync or os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- the spool ---------------------------------------------------------------------------------


@dataclass
class ClaimedRecord:
    """A record this process is replaying: ``done()`` when saved, ``release()`` to retry later."""

    ulid: str
    path: Path
    request: Recordable
    _spool: Spool

    def done(self) -> None:
        """Delete the record: it is saved (or can never be)."""
        # Renamed first: a crash in the middle of deleting must not leave a claim without its
        # call.json, which would be taken back and look corrupt.
        trash = self._spool.path / f"done-{self._spool.owner}-{self.ulid}"
        try:
            os.rename(self.path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def release(self) -> None:
        """Put the record back for a later replay."""
        os.rename(self.path, self._spool.path / f"rec-{self.ulid}")


class Spool:
    """One spool folder, as seen by one owner (a recorder). Thread-safe: names never collide."""

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.pid = os.getpid()
        self.token = secrets.token_hex(4)
        self._lock_fd: int | None = None
        self._open_lock = threading.Lock()

    @property
    def owner(self) -> str:
        """This owner's ``<pid>-<token>``, as in its ``claimed-`` and ``tmp-`` folder names."""
        return f"{self.pid}-{self.token}"

    def open(self) -> None:
        """Create the folders and take this owner's liveness lock (idempotent, thread-safe)."""
        if self._lock_fd is not None:
            return
        with self._open_lock:
            if self._lock_fd is not None:
                return
            (self.path / "owners").mkdir(parents=True, exist_ok=True)
            if fcntl is None:  # pragma: no cover
                return
            final = self.path / "owners" / f"{self.owner}.lock"
            temp = final.with_suffix(".new")
            fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                # Locked before it is visible under its final name: nobody sees it free and live.
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.replace(temp, final)
            except BaseException:
                os.close(fd)
                raise
            self._lock_fd = fd

    def close(self) -> None:
        """Release the liveness lock (claims still held become free for others to take back)."""
        with self._open_lock:
            fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path / "owners" / f"{self.owner}.lock")
            os.close(fd)

    def forget_lock_after_fork(self) -> None:
        """In a forked child: drop the parent's lock without unlocking it (the parent keeps it)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- writing --

    def write(self, request: Recordable, *, owned: Collection[str | os.PathLike[str]] = ()) -> str:
        """Spool one request; return its ulid. ``owned`` paths are moved in (or deleted if unused).

        ``InvalidInput``: the call could never be saved (nothing is spooled, owned files are
        deleted). ``OSError``: the spool's disk failed.
        """
        self.open()
        owned_abs = {os.path.abspath(os.fspath(p)) for p in owned}
        _, ulid = new_ulid()
        temp = self.path / f"tmp-{self.owner}-{ulid}"
        temp.mkdir()
        try:
            doc = encode_request(request, temp, owned=owned_abs, fsync=self.fsync)
            doc["spooled_at"] = datetime.now(UTC).isoformat()
            _write_json(temp / "call.json", doc, self.fsync)
            _fsync_dir(temp, self.fsync)
            os.rename(temp, self.path / f"rec-{ulid}")
            _fsync_dir(self.path, self.fsync)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        finally:
            for path in owned_abs:  # moved ones are gone already; copies and unused ones go now
                with contextlib.suppress(OSError):
                    os.unlink(path)
        return ulid

    # -- reading and replaying --

    def waiting(self) -> list[str]:
        """Ulids of the records waiting, oldest first."""
        return sorted(name[4:] for name in self._names() if name.startswith("rec-"))

    def has_records(self) -> bool:
        """Whether any record waits or is claimed (cheap: one directory listing)."""
        return any(name.startswith(("rec-", "claimed-")) for name in self._names())

    def claim(self, ulid: str) -> ClaimedRecord | None:
        """Take ``ulid`` for replay; None if another owner took it first or it cannot be read."""
        self.open()
        source = self.path / f"rec-{ulid}"
        target = self.path / f"claimed-{self.owner}-{ulid}"
        try:
            os.rename(source, target)
        except FileNotFoundError:
            return None
        try:
            with open(target / "call.json", "rb") as f:
                doc = json.load(f)
            version = doc.get("format") if isinstance(doc, dict) else None
            if isinstance(version, int) and version > SPOOL_FORMAT:
                os.rename(target, source)
                logger.warning("spooled record %s is from a newer genstore: left alone", ulid)
                return None
            request = decode_request(doc, target)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            os.rename(target, self.path / f"bad-{ulid}")
            logger.error("spooled record %s is unreadable (%s): moved to bad-%s", ulid, exc, ulid)
            return None
        return ClaimedRecord(ulid, target, request, self)

    def recover(self) -> int:
        """Take back claims, and remove half-written and half-deleted folders, of owners that died.

        Returns how many records were taken back.
        """
        if not self.path.is_dir():
            return 0
        freed = 0
        for name in self._names():
            kind, _, rest = name.partition("-")
            if kind not in ("claimed", "tmp", "done"):
                continue
            pid, _, rest = rest.partition("-")
            token, _, ulid = rest.partition("-")
            if not ulid or self._alive(pid, token):
                continue
            with contextlib.suppress(FileNotFoundError):
                if kind == "claimed":
                    os.rename(self.path / name, self.path / f"rec-{ulid}")
                    freed += 1
                    logger.info("took back spooled record %s from dead owner %s", ulid, pid)
                else:
                    shutil.rmtree(self.path / name)
        return freed

    def status(self) -> SpoolStatus:
        """Counts, disk use and age of what is waiting."""
        count = claimed = bad = size = 0
        oldest: datetime | None = None
        for name in self._names():
            kind, _, rest = name.partition("-")
            if kind == "bad":
                bad += 1
                continue
            if kind not in ("rec", "claimed"):
                continue
            count += 1
            claimed += kind == "claimed"
            when = ulid_time(rest.rsplit("-", 1)[-1])
            if when is not None and (oldest is None or when < oldest):
                oldest = when
            size += _folder_size(self.path / name)
        return SpoolStatus(self.path, count, size, oldest, claimed, bad)

    def _names(self) -> list[str]:
        try:
            return os.listdir(self.path)
        except (FileNotFoundError, NotADirectoryError):  # nothing was ever spooled here
            return []

    def _alive(self, pid: str, token: str) -> bool:
        if pid == str(self.pid) and token == self.token:
            return True
        if fcntl is None:  # pragma: no cover
            return _pid_alive(pid)
        lock = self.path / "owners" / f"{pid}-{token}.lock"
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # releases the lock if we got it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        return False


def _folder_size(folder: Path) -> int:
    # Records move (claimed, put back, deleted) while we look: a vanished file counts as 0.
    total = 0
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        with contextlib.suppress(FileNotFoundError):
            if entry.is_file():
                total += entry.stat().st_size
    return total


def _write_json(path: Path, doc: Mapping[str, Any], fsync: bool) -> None:
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=True)
        f.flush()
        if fsync:
            os.fsync(f.fileno())
    os.replace(temp, path)


def _pid_alive(pid: str) -> bool:  # pragma: no cover - only without fcntl
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except OSError:
        return True
    return True
