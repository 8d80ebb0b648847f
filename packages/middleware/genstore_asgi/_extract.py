"""A route's outputs: found by genstore's shared extraction, and made fetchable safely.

Relative result URLs (``/files/x.png``, ComfyUI's ``/view?...``) are resolved against the
middleware's ``base_url`` when given, else against the address the server itself is bound to
(``scope["server"]``, ``scope["scheme"]``, ``root_path``): never against the request's ``Host``
header, which the client chooses (a ``Host: 169.254.169.254`` would aim the download).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from genstore._recording.extract import extract_results
from genstore._recording.outputs import Output, decode_data_url
from genstore._recording.rules import RESULT_FIELDS, error_message

__all__ = [
    "RESULT_FIELDS",
    "ResultExtractor",
    "decode_data_url",
    "default_result_extractor",
    "error_message",
    "outputs_of",
    "server_base_url",
]

ResultExtractor = Callable[[Any], Any]
"""Given a route's parsed JSON answer: its outputs. It may return None, one URL (absolute or
relative), ``data:`` URL or ``bytes``, a ``genstore`` ``Output``, or a list of these, in order."""


def default_result_extractor(body: Any) -> list[Output]:
    """Every output genstore's shared extraction finds in ``body``, in the provider's order."""
    return extract_results(body)


def outputs_of(answer: Any) -> list[Output]:
    """A result extractor's answer as outputs (an ``Output`` as is, anything else extracted)."""
    if answer is None:
        return []
    if isinstance(answer, Output):
        return [answer]
    if isinstance(answer, list) and all(isinstance(item, Output) for item in answer):
        return list(answer)
    return extract_results(answer)


def server_base_url(
    scheme: str, server: tuple[str, int | None] | None, root_path: str
) -> str | None:
    """``scheme://host:port/root`` of the address the server is bound to; None if it has none
    (a Unix socket). A wildcard bind (``0.0.0.0``, ``::``) is reached on loopback."""
    if server is None or server[1] is None:
        return None
    host, port = server
    if host in ("0.0.0.0", ""):  # noqa: S104 - recognising a wildcard bind, not binding
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    scheme = "https" if scheme in ("https", "wss") else "http"
    return f"{scheme}://{host}:{port}{root_path.rstrip('/')}"
