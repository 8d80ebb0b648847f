"""Keeping secrets out of records: credential-like parameter names are dropped, at any depth.

Request headers are never recorded at all (so ``Authorization`` and cookies cannot leak); what is
recorded — query parameters, JSON fields and form fields — goes through a ``Redactor`` first.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

__all__ = ["Redact", "Redactor", "is_secret_name"]

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
