"""Catalog URL -> settings: genstore's own options taken out, the rest handed to libpq unchanged."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from genstore.exceptions import ConfigurationError

from .._options import UrlOptions

__all__ = ["DEFAULT_DEADLINE", "PostgresSettings", "settings_from_url"]

DEFAULT_DEADLINE = 5.0
"""Seconds a call keeps retrying transient failures before ``BackendUnavailable``."""

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_GENSTORE_OPTIONS = frozenset({"schema", "deadline", "pool_min", "pool_max"})


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """How to reach the catalog and how hard to try."""

    conninfo: str
    """The libpq connection URI, genstore options removed."""
    display_url: str
    """The URL without password or query, for messages."""
    schema: str = "public"
    """The schema holding the ``genstore_*`` tables (created if missing)."""
    deadline: float = DEFAULT_DEADLINE
    """Seconds one call may spend retrying transient failures."""
    pool_min: int = 1
    """Connections the pool keeps open."""
    pool_max: int = 8
    """Connections the pool may open at most."""


def settings_from_url(raw: str, **overrides: object) -> PostgresSettings:
    """Parse a ``postgresql://`` or ``postgres://`` URL (as typed by the user) into settings.

    Options genstore reads (``schema``, ``deadline``, ``pool_min``, ``pool_max``) are removed
    from the query; every other option (``sslmode``, ``application_name``...) goes to libpq,
    with ``application_name=genstore`` and a ``connect_timeout`` fitting the deadline by default.
    ``overrides`` (keyword arguments of ``PostgresCatalog``) win over the URL's options.
    """
    parts = urlsplit(raw)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise ConfigurationError(f"not a PostgreSQL URL: {parts.scheme}://...")
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {k: v for k, v in query if k in _GENSTORE_OPTIONS}
    options.update({k: str(v) for k, v in overrides.items() if v is not None})
    libpq_query = [(k, v) for k, v in query if k not in _GENSTORE_OPTIONS]

    parsed = UrlOptions(options, "postgresql:// catalog")
    schema = options.get("schema", "public")
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigurationError(
            f"catalog schema {schema!r}: use 1 to 63 letters, digits and underscores"
        )
    deadline = parsed.number("deadline", DEFAULT_DEADLINE, minimum=0.1)
    pool_min = parsed.count("pool_min", 1, minimum=0)
    pool_max = parsed.count("pool_max", max(8, pool_min), minimum=1)
    if pool_max < pool_min:
        raise ConfigurationError(f"catalog option pool_max={pool_max} is below pool_min")

    given = {k for k, _ in libpq_query}
    if "connect_timeout" not in given:
        # Without one libpq may wait minutes on a silent host; one connection attempt should
        # not outlive the whole call's deadline (libpq counts whole seconds, at least 2).
        libpq_query.append(("connect_timeout", str(max(2, math.ceil(deadline)))))
    if "application_name" not in given:
        libpq_query.append(("application_name", "genstore"))
    conninfo = urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urlencode(libpq_query), parts.fragment)
    )
    # Hosts may be a libpq list ("h1:5432,h2:5432"), so split the netloc by hand.
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return PostgresSettings(
        conninfo=conninfo,
        display_url=f"{parts.scheme}://{user + '@' if user else ''}{hosts}{parts.path}",
        schema=schema,
        deadline=deadline,
        pool_min=pool_min,
        pool_max=pool_max,
    )
