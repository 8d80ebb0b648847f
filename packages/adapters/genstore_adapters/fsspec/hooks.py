"""The fsspec plugin's spec: the catch-all backend for schemes no other plugin declares."""

from __future__ import annotations

from genstore.plugin import BackendSpec, hookimpl

__all__ = ["SPEC", "genstore_backends"]

SPEC = BackendSpec(
    name="fsspec",
    schemes=(),
    catch_all=True,
    description="any other fsspec filesystem (memory://, gs://, az://, ...); URL options are "
    "fsspec storage options",
    factory="genstore_adapters.fsspec.blobs:open_fsspec",
)


@hookimpl(trylast=True)
def genstore_backends() -> list[BackendSpec]:
    """The generic backend, consulted after every plugin declaring a scheme."""
    return [SPEC]
