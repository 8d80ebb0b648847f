"""Which requests are recorded, and as what operation type."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeAlias

from starlette.types import Scope

__all__ = ["RouteMatcher", "Routes"]

Routes: TypeAlias = Mapping[str, str] | Callable[[Scope], str | None]
"""``{path pattern: operation type}``, or a callable given the ASGI scope returning a type or None.

A pattern is an exact path (``/api/generate/text-to-image``) or a glob: ``*`` matches within one
path segment, ``**`` matches across segments. A trailing ``/`` is ignored on both sides.
"""


_MAX_SEEN = 4096


def _compile_glob(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*|\*)", pattern)
    regex = "".join(
        "[^/]*" if part == "*" else ".*" if part == "**" else re.escape(part) for part in parts
    )
    return re.compile(regex + r"\Z", re.DOTALL)


def _strip(path: str) -> str:
    if not path.endswith("/"):
        return path
    return path.rstrip("/") or "/"


class RouteMatcher:
    """Answers ``match(scope)``: the operation type to record a request as, or None.

    Exact paths are a dict lookup; globs are tried in the order given, after the exact paths.
    """

    def __init__(self, routes: Routes) -> None:
        self._callable: Callable[[Scope], str | None] | None = None
        self._exact: dict[str, str] = {}
        self.seen: dict[str, str | None] = {}
        """Paths already answered (exact ones up front): callers may look here before ``match``
        (stays empty for callable routes, whose answer may depend on more than the path)."""
        self._globs: list[tuple[re.Pattern[str], str]] = []
        if callable(routes):
            self._callable = routes
            return
        for pattern, operation_type in routes.items():
            if not isinstance(pattern, str) or not pattern.startswith("/"):
                raise ValueError(f"route pattern {pattern!r} must be a path starting with '/'")
            if not isinstance(operation_type, str) or not operation_type:
                raise ValueError(f"route {pattern!r}: operation type must be a non-empty string")
            if "*" in pattern:
                self._globs.append((_compile_glob(_strip(pattern)), operation_type))
            else:
                self._exact[_strip(pattern)] = operation_type
        self.seen.update(self._exact)

    def match(self, scope: Scope) -> str | None:
        """The operation type for this request's path, or None to let it pass unrecorded."""
        if self._callable is not None:
            return self._callable(scope)
        path: str = scope["path"]
        try:
            return self.seen[path]
        except KeyError:
            pass
        found = self._match_path(path)
        if len(self.seen) < _MAX_SEEN:  # paths with ids in them must not grow this forever
            self.seen[path] = found
        return found

    def _match_path(self, path: str) -> str | None:
        found = self._exact.get(path)
        if found is not None:
            return found
        if path.endswith("/"):
            path = _strip(path)
            found = self._exact.get(path)
            if found is not None:
                return found
        for regex, operation_type in self._globs:
            if regex.match(path):
                return operation_type
        return None
