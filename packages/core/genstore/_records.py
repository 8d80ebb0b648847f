"""The record types genstore stores: pydantic v2 models whose JSON round-trips exactly."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue, model_validator

__all__ = [
    "IMAGE_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "ArtifactRef",
    "ImageRecord",
    "ImageStatus",
    "OperationRecord",
    "OperationStatus",
    "OperationType",
    "Page",
    "RequestInfo",
    "SaveResult",
    "UTCDateTime",
]

SCHEMA_VERSION = 2
"""Written into every operation record; bumped when a stored field changes meaning. Version 1
records (one ``result``) read as version 2 (``results == [result]``)."""

IMAGE_SCHEMA_VERSION = 1
"""Written into every image record."""


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UTCDateTime = Annotated[datetime, AfterValidator(_to_utc)]
"""A datetime normalised to UTC (naive values are taken as UTC)."""


def _finite(value: JsonValue) -> JsonValue:
    # JSON has no NaN or Infinity: accepting them would break the exact round-trip.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError("JSON cannot hold NaN or Infinity")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


StrictJson = Annotated[JsonValue, AfterValidator(_finite)]
"""Any JSON value, finite numbers only."""


class OperationType(StrEnum):
    """The operation types of the integration guide; any other string is accepted too."""

    TEXT_TO_IMAGE = "text_to_image"
    IMAGE_EDIT_SINGLE = "image_edit_single"
    IMAGE_EDIT_MULTIPLE = "image_edit_multiple"
    IMG_TO_IMG = "img_to_img"
    TEXT_TO_VIDEO = "text_to_video"
    IMAGE_TO_VIDEO_SINGLE = "image_to_video_single"
    IMAGE_TO_VIDEO_TRANSITION = "image_to_video_transition"
    EDIT_THEN_VIDEO = "edit_then_video"


class OperationStatus(StrEnum):
    """Whether the generation succeeded (as the caller said), or is still running."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ImageStatus(StrEnum):
    """A user image's life cycle, as the images service of the seed has it."""

    GENERATED = "generated"
    PRINTED = "printed"
    ORDERED = "ordered"
    DELETED = "deleted"


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class ArtifactRef(_Record):
    """A stored blob: where it is and what it is."""

    key: str
    """Path of the blob inside the backend (identical on every backend)."""
    sha256: str
    """Hex SHA-256 of the stored bytes."""
    size: int = Field(ge=0)
    """Size in bytes."""
    content_type: str
    """MIME type, sniffed from the bytes where possible."""
    width: int | None = None
    """Pixel width, for images."""
    height: int | None = None
    """Pixel height, for images."""
    source_url: str | None = None
    """Where it was downloaded from, signing parameters removed (None for bytes handed over)."""


class RequestInfo(_Record):
    """The HTTP request an operation was recorded from (middleware only)."""

    route: str
    """The request path."""
    method: str
    """The HTTP method."""
    status_code: int | None = None
    """The response status, or None when the app raised before answering."""


