"""Query-parameter readers shared by the routes."""

from __future__ import annotations

from genstore.exceptions import InvalidInput
from starlette.requests import Request

__all__ = ["int_param"]


def int_param(request: Request, name: str, default: int) -> int:
    """The integer query parameter ``name`` (``default`` when absent); ``InvalidInput`` otherwise."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer") from None
