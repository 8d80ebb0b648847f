"""``s3://bucket/prefix?option=value`` -> the settings of an S3 store.

Secrets never live in the URL: credentials and region come from the environment (and AWS config
files) exactly as botocore reads them. ``GENSTORE_S3_ENDPOINT_URL`` points at an S3-compatible
server when the URL has no ``endpoint_url``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from genstore._keys import check_blob_key
from genstore.exceptions import ConfigurationError, InvalidInput

from .._options import UrlOptions
from .._retry import RetryPolicy

__all__ = ["MIB", "S3Config"]

MIB = 1024 * 1024
ENDPOINT_ENV = "GENSTORE_S3_ENDPOINT_URL"

_OPTIONS = {
    "endpoint_url": "URL of an S3-compatible server (MinIO, R2, Supabase /s3)",
    "region": "region name (else as botocore reads it: AWS_DEFAULT_REGION, config file)",
    "addressing_style": "path, virtual or auto (path when an endpoint_url is given)",
    "block_size": "multipart part size and read-ahead size in bytes (>= 5 MiB; default 8 MiB)",
    "retry_deadline": "seconds a request is retried for on transient errors (default 5)",
    "connect_timeout": "seconds to wait for a connection (default 3)",
    "read_timeout": "seconds to wait for a response (default 20)",
    "catalog": "the catalog URL (read by open_store)",
}


@dataclass(frozen=True)
class S3Config:
    """Where the store lives and how requests behave."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    addressing_style: str | None = None
    block_size: int = 8 * MIB
    connect_timeout: float = 3.0
    read_timeout: float = 20.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def root(self) -> str:
        """``bucket/prefix`` as s3fs names paths."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    @classmethod
    def from_url(cls, location: str, options: dict[str, str]) -> S3Config:
        """Settings from the part after ``s3://`` and the query options."""
        parsed = UrlOptions(options, "s3://")
        parsed.check_known(_OPTIONS)
        bucket, _, prefix = location.strip("/").partition("/")
        if not bucket:
            raise ConfigurationError("an s3:// URL names a bucket: s3://bucket[/prefix]")
        prefix = prefix.strip("/")
        if prefix:
            try:
                check_blob_key(prefix)
            except InvalidInput as exc:
                raise ConfigurationError(f"s3:// prefix {prefix!r} is not a valid path") from exc
        endpoint = parsed.text("endpoint_url") or os.environ.get(ENDPOINT_ENV) or None
        style = parsed.choice(
            "addressing_style", ("path", "virtual", "auto"), "path" if endpoint else None
        )
        block_size = parsed.count("block_size", 8 * MIB, minimum=1)
        if block_size < 5 * MIB:
            raise ConfigurationError("block_size must be at least 5 MiB (S3's smallest part)")
        return cls(
            bucket=bucket,
            prefix=prefix,
            endpoint_url=endpoint,
            region=parsed.text("region"),
            addressing_style=style,
            block_size=block_size,
            connect_timeout=parsed.number("connect_timeout", 3.0),
            read_timeout=parsed.number("read_timeout", 20.0),
            retry=RetryPolicy(deadline=parsed.number("retry_deadline", 5.0)),
        )

    def filesystem_options(self) -> dict[str, Any]:
        """Keyword arguments for s3fs.S3FileSystem."""
        client_kwargs: dict[str, Any] = {}
        if self.region:
            client_kwargs["region_name"] = self.region
        config: dict[str, Any] = {
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            # Our retry loop (one per request, with a deadline) is the only one.
            "retries": {"total_max_attempts": 1},
            # SigV4 presigned URLs: what AWS requires in every region, and what MinIO/R2 take.
            "signature_version": "s3v4",
        }
        if self.addressing_style:
            config["s3"] = {"addressing_style": self.addressing_style}
        return {
            "endpoint_url": self.endpoint_url,
            "client_kwargs": client_kwargs,
            "config_kwargs": config,
            "default_block_size": self.block_size,
            # Listings must show what was just written: no listings cache, no shared instance.
            "use_listings_cache": False,
            "skip_instance_cache": True,
        }
