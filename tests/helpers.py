"""Helpers shared by the test tree (importable as ``helpers``: tests/ is on pythonpath)."""

from __future__ import annotations

import os
import socket

import pytest
from genstore.testing import FileServer, png_bytes

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def need_server(available: bool, what: str) -> None:
    """Skip when a server nobody started is missing locally; under CI=true, fail instead."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{what} is not reachable, and CI must run these tests")
    pytest.skip(f"{what} is not reachable")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


__all__ = ["IN_CI", "FileServer", "free_port", "need_server", "png_bytes"]
