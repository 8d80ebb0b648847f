"""The SQL users apply to a Supabase project before using the ``supabase`` catalog."""

from __future__ import annotations

import os
from importlib.resources import files

from genstore._url import parse_url
from genstore.exceptions import ConfigurationError

__all__ = ["migration_sql"]

DEFAULT_BUCKET = "genstore"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _from_env() -> tuple[str, str]:
    raw = os.environ.get("GENSTORE_URL", "")
    if raw.startswith("supabase://"):
        bucket, _, prefix = parse_url(raw).location.strip("/").partition("/")
        if bucket:
            return bucket, prefix
    return DEFAULT_BUCKET, ""


def migration_sql(bucket: str | None = None, *, prefix: str | None = None) -> str:
    """The migration: tables, indexes and row-level-security policies, ready to apply.

    ``bucket`` and ``prefix`` say where the store keeps its blobs (``supabase://<bucket>/<prefix>``)
    so the Storage policy lets each user read only ``<prefix>/images/<user id>/...``; by default
    they come from ``$GENSTORE_URL`` when it is a ``supabase://`` URL, else bucket ``genstore``.
    Applying it twice is harmless.
    """
    if bucket is None:
        bucket, env_prefix = _from_env()
        prefix = env_prefix if prefix is None else prefix
    if not bucket or "/" in bucket:
        raise ConfigurationError(f"bucket {bucket!r}: give a bucket name without '/'")
    root = (prefix or "").strip("/")
    images_prefix = f"{root}/images/" if root else "images/"
    text = files(__package__).joinpath("migration.sql").read_text(encoding="utf-8")
    return (
        text.replace(":'genstore_bucket'", _literal(bucket))
        .replace(":'genstore_images_prefix'", _literal(images_prefix))
        .replace(':"genstore_storage_policy"', _identifier(f"genstore_read_own_images_{bucket}"))
    )
