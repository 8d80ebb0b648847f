"""What the templates show of a record: pure functions from records to small view objects."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from genstore import ArtifactRef, OperationRecord

__all__ = ["ArtifactView", "artifact_views", "kind_of", "pretty_json"]

_THUMBNAILABLE = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp")


@dataclass(frozen=True, slots=True)
class ArtifactView:
    """One input or result of an operation, as the pages link it."""

    role: str
    """``results`` or ``inputs`` (the URL segment)."""
    index: int
    ref: ArtifactRef
    kind: str
    """``image``, ``video``, ``audio`` or ``file``: how the page shows it."""
    thumbnail: bool
    """Whether a thumbnail can be made (Pillow decodes it)."""

    @property
    def filename(self) -> str:
        return self.ref.key.rsplit("/", 1)[-1]


def kind_of(content_type: str | None) -> str:
    """How a page shows bytes of this type."""
    base = (content_type or "").split(";", 1)[0].strip().lower()
    major = base.split("/", 1)[0]
    if base == "image/svg+xml":
        return "file"  # SVG can carry script: never shown inline
    return major if major in ("image", "video", "audio") else "file"


def artifact_views(record: OperationRecord, role: str) -> list[ArtifactView]:
    """The results (``role="results"``) or inputs of ``record``, in stored order."""
    refs = list(record.results) if role == "results" else list(record.inputs)
    return [
        ArtifactView(
            role=role,
            index=i,
            ref=ref,
            kind=kind_of(ref.content_type),
            thumbnail=ref.content_type.split(";", 1)[0].strip().lower() in _THUMBNAILABLE,
        )
        for i, ref in enumerate(refs)
    ]


def pretty_json(value: Any) -> str:
    """Indented JSON for a ``<pre>`` (the template escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
