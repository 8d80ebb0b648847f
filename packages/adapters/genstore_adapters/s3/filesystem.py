"""The s3fs filesystem genstore uses: every S3 request goes through one retry loop.

Each request (a PUT, one part of a multipart upload, a GET of a range, a page of a listing) is
retried on its own by ``genstore_adapters._retry``, so a streamed upload never has to be replayed
from its start. botocore's own retries are switched off (``total_max_attempts=1``) and s3fs's
reduced to one attempt, so this loop is the only one and its deadline holds: a call gives up after
at most ``deadline`` seconds of attempts plus one request's connect/read timeout.

Importing this module imports s3fs: the ``s3`` spec's factory lives beside it, so a missing extra
is reported by the registry with the extra to install.
"""

from __future__ import annotations

import logging
from typing import Any

import s3fs
from fsspec.asyn import sync

from .._retry import Attempts, RetryPolicy, retry_call_async
from .config import S3Config
from .errors import is_transient

__all__ = ["RetryingS3FileSystem", "make_filesystem", "with_attempts_note"]

logger = logging.getLogger(__name__)


def make_filesystem(config: S3Config) -> Any:
    """An s3fs filesystem for ``config`` whose requests retry with ``config.retry``."""
    fs = RetryingS3FileSystem(**config.filesystem_options())
    fs.genstore_retry = config.retry
    # One attempt inside s3fs: the retry loop around each request is ours.
    fs.retries = 1
    return fs


def with_attempts_note(exc: Exception, attempts: Attempts) -> BaseException:
    """The retry loop's ``translate``: the last error as it is (``errors`` translates it where
    the key is known), noting how many attempts were made when the deadline ended the retries."""
    if attempts.exhausted:
        exc.add_note(f"gave up after {attempts.count} attempt(s) in {attempts.elapsed:.2f}s")
    return exc


class RetryingS3FileSystem(s3fs.S3FileSystem):  # type: ignore[misc]
    """s3fs with genstore's retry policy around every S3 request."""

    genstore_retry = RetryPolicy()

    async def _call_s3(self, method: str, *akwarglist: Any, **kwargs: Any) -> Any:
        async def once() -> Any:
            return await super(RetryingS3FileSystem, self)._call_s3(method, *akwarglist, **kwargs)

        def log(exc: Exception, attempts: Attempts, delay: float) -> None:
            logger.debug(
                "%s failed (%s: %s); retry %d in %.3fs",
                method,
                type(exc).__name__,
                exc,
                attempts.count,
                delay,
            )

        # Creating the client (loading botocore's service model) is not an attempt: it must not
        # eat into the retry deadline.
        await self.set_session()
        return await retry_call_async(
            once,
            policy=self.genstore_retry,
            is_transient=is_transient,
            translate=with_attempts_note,
            on_retry=log,
        )

    def call_s3(self, method: str, *akwarglist: Any, **kwargs: Any) -> Any:
        # s3fs binds its blocking call_s3 to its own _call_s3 once and for all; S3File writes go
        # through call_s3, so it must reach the override (looked up on each call).
        return sync(self.loop, self._call_s3, method, *akwarglist, **kwargs)
