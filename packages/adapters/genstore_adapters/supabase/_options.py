"""URL options (``?name=value``) of the Supabase backend and catalog."""

from __future__ import annotations

from genstore.exceptions import ConfigurationError

__all__ = ["flag", "positive"]


def flag(options: dict[str, str], name: str, default: bool = False) -> bool:
    """A true/false option."""
    raw = options.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("", "0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"option {name}={raw!r}: expected true or false")


def positive(options: dict[str, str], name: str, default: float, *, integer: bool = False) -> float:
    """A positive number option (seconds, or a count when ``integer``)."""
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or (integer and not value.is_integer()):
        kind = "a positive whole number" if integer else "a positive number of seconds"
        raise ConfigurationError(f"option {name}={raw!r}: expected {kind}")
    return value
