"""Reading a generation route's JSON answer: its result URL, or its error message if it failed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genstore._recording.outputs import decode_data_url
from genstore._recording.rules import RESULT_FIELDS, error_message

__all__ = [
    "RESULT_FIELDS",
    "ResultExtractor",
    "decode_data_url",
    "default_result_extractor",
    "error_message",
    "resolve_url",
]

ResultExtractor = Callable[[Any], "str | None"]
"""Given a route's parsed JSON response, the result URL to store (or None)."""

_NESTED = ("result", "data")


def _first_url(value: Any) -> str | None:
    if isinstance(value, str):
        return value if _looks_like_url(value) else None
    if isinstance(value, list) and value:
        return _first_url(value[0])
    if isinstance(value, dict):
        for name in ("url", "image_url", "imageUrl", "resultUrl", "result_url"):
            found = _first_url(value.get(name))
            if found:
                return found
    return None


def _looks_like_url(value: str) -> bool:
    return value.startswith(("http://", "https://", "/", "data:")) and not value.startswith("//")


def default_result_extractor(body: Any) -> str | None:
    """The first URL among ``RESULT_FIELDS`` (then inside ``result`` / ``data``), or None.

    URLs may be absolute (http, https), relative to the service (``/files/x.png``) or ``data:``.
    """
    if isinstance(body, list):
        return _first_url(body)
    if not isinstance(body, dict):
        return None
    found = _first_field_url(body)
    if found:
        return found
    for name in _NESTED:
        nested = body.get(name)
        if isinstance(nested, dict):
            found = _first_field_url(nested)
            if found:
                return found
    return None


def _first_field_url(body: dict[str, Any]) -> str | None:
    for name in RESULT_FIELDS:
        value = body.get(name)
        if value is not None:
            found = _first_url(value)
            if found:
                return found
    return None


def resolve_url(value: str, base_url: str) -> str | None:
    """An absolute http(s) URL for ``value`` (relative paths joined to ``base_url``), else None."""
    if value.startswith(("http://", "https://")):
        return value
    if value.startswith("/") and not value.startswith("//"):
        return base_url.rstrip("/") + value
    return None
