"""The S3 plugin's spec (imports nothing from s3fs: the factory is imported on first open)."""

from __future__ import annotations

from genstore.plugin import BackendSpec, hookimpl

__all__ = ["SPEC", "genstore_backends"]

SPEC = BackendSpec(
    name="s3",
    schemes=("s3", "s3a"),
    description="Amazon S3 and S3-compatible servers (s3://bucket/prefix); sidecar catalog by "
    "default",
    factory="genstore_adapters.s3.blobs:open_s3",
    extra="s3",
)


@hookimpl
def genstore_backends() -> list[BackendSpec]:
    """S3."""
    return [SPEC]
