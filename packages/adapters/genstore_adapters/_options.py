"""The one parser of URL options (``?name=value``) every adapter uses, so they all accept the
same spellings.

- true/false: ``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off`` (any case);
  an empty value is false;
- numbers: decimal, finite; positive unless a minimum says otherwise; whole where a count is
  asked for;
- unknown names: refused with the list of known ones (``check_known``), except where a backend
  hands the rest to its library on purpose (fsspec storage options, libpq parameters).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from genstore.exceptions import ConfigurationError

__all__ = ["UrlOptions"]

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True, slots=True)
class UrlOptions:
    """The options of one URL; ``where`` names it in messages (``"s3://"``, ``"catalog"``)."""

    values: Mapping[str, str]
    where: str

    def check_known(self, known: Iterable[str]) -> None:
        """Raise ``ConfigurationError`` naming every option not in ``known``."""
        allowed = set(known)
        unknown = sorted(set(self.values) - allowed)
        if unknown:
            raise ConfigurationError(
                f"unknown {self.where} option(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(allowed)) or 'none'} (secrets come from the environment, "
                "never from the URL)"
            )

    def text(self, name: str, default: str | None = None) -> str | None:
        """The raw value; ``default`` when absent or empty."""
        return self.values.get(name) or default

    def choice(self, name: str, choices: Iterable[str], default: str | None = None) -> str | None:
        """One of ``choices`` (exact spelling); ``default`` when absent or empty."""
        value = self.text(name)
        if value is None:
            return default
        allowed = tuple(choices)
        if value not in allowed:
            raise ConfigurationError(
                f"{self.where} option {name}={value!r}: expected one of {', '.join(allowed)}"
            )
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        """A true/false option."""
        raw = self.values.get(name)
        if raw is None:
            return default
        lowered = raw.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigurationError(f"{self.where} option {name}={raw!r}: expected true or false")

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        """A finite number above ``minimum`` (at or above it when ``minimum`` is not 0)."""
        raw = self.values.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        low_ok = value > 0 if minimum == 0 else value >= minimum
        if not math.isfinite(value) or not low_ok:
            bound = "positive" if minimum == 0 else f"at least {minimum:g}"
            raise ConfigurationError(
                f"{self.where} option {name}={raw!r}: expected a {bound} number"
            )
        return value

    def count(self, name: str, default: int, *, minimum: int = 1) -> int:
        """A whole number, at least ``minimum``."""
        raw = self.values.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not value.is_integer() or value < minimum:
            raise ConfigurationError(
                f"{self.where} option {name}={raw!r}: expected a whole number >= {minimum}"
            )
        return int(value)
