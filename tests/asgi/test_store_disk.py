"""The local store's own disk fails under a real uvicorn: its folder unwritable, or its disk full.

500 acknowledged requests, none lost: the app starts on a store folder it cannot write (the
store opens all the same), and the spool lives outside the store (the user's state directory), so
the records wait there and are replayed once the store can be written again.

The app runs in a uvicorn subprocess on 127.0.0.1 without the privilege to ignore file
permissions: a root test run drops ``CAP_DAC_OVERRIDE`` and ``CAP_DAC_READ_SEARCH`` from the
child (chmod then binds it as it binds any user; the interpreter under ``/root`` stays usable,
which switching to ``nobody`` would not allow); an unprivileged run needs nothing. The full disk
is a 16 MiB tmpfs mounted over the store's folder: that needs root, and is skipped with the
reason where ``mount`` is refused. Every wait is bounded.
"""

from __future__ import annotations

import ctypes
import errno
import os
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import genstore
import pytest

from asgi.service_process import ServiceProcess
from asgi.support import small_tmpfs, wait_for

ROUTE = "/api/generate/text-to-image"
TOTAL = 500
WAIT = 120.0

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


def _without_file_privileges() -> None:
    """In the child before exec: drop what lets root ignore file permissions, for good."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


class Service(ServiceProcess):
    """``flaky_service.store_app_from_env`` on ``root`` in an unprivileged uvicorn subprocess."""

    def __init__(self, root: Path) -> None:
        try:
            super().__init__(
                "asgi.flaky_service:store_app_from_env",
                {"GENSTORE_TEST_ROOT": str(root)},
                preexec_fn=_without_file_privileges,
            )
        except subprocess.SubprocessError as exc:  # prctl refused (no CAP_SETPCAP)
            pytest.skip(f"cannot start the app without the privilege to ignore chmod: {exc}")

    def generate(self, first: int, last: int) -> Counter[int]:
        """POST prompts ``req-<first>`` .. ``req-<last - 1>``; their statuses."""
        statuses: Counter[int] = Counter()
        for i in range(first, last):
            statuses[self.client.post(ROUTE, json={"prompt": f"req-{i}"}).status_code] += 1
        return statuses

    def wait(self, what: str, condition: Callable[[dict[str, int]], bool]) -> dict[str, int]:
        """Wait until ``condition(status)`` holds; fail at once when a record is dropped."""
        status: dict[str, int] = {}

        def holds() -> bool:
            nonlocal status
            status = self.status()
            assert status["dropped"] == 0, f"records lost while waiting for {what}: {status}"
            return condition(status)

        if not wait_for(holds, timeout=WAIT):
            pytest.fail(f"timed out after {WAIT:g} s waiting for {what}: {status}")
        return status


def prompts_in(root: Path) -> Counter[str | None]:
    with genstore.open_store(root) as store:
        return Counter(record.prompt for record in store.iter_operations())


def assert_every_request_once(root: Path) -> None:
    prompts = prompts_in(root)
    assert set(prompts) == {f"req-{i}" for i in range(TOTAL)}  # none lost
    assert max(prompts.values()) == 1  # none duplicated


def chmod_tree(root: Path, writable: bool) -> None:
    subprocess.run(["chmod", "-R", "u+w" if writable else "a-w", str(root)], check=True)


@pytest.mark.slow
def test_a_store_folder_the_app_cannot_write_loses_none_of_500_requests(
    tmp_path: Path, services: list[Service]
) -> None:
    root = tmp_path / "store"
    genstore.open_store(root).close()  # made by someone else; the app may only read it
    chmod_tree(root, writable=False)
    try:
        service = Service(root)
        services.append(service)
        assert service.generate(0, TOTAL) == Counter({200: TOTAL})
        status = service.wait(
            "every record spooled", lambda s: s["spooled"] == TOTAL and not s["pending"]
        )
        assert (status["recorded"], status["dropped"]) == (0, 0)
        assert not list(root.rglob("*.json"))  # really unwritable: nothing reached the store
        chmod_tree(root, writable=True)
        status = service.wait(
            "every record replayed", lambda s: s["replayed"] == TOTAL and not s["spool_count"]
        )
        assert (status["recorded"], status["rejected"], status["quarantined"]) == (0, 0, 0)
        service.stop()
    finally:
        chmod_tree(root, writable=True)
    assert_every_request_once(root)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted on ``tmp_path/disk``; skipped where ``mount`` is refused."""
    with small_tmpfs(tmp_path / "disk", "16m") as disk:
        yield disk


def fill(disk: Path) -> Path:
    """Write a file on ``disk`` until it is full; the file."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for _ in range(16384):  # 64 MiB at most: far more than the disk holds
            try:
                f.write(b"\0" * 4096)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return filler
    pytest.fail(f"{disk} never filled up")


@pytest.mark.slow
def test_a_full_store_disk_loses_none_of_500_requests(
    small_disk: Path, services: list[Service]
) -> None:
    root = small_disk / "store"
    service = Service(root)
    services.append(service)
    assert service.generate(0, 100) == Counter({200: 100})
    service.wait("the first 100 saved", lambda s: s["recorded"] == 100 and not s["pending"])
    filler = fill(small_disk)
    assert service.generate(100, TOTAL) == Counter({200: TOTAL - 100})
    status = service.wait("the rest spooled", lambda s: not s["pending"] and s["spool_count"] > 0)
    assert status["dropped"] == 0 and status["spooled"] > 0
    filler.unlink()  # space freed: the spool replays into the store
    status = service.wait(
        "every record saved",
        lambda s: s["recorded"] + s["replayed"] == TOTAL and not s["spool_count"],
    )
    assert (status["rejected"], status["quarantined"]) == (0, 0)
    service.stop()
    assert_every_request_once(root)
