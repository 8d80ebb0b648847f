"""``SaveRequest``: everything one save takes, as one frozen, checked value.

It is built once at the edge (``Store.save_complete_operation``, the decorator, the middleware)
and handed whole to the recorder, the spool (which writes it with a format version) and the
saver, so the save's arguments are named in one place and checked once.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias, Union

from pydantic import JsonValue, ValidationError

from ._ids import check_id, new_operation_id
from ._records import RequestInfo
from ._sources import Source
from ._storable import storable_json, storable_text
from .exceptions import InvalidInput

__all__ = [
    "MAX_IDEMPOTENCY_KEY",
    "Completion",
    "FetchFailed",
    "Fetched",
    "JobCompletion",
    "ResultSource",
    "ResultURL",
    "SaveRequest",
    "error_text",
]

MAX_TYPE_LENGTH = 128
MAX_IDEMPOTENCY_KEY = 512
MAX_JOB_ID = 512
_OPERATION_ID = re.compile(r"[0-9]{8}_[0-9A-HJKMNP-TV-Z]{26}")
"""``YYYYMMDD_`` + a ULID in Crockford base 32, as ``genstore._ids.new_operation_id`` makes."""


@dataclass(frozen=True, slots=True)
class ResultURL:
    """An output to download (a provider's URL, or a ``data:`` URL), as opposed to a local path."""

    url: str


@dataclass(frozen=True, slots=True)
class Fetched:
    """An output already downloaded into a local file (by the recorder, while the store was down:
    provider URLs expire), and where it came from."""

    path: str
    source_url: str
    """The URL, signing parameters removed."""


@dataclass(frozen=True, slots=True)
class FetchFailed:
    """An output whose download failed when the recorder fetched it (kept in ``result_error``)."""

    source_url: str
    """The URL, signing parameters removed."""
    error: str


ResultSource: TypeAlias = Union[ResultURL, Fetched, FetchFailed, Source]  # noqa: UP007
"""One output of an operation: a URL to download, a fetched or failed download, or the
bytes/path/file/PIL image itself (``Source`` holds a string forward reference, hence ``Union``)."""


@dataclass(frozen=True, slots=True)
class SaveRequest:
    """One operation to save. Make it with ``SaveRequest.build`` (which checks every field)."""

    operation_type: str
    """What kind of generation (an ``OperationType`` value or any other string)."""
    prompt: str | None = None
    """The prompt, as sent to the provider."""
    parameters: JsonValue = None
    """Any JSON: the generation's settings."""
    input_images: tuple[Source, ...] = ()
    """Input images: bytes, paths, file objects or PIL images."""
    outputs: tuple[ResultSource, ...] = ()
    """Every output, in the provider's order: URLs to download, or the outputs themselves."""
    workflow_analysis: JsonValue = None
    """Any JSON the application adds about the workflow."""
    error: str | None = None
    """Why the operation failed (its presence marks the record failed)."""
    user_id: str | None = None
    """Whose operation it is."""
    idempotency_key: str | None = None
    """Saves sharing a key land on one record."""
    duration_ms: float | None = None
    """How long the generation took."""
    request: RequestInfo | None = None
    """The HTTP route that ran it, when recorded by the middleware."""
    created_at: datetime | None = None
    """When the operation happened (default: the time in its id)."""
    job_id: str | None = None
    """The provider's or the application's job id (for an operation completed later)."""
    pending: bool = False
    """Started, not finished: saved ``pending`` until ``complete_operation``."""
    result_note: str | None = None
    """Why outputs are missing that the caller expected (e.g. none found in a recorded
    response); kept in the record's ``result_error``."""
    notes: tuple[str, ...] = ()
    """What was changed to make the record storable (``storable``); kept in ``record.notes``."""
    operation_id: str | None = None
    """The id to save under, chosen before the first attempt (``for_later``), so every retry
    or replay of this request lands on one record; None: the saver makes a fresh one."""

    @property
    def result_urls(self) -> list[str]:
        """The outputs that are URLs."""
        return [o.url for o in self.outputs if isinstance(o, ResultURL)]

    @classmethod
    def build(
        cls,
        *,
        operation_type: str,
        prompt: str | None = None,
        parameters: JsonValue = None,
        input_images: Sequence[Source] = (),
        result_url: str | None = None,
        result: Source | None = None,
        result_urls: Sequence[str] | None = None,
        results: Sequence[Source] | None = None,
        outputs: Sequence[ResultSource] | None = None,
        workflow_analysis: JsonValue = None,
        error: str | BaseException | None = None,
        user_id: str | None = None,
        idempotency_key: str | None = None,
        duration_ms: float | None = None,
        request: RequestInfo | dict[str, Any] | None = None,
        created_at: datetime | None = None,
        job_id: str | None = None,
        pending: bool = False,
        result_note: str | None = None,
        operation_id: str | None = None,
    ) -> SaveRequest:
        """Check and normalise a save's arguments; ``InvalidInput`` names the first bad one.

        The outputs come from exactly one of ``result``, ``result_url``, ``results``,
        ``result_urls`` or ``outputs`` (mixed, in order, URLs as ``ResultURL``).
        """
        _check_scalars(operation_type, user_id, prompt, created_at, operation_id)
        _check_list(input_images, "input_images")
        found = _outputs(result, result_url, results, result_urls, outputs)
        if pending and found:
            raise InvalidInput("a started (pending) operation has no results yet")
        _check_key(job_id, "job_id", MAX_JOB_ID)
        _check_key(idempotency_key, "idempotency_key", MAX_IDEMPOTENCY_KEY)
        return cls(
            operation_type=str(operation_type),
            prompt=prompt,
            parameters=parameters,
            input_images=tuple(_snapshot(image) for image in input_images),
            outputs=found,
            workflow_analysis=workflow_analysis,
            error=error_text(error),
            user_id=user_id,
            idempotency_key=idempotency_key,
            duration_ms=duration_ms,
            request=_request_info(request),
            created_at=created_at,
            job_id=job_id,
            pending=bool(pending),
            result_note=None if result_note is None else str(result_note),
            operation_id=operation_id,
        )

    def storable(self) -> SaveRequest:
        """This request with what a record cannot hold made storable, each change noted: non-finite
        numbers kept as text, nesting past 64 levels cut, invalid Unicode replaced. What the
        recorder saves (it must never lose a record); the direct API refuses such values."""
        notes: list[str] = []
        prompt = None if self.prompt is None else storable_text(self.prompt, "prompt", notes)
        parameters = storable_json(self.parameters, "parameters", notes)
        analysis = storable_json(self.workflow_analysis, "workflow_analysis", notes)
        error = None if self.error is None else storable_text(self.error, "error", notes)
        if not notes:  # nothing changed (the usual case): no copy
            return self
        return dataclasses.replace(
            self,
            prompt=prompt,
            parameters=parameters,
            workflow_analysis=analysis,
            error=error,
            notes=(*self.notes, *notes),
        )

    def for_later(self) -> SaveRequest:
        """This request made safe to save later, or again: ``storable``, with its operation id
        chosen now (so a retry or replay lands on the same record, which the saver finds by that
        id: no idempotency marker needed) and a creation time (so a replay keeps it)."""
        self = self.storable()
        changes: dict[str, Any] = {}
        if self.operation_id is None:
            changes["operation_id"] = new_operation_id()[1]
        if self.created_at is None:
            changes["created_at"] = datetime.now(UTC)
        return dataclasses.replace(self, **changes) if changes else self


@dataclass(frozen=True, slots=True)
class Completion:
    """How a started operation ended: its outputs, or its error. Make it with ``build``."""

    outputs: tuple[ResultSource, ...] = ()
    """Every output, in the provider's order."""
    error: str | None = None
    """Why it failed (its presence marks the record failed)."""
    duration_ms: float | None = None
    """How long it took (default: from its creation until now)."""
    result_note: str | None = None
    """Why outputs are missing (as ``SaveRequest.result_note``)."""

    @classmethod
    def build(
        cls,
        *,
        result_url: str | None = None,
        result: Source | None = None,
        result_urls: Sequence[str] | None = None,
        results: Sequence[Source] | None = None,
        outputs: Sequence[ResultSource] | None = None,
        error: str | BaseException | None = None,
        duration_ms: float | None = None,
    ) -> Completion:
        """Check a completion's arguments (the outputs as for ``SaveRequest.build``)."""
        return cls(
            outputs=_outputs(result, result_url, results, result_urls, outputs),
            error=error_text(error),
            duration_ms=duration_ms,
        )


@dataclass(frozen=True, slots=True)
class JobCompletion:
    """A job's end as a recorded route saw it (a poll or a webhook): it completes the operation
    started for ``job_id``, or, if none was, ``fallback`` is saved as an operation of its own."""

    job_id: str
    """The job that ended."""
    fallback: SaveRequest
    """The whole operation as the route saw it; its outputs, error and duration complete the
    started operation, or it is saved as it is when nobody started one."""

    @property
    def completion(self) -> Completion:
        """What completes the started operation."""
        request = self.fallback
        return Completion(
            outputs=request.outputs,
            error=request.error,
            duration_ms=None,  # the job's duration runs from its start, not from this request
            result_note=request.result_note,
        )

    def for_later(self) -> JobCompletion:
        """As ``SaveRequest.for_later``, for the fallback."""
        return dataclasses.replace(self, fallback=self.fallback.for_later())


def error_text(error: str | BaseException | None) -> str | None:
    """The message an error is recorded with: an exception's text (or its type's name)."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        return str(error) or type(error).__name__
    if not isinstance(error, str):
        raise InvalidInput("error must be a string or an exception")
    return error or "error"


def _check_type(operation_type: object) -> None:
    if not isinstance(operation_type, str) or not operation_type.strip():
        raise InvalidInput("operation_type must be a non-empty string")
    if len(operation_type) > MAX_TYPE_LENGTH or any(ord(c) < 32 for c in operation_type):
        raise InvalidInput(f"operation_type must be at most {MAX_TYPE_LENGTH} printable characters")


def _check_scalars(
    operation_type: object,
    user_id: str | None,
    prompt: object,
    created_at: object,
    operation_id: object,
) -> None:
    _check_type(operation_type)
    if user_id is not None:
        check_id(user_id, "user_id")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidInput("prompt must be a string")
    if created_at is not None and not isinstance(created_at, datetime):
        raise InvalidInput("created_at must be a datetime")
    if operation_id is not None and not (
        isinstance(operation_id, str) and _OPERATION_ID.fullmatch(operation_id)
    ):
        raise InvalidInput("operation_id must be YYYYMMDD_ followed by a ULID")


def _check_list(value: object, name: str) -> None:
    if isinstance(value, (bytes, str)) or not isinstance(value, Sequence):
        raise InvalidInput(f"{name} must be a list")


def _check_key(value: object, name: str, longest: int) -> None:
    if value is not None and (not isinstance(value, str) or not 0 < len(value) <= longest):
        raise InvalidInput(f"{name} must be a string of 1 to {longest} characters")


def _outputs(
    result: Source | None,
    result_url: str | None,
    results: Sequence[Source] | None,
    result_urls: Sequence[str] | None,
    outputs: Sequence[ResultSource] | None,
) -> tuple[ResultSource, ...]:
    given = [
        name
        for name, value in (
            ("result", result),
            ("result_url", result_url),
            ("results", results),
            ("result_urls", result_urls),
            ("outputs", outputs),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise InvalidInput(f"give one of {', '.join(given)}, not several")
    if result_url is not None or result_urls is not None:
        urls = [result_url] if result_url is not None else result_urls
        _check_list(urls, "result_urls")
        assert urls is not None
        if not all(isinstance(url, str) for url in urls):
            raise InvalidInput("result URLs must be strings")
        return tuple(ResultURL(url) for url in urls)
    if result is not None:
        return (_snapshot(result),)
    items = results if results is not None else outputs
    if items is None:
        return ()
    _check_list(items, "results")
    kept = (ResultURL, Fetched, FetchFailed)
    return tuple(o if isinstance(o, kept) else _snapshot(o) for o in items)


def _request_info(request: RequestInfo | dict[str, Any] | None) -> RequestInfo | None:
    if request is None or isinstance(request, RequestInfo):
        return request
    try:
        return RequestInfo.model_validate(request)
    except ValidationError as exc:
        raise InvalidInput(f"request: {exc.errors()[0].get('msg', 'invalid')}") from exc


def _snapshot(source: Source) -> Source:
    # A bytearray or memoryview may be reused by the caller as soon as the save is handed off.
    return bytes(source) if isinstance(source, (bytearray, memoryview)) else source
