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
The spec is in ``hooks`` (imported without the extra); ``blobs`` (``S3BlobStore``), ``config``,
``errors`` and ``filesystem`` are imported when an ``s3://`` store is opened.
"""

from __future__ import annotations
