"""The generic fsspec backend: any fsspec protocol no other plugin declares (memory://, gs://,
az://, ...). Its spec is in ``hooks``; local files and S3 build on ``blobs.FsspecBlobStore``."""

from __future__ import annotations
