"""Fixtures shared by the whole test tree."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import FileServer

pytest_plugins: list[str] = []


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A loopback HTTP server to serve provider result URLs."""
    server = FileServer()
    yield server
    server.close()
