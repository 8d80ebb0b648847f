"""``SaveRequest``: everything one save takes, as one frozen, checked value.

It is built once at the edge (``Store.save_complete_operation``, the decorator, the middleware)
and handed whole to the recorder, the spool (which writes it with a format version) and the
saver, so the save's arguments are named in one place and checked once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import JsonValue, ValidationError

from ._ids import check_id, new_ulid
from ._records import RequestInfo
from ._sources import Source
from .exceptions import InvalidInput

__all__ = ["MAX_IDEMPOTENCY_KEY", "SaveRequest", "error_text"]

MAX_TYPE_LENGTH = 128
MAX_IDEMPOTENCY_KEY = 512


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
    result_url: str | None = None
    """Where the result can be downloaded (the saver downloads it)."""
    result: Source | None = None
    """The result itself (instead of ``result_url``)."""
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
        workflow_analysis: JsonValue = None,
        error: str | BaseException | None = None,
        user_id: str | None = None,
        idempotency_key: str | None = None,
        duration_ms: float | None = None,
        request: RequestInfo | dict[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> SaveRequest:
        """Check and normalise a save's arguments; ``InvalidInput`` names the first bad one."""
        _check_type(operation_type)
        if user_id is not None:
            check_id(user_id, "user_id")
        if prompt is not None and not isinstance(prompt, str):
            raise InvalidInput("prompt must be a string")
        if result is not None and result_url is not None:
            raise InvalidInput("give result or result_url, not both")
        if isinstance(input_images, (bytes, str)) or not isinstance(input_images, Sequence):
            raise InvalidInput("input_images must be a list of images")
        if result_url is not None and not isinstance(result_url, str):
            raise InvalidInput("result_url must be a string")
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str)
            or not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY
        ):
            raise InvalidInput(
                f"idempotency_key must be a string of 1 to {MAX_IDEMPOTENCY_KEY} characters"
            )
        if created_at is not None and not isinstance(created_at, datetime):
            raise InvalidInput("created_at must be a datetime")
        return cls(
            operation_type=str(operation_type),
            prompt=prompt,
            parameters=parameters,
            input_images=tuple(_snapshot(image) for image in input_images),
            result_url=result_url,
            result=None if result is None else _snapshot(result),
            workflow_analysis=workflow_analysis,
            error=error_text(error),
            user_id=user_id,
            idempotency_key=idempotency_key,
            duration_ms=duration_ms,
            request=_request_info(request),
            created_at=created_at,
        )

    def for_later(self) -> SaveRequest:
        """This request made safe to save later, or again: with an idempotency key (so a replay
        lands on the same record) and a creation time (so a replay keeps it)."""
        changes: dict[str, Any] = {}
        if self.idempotency_key is None:
            changes["idempotency_key"] = f"auto-{new_ulid()[1]}"
        if self.created_at is None:
            changes["created_at"] = datetime.now(UTC)
        return dataclasses.replace(self, **changes) if changes else self


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
