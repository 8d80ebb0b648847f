"""S3 and S3-compatible object stores: ``s3://bucket/prefix`` (extra ``s3``: s3fs).

    genstore.open_store("s3://my-bucket/genstore")
    genstore.open_store("s3://my-bucket?endpoint_url=http://127.0.0.1:9000")   # MinIO, R2, ...

Credentials and region come from the environment as botocore reads them (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION``, ``AWS_PROFILE``, config
files, instance roles); ``GENSTORE_S3_ENDPOINT_URL`` or ``?endpoint_url=`` points at an
S3-compatible server. Options: ``region``, ``addressing_style``, ``block_size``,
``retry_deadline``, ``connect_timeout``, ``read_timeout``. The default catalog is ``sidecar`` (the
JSON records themselves) unless ``?catalog=`` names one.

Transient failures (connection errors, timeouts, throttling, 5xx) are retried per request with
backoff and jitter for ``retry_deadline`` seconds (default 5), then raise ``BackendUnavailable``.
This module imports s3fs only when a store is opened, so it loads without the extra.
"""

from __future__ import annotations

from typing import Any

from genstore.plugin import BlobStore, hookimpl

from ._config import S3Config
from ._store import S3BlobStore

__all__ = ["S3BlobStore", "S3Config"]


@hookimpl
def genstore_open_backend(url: Any) -> BlobStore | None:
    """``s3://`` and ``s3a://`` URLs."""
    if url.scheme not in ("s3", "s3a"):
        return None
    config = S3Config.from_url(url.location, dict(url.options))
    return S3BlobStore(config, url=url.without_options())


@hookimpl
def genstore_schemes() -> dict[str, str]:
    return {"s3": "Amazon S3 and S3-compatible servers (s3://bucket/prefix; extra 's3')"}
