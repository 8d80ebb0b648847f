"""The s3fs filesystem genstore uses: every S3 request goes through one retry loop.

s3fs is imported here, on first use, so that the plugin loads (and says which extra to install)
when it is missing.
"""

from __future__ import annotations

import functools
from typing import Any

from genstore.exceptions import MissingDependency

from ._config import S3Config
from ._errors import is_transient
from ._retry import RetryPolicy, retrying

__all__ = ["make_filesystem"]


def make_filesystem(config: S3Config) -> Any:
    """An s3fs filesystem for ``config`` whose requests retry with ``config.retry``."""
    cls = _filesystem_class(_import_s3fs())
    fs = cls(**config.filesystem_options())
    fs.genstore_retry = config.retry
    # One attempt inside s3fs: the retry loop around each request is ours.
    fs.retries = 1
    return fs


def _import_s3fs() -> Any:
    # Checked on every open (imports are cached by Python): the class below is cached per module.
    try:
        import s3fs
    except ImportError as exc:
        raise MissingDependency("the S3 backend", extra="s3", package="s3fs") from exc
    return s3fs


@functools.cache
def _filesystem_class(s3fs: Any) -> type:
    from fsspec.asyn import sync

    class RetryingS3FileSystem(s3fs.S3FileSystem):  # type: ignore[misc]
        """s3fs with genstore's retry policy around every S3 request."""

        genstore_retry = RetryPolicy()

        async def _call_s3(self, method: str, *akwarglist: Any, **kwargs: Any) -> Any:
            async def once() -> Any:
                return await super(RetryingS3FileSystem, self)._call_s3(
                    method, *akwarglist, **kwargs
                )

            # Creating the client (loading botocore's service model) is not an attempt: it
            # must not eat into the retry deadline.
            await self.set_session()
            return await retrying(once, self.genstore_retry, transient=is_transient, what=method)

        def call_s3(self, method: str, *akwarglist: Any, **kwargs: Any) -> Any:
            # s3fs binds its blocking call_s3 to its own _call_s3 once and for all; S3File writes
            # go through call_s3, so it must reach the override (looked up on each call).
            return sync(self.loop, self._call_s3, method, *akwarglist, **kwargs)

    return RetryingS3FileSystem
