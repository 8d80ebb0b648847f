"""Recorder scenarios the metrics tests share (importable: tests/ is on pythonpath)."""

from __future__ import annotations

from typing import Any

from genstore import Recorder
from helpers import FileServer, png_bytes

DOWNLOAD_OPTIONS: dict[str, Any] = {"download_deadline": 1.0, "max_result_bytes": 10_000}
"""The store options ``submit_failing_downloads`` expects (``open_store`` keywords)."""

FAILURES = ("HTTP 404", "over the limit", "deadline", "refused")
"""How its failing downloads fail, as the records' ``result_error`` says."""


def submit_failing_downloads(recorder: Recorder, server: FileServer) -> tuple[int, int]:
    """Submit records whose result URL fails in each way of ``FAILURES`` (a 404, a body over
    ``max_result_bytes``, a stall past the deadline, a cloud-metadata address, refused before any
    connection is made), two whose download works, and one without a URL. Returns (downloads
    that fail, records submitted); every record is saved (a failed download is noted in it)."""
    ok = server.add("ok.png", png_bytes(4, 4))
    big = server.add("big.bin", b"x" * 50_000, "application/octet-stream")
    slow = server.add("slow.png", png_bytes(40, 40))
    server.stalls["slow.png"] = 3.0  # past the 1 s deadline
    failing = [server.url("missing.png"), big, slow, "http://169.254.169.254/latest/x.png"]
    for url in [*failing, ok, ok]:
        recorder.submit(operation_type="t", prompt=url, result_url=url)
    recorder.submit(operation_type="t", prompt="no url")
    return len(failing), len(failing) + 3
