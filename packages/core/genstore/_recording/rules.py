"""The recording rules the decorator, the middleware and the service share: what is a secret
(``genstore._redaction``'s one rule set, redacted at any depth), which fields of a returned value hold the result, and how a failed
response's error text is read.

Request headers are never recorded at all (so ``Authorization`` and cookies cannot leak); what is
recorded — arguments, query parameters, JSON fields and form fields — goes through a ``Redactor``.
"""

from __future__ import annotations

import json
from typing import TypeAlias

from .._redaction import Redactor, SecretNames, is_secret_name, redact, redact_text

__all__ = [
    "RESULT_FIELDS",
    "Redact",
    "Redactor",
    "clip",
    "error_message",
    "is_secret_name",
    "redact",
    "redact_text",
]

Redact: TypeAlias = SecretNames
"""More names to treat as secret (compared without case or separators), or a predicate given a
name: True redacts it (a predicate that raises redacts)."""


# -- results and errors ---------------------------------------------------------------------------

RESULT_FIELDS = (
    "b64_json",
    "base64",
    "resultUrl",
    "result_url",
    "url",
    "image_url",
    "imageUrl",
    "video_url",
    "videoUrl",
    "audio_url",
    "audioUrl",
    "output",
    "outputs",
    "images",
    "image",
    "videos",
    "video",
    "audio",
    "audio_file",
    "files",
    "file",
    "sample",
    "artifacts",
    "result",
    "results",
    "data",
)
"""Keys of an unrecognised object looked at, in order, by the result extraction: the first that
yields outputs wins (so a response naming one result twice, as ``url`` and ``image_url``, gives it
once). Base64 fields come first (they are the content, where a URL expires); fal's
``images``/``image``/``video``/``audio`` objects and BFL's ``result.sample`` are found through
the others."""

_ERROR_FIELDS = ("error", "message", "detail")
MAX_ERROR = 2000
"""Longest error text kept in a record (longer ones are clipped)."""


def error_message(body: bytes, content_type: str, status_code: int) -> str:
    """The message of a failed response: its ``error``/``message``/``detail`` field, or its text."""
    text = body.decode("utf-8", "replace").strip()
    if "json" in content_type:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        parsed = redact(parsed)  # an error body may echo the request (a 422 with its inputs)
        if isinstance(parsed, dict):
            for name in _ERROR_FIELDS:
                value = parsed.get(name)
                if isinstance(value, dict):  # {"error": {"message": ...}}, as OpenAI-style APIs
                    value = value.get("message", value)
                if value not in (None, "", [], {}):
                    message = value if isinstance(value, str) else json.dumps(value)
                    return clip(message)
    return clip(redact_text(text)) if text else f"HTTP {status_code}"


def clip(message: str) -> str:
    """``message`` cut to ``MAX_ERROR`` characters."""
    return message if len(message) <= MAX_ERROR else message[: MAX_ERROR - 1] + "…"
