"""Store and catalog URLs: ``scheme://location?option=value``; a bare path means local files."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from .exceptions import ConfigurationError

__all__ = ["DEFAULT_URL", "StoreURL", "parse_catalog_url", "parse_url"]

DEFAULT_URL = "./genstore-data"


@dataclass(frozen=True)
class StoreURL:
    """A parsed URL: ``scheme`` (``file`` for paths), ``location`` (after ``://``, query removed)."""

    raw: str
    scheme: str
    location: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """For ``file`` URLs: the absolute local path."""
        return Path(self.location).expanduser().resolve()

    def without_options(self) -> str:
        """The URL with its query removed (safe to show: secrets never live in genstore URLs)."""
        return self.location if self.scheme == "file" else f"{self.scheme}://{self.location}"


def parse_url(url: str | os.PathLike[str]) -> StoreURL:
    """Parse a store or catalog URL; paths and ``file://`` URLs give scheme ``file``."""
    raw = os.fspath(url)
    if not raw or "\x00" in raw:
        raise ConfigurationError("a store URL must be a non-empty string without NUL")
    if "://" not in raw:
        base, _, query = raw.partition("?")
        return StoreURL(raw, "file", base, dict(parse_qsl(query)))
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if not scheme:
        raise ConfigurationError(f"store URL {raw!r} has no scheme")
    location = raw.split("://", 1)[1].split("?", 1)[0]
    if scheme == "file":
        location = location or "/"
    return StoreURL(raw, scheme, location, dict(parse_qsl(parts.query, keep_blank_values=True)))


def parse_catalog_url(url: str) -> StoreURL:
    """Parse a catalog URL: ``sqlite:///path``, ``postgresql://...``, or a bare name (``sidecar``)."""
    name, _, query = url.partition("?")
    if "://" not in name and name.isidentifier():
        return StoreURL(url, name.lower(), "", dict(parse_qsl(query)))
    parsed = parse_url(url)
    if parsed.scheme == "file":
        raise ConfigurationError(f"catalog {url!r}: give a URL such as sqlite:///path or a name")
    return parsed
