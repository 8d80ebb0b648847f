"""Catalog rows back into records: a row that is not valid JSON or fails validation becomes
``CorruptRecord`` naming the record, never a raw pydantic error (shared by the SQL catalogs and the
sidecar catalog)."""

from __future__ import annotations

from typing import Any, TypeVar

from genstore import ImageRecord, OperationRecord
from genstore.exceptions import CorruptRecord
from pydantic import BaseModel, ValidationError

__all__ = ["REINDEX_HINT", "Row", "load_image", "load_operation", "parses", "problem"]

M = TypeVar("M", OperationRecord, ImageRecord)
B = TypeVar("B", bound=BaseModel)

Row = str | bytes | dict[str, Any]
"""A row's record: JSON text, or a JSON object already parsed (a ``jsonb`` column read through
PostgREST)."""

REINDEX_HINT = "`genstore verify --fix` indexes it again from its JSON record"
"""What to do about a corrupt catalog row (the JSON record is the truth)."""


def problem(exc: ValidationError) -> str:
    """The first thing wrong, without the input (a row may hold a secret or megabytes)."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    if not errors:
        return "does not validate"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where + ': ' if where else ''}{first['msg']}{more}"


def _validate(model: type[B], data: Row) -> B:
    if isinstance(data, dict):
        return model.model_validate(data)
    return model.model_validate_json(data)


def _load(model: type[M], data: Row, *, key: str, kind: str, where: str, hint: str) -> M:
    try:
        return _validate(model, data)
    except ValidationError as exc:
        raise CorruptRecord(
            f"the {kind} {key!r} in {where} is corrupt ({problem(exc)}): {hint}",
            key=key,
            kind=kind,
        ) from None


def load_operation(
    data: Row, *, operation_id: str, where: str, hint: str = REINDEX_HINT
) -> OperationRecord:
    """The operation record in ``data`` (a row of ``where``), or ``CorruptRecord``."""
    return _load(OperationRecord, data, key=operation_id, kind="operation", where=where, hint=hint)


def load_image(
    data: Row, *, user_id: str, image_id: str, where: str, hint: str = REINDEX_HINT
) -> ImageRecord:
    """The image record in ``data`` (a row of ``where``), or ``CorruptRecord``."""
    key = f"{user_id}/{image_id}"
    return _load(ImageRecord, data, key=key, kind="image", where=where, hint=hint)


def parses(model: type[OperationRecord] | type[ImageRecord], data: Row) -> bool:
    """Whether ``data`` is a valid ``model`` (for ``Catalog.unreadable_rows``)."""
    try:
        _validate(model, data)
    except ValidationError:
        return False
    return True
