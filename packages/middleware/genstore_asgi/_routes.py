"""Which requests are recorded, and as what: the values of the ``routes`` mapping.

A route value is an operation type (``"text_to_image"``), or one of three small typed values:

- ``Operation("upscale", results=False)``: an operation whose success carries no output (so no
  "no result found" note and warning);
- ``JobStart("text_to_video", job_id="id")``: the route starts a job (a 202 answer); it is
  recorded ``pending`` under the job id read from its JSON answer;
- ``JobComplete(job_id="id")``: a job's status route (polled) or a provider's webhook; the answer
  (or the webhook's body) that shows the job finished completes the pending operation.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from starlette.types import Scope

__all__ = ["JobComplete", "JobStart", "Operation", "RouteMatcher", "RouteSpec", "Routes"]


@dataclass(frozen=True, slots=True)
class Operation:
    """A route recorded as one operation of ``operation_type`` (a plain string means the same).

    ``results=False``: the route answers no generation output (a moderation check, a caption),
    so a success without one is expected, not noted.
    """

    operation_type: str
    results: bool = True


@dataclass(frozen=True, slots=True)
class JobStart:
    """A route that starts a job: recorded ``pending`` under the job id its JSON answer holds.

    ``job_id``: the answer's field holding the id (dotted for nested fields: ``"data.id"``).
    An answer that already shows the job finished (a status such as ``succeeded``, or outputs) is
    recorded complete at once; one without a job id is recorded as a plain operation.
    """

    operation_type: str
    job_id: str = "id"


@dataclass(frozen=True, slots=True)
class JobComplete:
    """A job's status route (polled) or a provider's webhook: completes the job's operation.

    ``job_id``: the field holding the id, read from the JSON answer, then the request body (a
    webhook's payload); dotted for nested fields. ``done``: given the JSON document (the answer,
    else the request body), whether the job finished; by default a terminal ``status`` (succeeded,
    completed, failed, canceled, ...) or outputs present. Non-terminal polls record nothing. A
    finished job nobody started here is recorded as an operation of ``operation_type``.
    ``methods``: the HTTP methods recorded (a poll is a GET, a webhook a POST).
    """

    job_id: str = "id"
    done: Callable[[Any], bool] | None = None
    operation_type: str = "job"
    methods: Collection[str] = ("GET", "POST")


RouteValue: TypeAlias = str | Operation | JobStart | JobComplete
"""What a route pattern maps to."""

Routes: TypeAlias = Mapping[str, RouteValue] | Callable[[Scope], "RouteValue | None"]
"""``{path pattern: route value}``, or a callable given the ASGI scope returning one or None.

A pattern is an exact path (``/api/generate/text-to-image``) or a glob: ``*`` matches within one
path segment, ``**`` matches across segments. A trailing ``/`` is ignored on both sides.
"""


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """A route value made uniform: what the middleware records a matching request as."""

    operation_type: str
    methods: frozenset[str]
    """HTTP methods recorded on this route."""
    results: bool = True
    """Whether a success is expected to carry outputs."""
    job: JobStart | JobComplete | None = None
    """How the request takes part in a job, if it does."""
    pattern: str = ""
    """The pattern that matched (warnings are given once per pattern)."""


def route_spec(value: object, pattern: str, methods: frozenset[str]) -> RouteSpec:
    """``value`` as a ``RouteSpec``; ``ValueError`` saying what is wrong with it."""
    if isinstance(value, str):
        value = Operation(value)
    if isinstance(value, JobComplete):
        _check_field(value.job_id, pattern)
        return RouteSpec(
            _checked_type(value.operation_type, pattern),
            frozenset(m.upper() for m in value.methods),
            job=value,
            pattern=pattern,
        )
    if isinstance(value, JobStart):
        _check_field(value.job_id, pattern)
        return RouteSpec(
            _checked_type(value.operation_type, pattern), methods, job=value, pattern=pattern
        )
    if isinstance(value, Operation):
        operation_type = _checked_type(value.operation_type, pattern)
        return RouteSpec(operation_type, methods, results=bool(value.results), pattern=pattern)
    raise ValueError(
        f"route {pattern!r}: expected an operation type, Operation, JobStart or JobComplete, "
        f"not {type(value).__name__}"
    )


def _checked_type(operation_type: object, pattern: str) -> str:
    if not isinstance(operation_type, str) or not operation_type:
        raise ValueError(f"route {pattern!r}: operation type must be a non-empty string")
    return operation_type


def _check_field(name: object, pattern: str) -> None:
    if not isinstance(name, str) or not name or any(not part for part in name.split(".")):
        raise ValueError(f"route {pattern!r}: job_id must name a field, such as 'id' or 'data.id'")


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
    """Answers ``match(scope)``: the ``RouteSpec`` to record a request as, or None.

    Exact paths are a dict lookup; globs are tried in the order given, after the exact paths.
    ``record_methods`` are the methods recorded on routes that do not name their own.
    """

    def __init__(
        self, routes: Routes, record_methods: frozenset[str] = frozenset({"POST"})
    ) -> None:
        self._callable: Callable[[Scope], RouteValue | None] | None = None
        self._record_methods = record_methods
        self._exact: dict[str, RouteSpec] = {}
        self._made: dict[object, RouteSpec] = {}
        self.seen: dict[str, RouteSpec | None] = {}
        """Paths already answered (exact ones up front): callers may look here before ``match``
        (stays empty for callable routes, whose answer may depend on more than the path)."""
        self._globs: list[tuple[re.Pattern[str], RouteSpec]] = []
        self.methods: frozenset[str] = record_methods
        """Every method some route records (a request of another method is never looked up)."""
        if callable(routes):
            self._callable = routes
            self.methods = record_methods | {"GET", "POST"}  # JobComplete's, if it returns one
            return
        for pattern, value in routes.items():
            if not isinstance(pattern, str) or not pattern.startswith("/"):
                raise ValueError(f"route pattern {pattern!r} must be a path starting with '/'")
            spec = route_spec(value, pattern, record_methods)
            self.methods = self.methods | spec.methods
            if "*" in pattern:
                self._globs.append((_compile_glob(_strip(pattern)), spec))
            else:
                self._exact[_strip(pattern)] = spec
        self.seen.update(self._exact)

    def match(self, scope: Scope) -> RouteSpec | None:
        """The route for this request's path, or None to let it pass unrecorded."""
        if self._callable is not None:
            return self._from_callable(scope)
        path: str = scope["path"]
        try:
            return self.seen[path]
        except KeyError:
            pass
        found = self._match_path(path)
        if len(self.seen) < _MAX_SEEN:  # paths with ids in them must not grow this forever
            self.seen[path] = found
        return found

    def _from_callable(self, scope: Scope) -> RouteSpec | None:
        assert self._callable is not None
        value = self._callable(scope)
        if value is None:
            return None
        try:
            return self._made[value]
        except (KeyError, TypeError):
            pass
        spec = route_spec(value, scope["path"], self._record_methods)
        if len(self._made) < _MAX_SEEN:
            with contextlib.suppress(TypeError):  # an unhashable value: built again next time
                self._made[value] = spec
        return spec

    def _match_path(self, path: str) -> RouteSpec | None:
        found = self._exact.get(path)
        if found is not None:
            return found
        if path.endswith("/"):
            path = _strip(path)
            found = self._exact.get(path)
            if found is not None:
                return found
        for regex, spec in self._globs:
            if regex.match(path):
                return spec
        return None
