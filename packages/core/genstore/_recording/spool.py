"""The recorder's durable local spool: one directory per record, never half-written.

    <spool>/rec-<ulid>/call.json            a complete record, waiting to be replayed
    <spool>/rec-<ulid>/in-0.bin ...         its artefacts (bytes written beside the call)
    <spool>/tmp-<pid>-<token>-<ulid>/       being written (a crash leaves it; it never replays)
    <spool>/claimed-<pid>-<token>-<ulid>/   being replayed by the process (pid, token) right now
    <spool>/done-<pid>-<token>-<ulid>/      saved, being deleted
    <spool>/bad-<ulid>/                     call.json unreadable: kept for a human, never replayed
    <spool>/quarantine-<ulid>/              failed for its own content too often (error.txt says
                                            why): kept, never replayed unless retried
    <spool>/owners/<pid>-<token>.lock       held (flock) for as long as that spool owner lives

A record is written into its ``tmp-`` folder (files fsynced, ``call.json`` through a temp file and
``os.replace``) and renamed to ``rec-`` last, so a ``rec-`` folder is always complete. A replay
claims a record by renaming it ``claimed-``: a rename succeeds for exactly one process. Claims and
temp folders of owners whose lock is free again (the process died) are taken back or removed, so
a SIGKILL never strands a record.
"""

from __future__ import annotations

import contextlib
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
from typing import Any

from .._ids import new_ulid, ulid_time
from .items import Recordable
from .spool_format import SPOOL_FORMAT, Fetch, decode_request, encode_request, fsync_dir

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
    quarantined: int = 0
    """Records that failed for their own content too often; kept until retried or purged."""


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

    def quarantine(self, error: str) -> None:
        """Set the record aside with ``error``: never replayed unless ``Spool.retry`` says so."""
        (self.path / "error.txt").write_text(error, encoding="utf-8", errors="replace")
        os.rename(self.path, self._spool.path / f"quarantine-{self.ulid}")


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

    def write(
        self,
        request: Recordable,
        *,
        owned: Collection[str | os.PathLike[str]] = (),
        fetch: Fetch | None = None,
    ) -> str:
        """Spool one request; return its ulid. ``owned`` paths are moved in (or deleted if unused);
        with ``fetch``, result URLs are downloaded into the record now (see ``encode_request``).

        ``InvalidInput``: the call could never be saved (nothing is spooled, owned files are
        deleted). ``OSError``: the spool's disk failed.
        """
        self.open()
        owned_abs = {os.path.abspath(os.fspath(p)) for p in owned}
        _, ulid = new_ulid()
        temp = self.path / f"tmp-{self.owner}-{ulid}"
        temp.mkdir()
        try:
            doc = encode_request(request, temp, owned=owned_abs, fsync=self.fsync, fetch=fetch)
            doc["spooled_at"] = datetime.now(UTC).isoformat()
            _write_json(temp / "call.json", doc, self.fsync)
            fsync_dir(temp, self.fsync)
            os.rename(temp, self.path / f"rec-{ulid}")
            fsync_dir(self.path, self.fsync)
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

    def adopt(self, other: Path) -> int:
        """Move the waiting records of another spool folder into this one; return how many.

        Each is copied into a ``tmp-`` folder, renamed in, then deleted from ``other``: a crash
        leaves at worst a record in both, which replays once (records keep their idempotency).
        """
        self.open()
        moved = 0
        for source in sorted(other.glob("rec-*")):
            if not (source / "call.json").is_file():
                continue
            _, ulid = new_ulid()
            temp = self.path / f"tmp-{self.owner}-{ulid}"
            shutil.copytree(source, temp)
            os.rename(temp, self.path / f"rec-{ulid}")
            shutil.rmtree(source, ignore_errors=True)
            moved += 1
        return moved

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
        count = claimed = bad = quarantined = size = 0
        oldest: datetime | None = None
        for name in self._names():
            kind, _, rest = name.partition("-")
            if kind in ("bad", "quarantine"):
                bad += kind == "bad"
                quarantined += kind == "quarantine"
                continue
            if kind not in ("rec", "claimed"):
                continue
            count += 1
            claimed += kind == "claimed"
            when = ulid_time(rest.rsplit("-", 1)[-1])
            if when is not None and (oldest is None or when < oldest):
                oldest = when
            size += _folder_size(self.path / name)
        return SpoolStatus(self.path, count, size, oldest, claimed, bad, quarantined)

    def quarantined(self) -> list[tuple[str, str]]:
        """``(ulid, error)`` of every quarantined record, oldest first."""
        found = []
        for name in sorted(self._names()):
            if name.startswith("quarantine-"):
                error = self.path / name / "error.txt"
                text = error.read_text(errors="replace") if error.is_file() else "(no error kept)"
                found.append((name.removeprefix("quarantine-"), text))
        return found

    def retry(self, ulid: str) -> None:
        """Put a quarantined record back in line; ``FileNotFoundError`` if there is none."""
        source = self.path / f"quarantine-{_checked_ulid(ulid)}"
        (source / "error.txt").unlink(missing_ok=True)
        os.rename(source, self.path / f"rec-{ulid}")

    def purge(self, ulid: str) -> None:
        """Delete a quarantined record for good; ``FileNotFoundError`` if there is none."""
        source = self.path / f"quarantine-{_checked_ulid(ulid)}"
        trash = self.path / f"done-{self.owner}-{ulid}"
        os.rename(source, trash)
        shutil.rmtree(trash, ignore_errors=True)

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


def _checked_ulid(ulid: str) -> str:
    if ulid_time(ulid) is None:
        raise FileNotFoundError(f"{ulid[:40]!r} is not a spooled record's id")
    return ulid


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