class OperationRecord(_Record):
    """One generation operation: what was asked, with what, and what came out."""

    schema_version: int = SCHEMA_VERSION
    """Version of this record's layout."""
    operation_id: str
    """Unique id, safe as a file name, sorting in creation order: ``YYYYMMDD_`` + a ULID."""
    operation_type: str
    """An ``OperationType`` value or any other string (detected workflow types)."""
    status: OperationStatus
    """``failed`` when the caller passed an error, ``pending`` until a started operation is
    completed, else ``succeeded``."""
    prompt: str | None = None
    """The prompt, as given."""
    parameters: StrictJson = None
    """Every other parameter: any JSON, no length cap."""
    inputs: list[ArtifactRef] = Field(default_factory=list)
    """Input images, stored content-addressed."""
    results: list[ArtifactRef] = Field(default_factory=list)
    """Stored copies of every output, in the provider's order."""
    result_source_url: str | None = None
    """The URL the first output was downloaded from, signing parameters removed."""
    result_error: str | None = None
    """Which outputs could not be stored and why, or that a success carried none (the record is
    saved all the same)."""
    workflow_analysis: StrictJson = None
    """Workflow analysis data, if the caller had any."""
    error: str | None = None
    """The generation's error message, for failed operations."""
    user_id: str | None = None
    """The user the operation was made for."""
    created_at: UTCDateTime
    """When the operation was recorded (UTC)."""
    duration_ms: float | None = None
    """How long the generation took, if known."""
    request: RequestInfo | None = None
    """The HTTP request, when recorded by the middleware."""
    idempotency_key: str | None = None
    """Retries carrying the same key land on the same record."""
    job_id: str | None = None
    """The provider's or the application's job id, for operations that finish later."""
    completed_at: UTCDateTime | None = None
    """When a started operation was completed (UTC); None for operations saved whole."""
    notes: list[str] = Field(default_factory=list)
    """What the recorder changed so the record could be stored (non-finite numbers kept as text,
    nesting cut, invalid Unicode replaced); empty for records saved as given."""

    @model_validator(mode="before")
    @classmethod
    def _read_version_1(cls, data: Any) -> Any:
        """A version-1 record (or a caller) giving one ``result`` means ``results == [result]``."""
        if isinstance(data, dict) and "result" in data:
            data = dict(data)
            first = data.pop("result")
            if "results" in data and first is not None:
                raise ValueError("give result or results, not both")
            if "results" not in data:
                data["results"] = [] if first is None else [first]
            if data.get("schema_version") == 1:
                data["schema_version"] = SCHEMA_VERSION
        return data

    @property
    def result(self) -> ArtifactRef | None:
        """The first of ``results`` (what version 1 called the result), or None."""
        return self.results[0] if self.results else None


class ImageRecord(_Record):
    """A user's image, as the images service of the seed keeps it."""

    schema_version: int = IMAGE_SCHEMA_VERSION
    """Version of this record's layout."""
    image_id: str
    """Unique id of the image."""
    user_id: str
    """Owner; nobody else reaches the image."""
    prompt: str
    """The sanitised prompt."""
    image_url: str | None = None
    """A URL to fetch the image (refreshed when read: signed URLs expire)."""
    key: str
    """Path of the image inside the backend."""
    content_type: str = "image/png"
    """``image/png`` (the seed's type), or ``image/jpeg``/``image/webp`` where accepted."""
    status: ImageStatus = ImageStatus.GENERATED
    """Life-cycle status."""
    metadata: dict[str, StrictJson] = Field(default_factory=dict)
    """The seed's generated_by, timestamp, width, height, steps, cfgScale, model, plus any extra."""
    size: int = Field(ge=0)
    """Image size in bytes."""
    sha256: str
    """Hex SHA-256 of the image."""
    width: int
    """Pixel width read from the image."""
    height: int
    """Pixel height read from the image."""
    operation_id: str | None = None
    """The operation whose result this image was made from (``create_from_operation``)."""
    created_at: UTCDateTime
    """When the image was stored (UTC)."""
    updated_at: UTCDateTime
    """When the record last changed (UTC)."""


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """One page of results: history pages by cursor, image pages by number."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    items: list[T]
    """The records on this page."""
    next_cursor: str | None = None
    """History: pass as ``cursor`` to get the next page; None on the last page."""
    page: int | None = None
    """Images: this page's number, from 1."""
    limit: int | None = None
    """Images: the page size asked for."""
    total: int | None = None
    """Images: how many records match in all."""


class SaveResult(BaseModel):
    """What ``save_complete_operation`` returns."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    operation_id: str
    """The saved record's id."""
    record: OperationRecord
    """The saved record."""
    created: bool = True
    """False when an idempotency key matched an existing record, which is returned unchanged."""

    @property
    def status(self) -> Literal["pending", "succeeded", "failed"]:
        """The operation's status."""
        return self.record.status.value
