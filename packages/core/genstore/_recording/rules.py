"""The recording rules the decorator, the middleware and the service share: which names are
secrets (dropped at any depth), which fields of a returned value hold the result, and how a failed
response's error text is read.

Request headers are never recorded at all (so ``Authorization`` and cookies cannot leak); what is
recorded — arguments, query parameters, JSON fields and form fields — goes through a ``Redactor``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

__all__ = [
    "RESULT_FIELDS",
    "Redact",
    "Redactor",
    "clip",
    "error_message",
    "is_secret_name",
]

logger = logging.getLogger(__name__)

Redact: TypeAlias = Iterable[str] | Callable[[str], bool]
"""More field names to drop (case-insensitive), or a predicate given a name: True drops it."""

# Whole words of a name (``x-api-key`` -> x, api, key; ``accessToken`` -> access, token).
# ``tokens`` is deliberately absent: ``max_tokens`` is a generation parameter, not a credential.
_SECRET_WORDS = frozenset(
    {
        "apikey",
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "auth",
        "authorization",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "session",
        "sessionid",
        "jwt",
        "bearer",
        "signature",
        "accesstoken",
        "refreshtoken",
        "apitoken",
        "secretkey",
        "accesskey",
        "privatekey",
        "clientsecret",
    }
)
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=4096)  # the same few names come back with every request
def is_secret_name(name: str) -> bool:
    """Whether a parameter name looks like a credential (api_key, X-Api-Key, accessToken, ...)."""
    words = _NON_ALNUM.split(_CAMEL_BOUNDARY.sub("_", name).lower())
    return any(word in _SECRET_WORDS for word in words) or "".join(words) in _SECRET_WORDS


class Redactor:
    """Drops credential-like names, plus the names (or the predicate) the application gives."""

    __slots__ = ("_names", "_predicate")

    def __init__(self, redact: Redact = ()) -> None:
        self._predicate: Callable[[str], bool] | None = None
        self._names: frozenset[str] = frozenset()
        if callable(redact):
            self._predicate = redact
        elif isinstance(redact, str):
            self._names = frozenset({redact.lower()})
        else:
            self._names = frozenset(name.lower() for name in redact)

    def drops(self, name: str) -> bool:
        """Whether the field ``name`` must not be recorded."""
        if is_secret_name(name) or name.lower() in self._names:
            return True
        if self._predicate is None:
            return False
        try:
            return bool(self._predicate(name))
        except Exception:
            # Fail closed: a broken predicate must not let a secret through.
            logger.exception("genstore: the redact callable raised for %r; dropping it", name)
            return True

    def clean(self, value: Any) -> Any:
        """``value`` with every dropped name removed from its objects, at any depth."""
        if isinstance(value, dict):
            return {
                key: self.clean(item)
                for key, item in value.items()
                if not (isinstance(key, str) and self.drops(key))
            }
        if isinstance(value, list):
            return [self.clean(item) for item in value]
        return value


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
        if isinstance(parsed, dict):
            for name in _ERROR_FIELDS:
                value = parsed.get(name)
                if isinstance(value, dict):  # {"error": {"message": ...}}, as OpenAI-style APIs
                    value = value.get("message", value)
                if value not in (None, "", [], {}):
                    message = value if isinstance(value, str) else json.dumps(value)
                    return clip(message)
    return clip(text) if text else f"HTTP {status_code}"


def clip(message: str) -> str:
    """``message`` cut to ``MAX_ERROR`` characters."""
    return message if len(message) <= MAX_ERROR else message[: MAX_ERROR - 1] + "…"
