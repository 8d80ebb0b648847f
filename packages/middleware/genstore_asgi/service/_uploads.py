"""A bound on request bytes in flight: bodies being read and handled, across all requests.

Each upload reserves its declared length (or, chunked, each chunk as it comes) before reading it
and holds the reservation until its handler returns, since the decoded image lives that long.
Past ``max_bytes`` the request is answered 503 with Retry-After at once, unread, so a burst of
uploads costs a bounded amount of memory instead of one copy per request.
"""

from __future__ import annotations

from genstore.exceptions import GenstoreError, PayloadTooLarge
from starlette.requests import Request

__all__ = ["Busy", "UploadBudget", "UploadReservation"]


class Busy(GenstoreError):
    """Too many bytes in flight: retry shortly (HTTP 503 with Retry-After)."""


class UploadBudget:
    """The process's budget of request bytes in flight (touched only on the event loop)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.in_flight = 0
        self.peak = 0

    def take(self, n: int) -> None:
        """Reserve ``n`` bytes, or raise ``Busy`` (an upload alone over the budget is let through
        when nothing else is in flight, so a budget below the body limit cannot block one)."""
        if self.in_flight and self.in_flight + n > self.max_bytes:
            raise Busy("too many uploads in flight, retry shortly")
        self.in_flight += n
        self.peak = max(self.peak, self.in_flight)

    def give_back(self, n: int) -> None:
        self.in_flight -= n


class UploadReservation:
    """One request's share of the budget; ``release()`` when its handler is done."""

    def __init__(self, budget: UploadBudget) -> None:
        self.budget = budget
        self.held = 0

    def _take(self, n: int) -> None:
        self.budget.take(n)
        self.held += n

    def release(self) -> None:
        self.budget.give_back(self.held)
        self.held = 0

    async def read(self, request: Request, limit: int) -> bytearray:
        """The body; ``PayloadTooLarge`` past ``limit`` bytes, ``Busy`` past the budget."""
        declared = request.headers.get("content-length")
        length = int(declared) if declared and declared.isdigit() else None
        if length is not None:
            if length > limit:
                raise PayloadTooLarge(f"request body over {limit} bytes", limit=limit)
            self._take(length)
        body = bytearray()
        async for chunk in request.stream():
            if length is None:
                self._take(len(chunk))
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"request body over {limit} bytes", limit=limit)
        return body
