"""Connections for result downloads: only to addresses already checked, and within one deadline.

``PinnedBackend`` is an httpcore network backend for one hop of a download: asked to connect to
the hop's host, it connects to the addresses ``_netguard`` checked for it (never resolving again,
so DNS rebinding cannot move it), and to nothing else. Every stream it opens clamps each network
wait to what is left of the download's ``Deadline``, so the deadline is total, not per read.
``connect_tcp`` is the one place a socket is opened.
"""

from __future__ import annotations

import ssl
import time
from typing import Any

import httpcore

from ._netguard import IPAddress

__all__ = ["Deadline", "DeadlinePassed", "PinnedBackend", "connect_tcp"]


class DeadlinePassed(httpcore.TimeoutException):
    """The download's total deadline passed during a network wait."""


class Deadline:
    """One download's deadline (``seconds`` from now) and its idle timeout per network wait."""

    def __init__(self, seconds: float, idle: float) -> None:
        self.seconds = seconds
        self.idle = idle
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()

    def passed(self) -> bool:
        return self.remaining() <= 0

    def wait(self, timeout: float | None = None) -> float:
        """The timeout for one network wait: the shortest of ``timeout``, the idle timeout and
        what is left of the deadline (``DeadlinePassed`` when nothing is)."""
        remaining = self.remaining()
        if remaining <= 0:
            raise DeadlinePassed("deadline passed")
        return min(remaining, self.idle, timeout if timeout is not None else remaining)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every wait ends at the download's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: Deadline) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._deadline.wait(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._deadline.wait(timeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        wait = self._deadline.wait(timeout)
        return _DeadlineStream(
            self._inner.start_tls(ssl_context, server_hostname, wait), self._deadline
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


_SYNC_BACKEND = httpcore.SyncBackend()


def connect_tcp(address: str, port: int, timeout: float) -> httpcore.NetworkStream:
    """Open a TCP connection to an address already checked. The one place a download opens a
    socket (tests replace it to prove that nothing beyond 127.0.0.0/8 is ever reached)."""
    return _SYNC_BACKEND.connect_tcp(address, port, timeout=timeout, socket_options=())


class PinnedBackend(httpcore.NetworkBackend):
    """Connects one hop's origin to the addresses checked for it, and to nothing else."""

    def __init__(
        self, host: str, port: int, addresses: list[IPAddress], deadline: Deadline
    ) -> None:
        self._origin = (host, port)
        self._addresses = addresses
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.NetworkStream:
        if (host, port) != self._origin:  # fail closed: only the checked origin is reachable
            raise httpcore.ConnectError("connection to an unchecked origin refused")
        failure: Exception = httpcore.ConnectError("no address to connect to")
        for address in self._addresses:
            try:
                stream = connect_tcp(str(address), port, self._deadline.wait(timeout))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            return _DeadlineStream(stream, self._deadline)
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("downloads never use unix sockets")

    def sleep(self, seconds: float) -> None:
        time.sleep(min(seconds, max(self._deadline.remaining(), 0.0)))
