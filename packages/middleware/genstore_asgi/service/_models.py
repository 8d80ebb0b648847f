"""The API's request and response bodies, as pydantic models: they validate what comes in, shape
what goes out, and are the schemas of the OpenAPI document (``_openapi``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from genstore import ImageStatus, OperationRecord, OperationStatus
from pydantic import BaseModel, ConfigDict, Field, JsonValue

__all__ = [
    "CreateImage",
    "Deleted",
    "ErrorBody",
    "Health",
    "HistoryPage",
    "HistoryQuery",
    "ImageOut",
    "ImagePage",
    "ImageQuery",
    "OneImage",
    "Pagination",
    "StatusChange",
]

# page * limit must stay a 64-bit offset for every catalog (page 2**63 once answered 500).
MAX_PAGE = 1_000_000_000


class _Model(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="ignore")


class CreateImage(_Model):
    """A generated image to store (the seed's body)."""

    prompt: str
    """The prompt the image was generated from."""
    imageData: str
    """The PNG, base64-encoded (a ``data:image/png;base64,`` prefix is accepted)."""
    metadata: dict[str, JsonValue] | None = None
    """The seed's generated_by, timestamp, width, height, steps, cfgScale, model, plus any extra."""


class StatusChange(_Model):
    """A new status for an image."""

    status: ImageStatus
    """generated, printed, ordered or deleted."""


class ImageQuery(_Model):
    """Paging and filtering of the caller's images."""

    page: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 1
    """Page number, from 1."""
    limit: Annotated[int, Field(ge=1, le=100)] = 10
    """Images per page."""
    status: ImageStatus | None = None
    """Only images with this status."""


class HistoryQuery(_Model):
    """Filtering and paging of the caller's operations."""

    type: str | None = None
    """Only operations of this type (text_to_image, ...)."""
    status: OperationStatus | None = None
    """Only operations with this outcome."""
    limit: Annotated[int, Field(ge=1, le=1000)] = 50
    """Operations per page."""
    cursor: str | None = None
    """The ``next_cursor`` of the previous page."""


class ImageOut(_Model):
    """An image as the API shows it."""

    image_id: str
    user_id: str
    prompt: str
    image_url: str | None
    """Where to fetch the PNG: a storage URL, or this API's ``/api/images/{id}/file`` path."""
    status: ImageStatus
    metadata: dict[str, JsonValue]
    size: int
    sha256: str
    width: int
    height: int
    created_at: datetime
    updated_at: datetime


class Pagination(_Model):
    """Where a page sits in the whole list."""

    page: int
    limit: int
    total: int
    pages: int


class OneImage(_Model):
    """One image."""

    success: Literal[True] = True
    data: ImageOut


class ImagePage(_Model):
    """A page of images, newest first."""

    success: Literal[True] = True
    data: list[ImageOut]
    pagination: Pagination


class HistoryPage(_Model):
    """A page of operations, newest first."""

    success: Literal[True] = True
    data: list[OperationRecord]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; null on the last one."""


class Deleted(_Model):
    """The image is gone."""

    success: Literal[True] = True
    message: str


class ErrorBody(_Model):
    """Every error the API answers (4xx and 5xx)."""

    success: Literal[False] = False
    error: str
    """A short reason; never a path, a URL or a backend's own message."""


class Health(_Model):
    """Whether the service can reach its storage, and which part failed."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, Literal["ok", "unavailable"]]
    """Each part (``blobs``, ``catalog``) and its state."""


def dump(model: BaseModel) -> Any:
    """``model`` as JSON-ready data."""
    return model.model_dump(mode="json")
