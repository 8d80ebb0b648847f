"""Where token-verification keys come from: a fixed key (PEM or shared secret), or a JWKS URL.

A JWKS is fetched in a worker thread, never on the event loop, so a slow key server delays only
the requests that need a key it has not fetched yet. Fetches are bounded: at most one per
``refetch_interval`` whatever ``kid``s the requests carry (junk ``kid``s cannot force refetches),
and concurrent requests for an unknown key share one fetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio.to_thread
import httpx
import jwt
from genstore.exceptions import BackendUnavailable

__all__ = ["FixedKey", "JwksKeys", "KeySource", "KeysUnavailable", "UnknownKey", "pem_key"]

logger = logging.getLogger("genstore_asgi.service")

ASYMMETRIC = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")


class KeysUnavailable(BackendUnavailable):
    """The key server did not answer with a usable JWKS (HTTP 503: retry later)."""


class UnknownKey(LookupError):
    """No key with the token's ``kid`` (after any refetch allowed now)."""


class KeySource(Protocol):
    """Gives the key that verifies a token with header ``kid``, and the algorithms it allows."""

    @property
    def algorithms(self) -> tuple[str, ...]: ...

    async def key(self, kid: str | None) -> Any: ...


@dataclass(frozen=True)
class FixedKey:
    """One key: a PEM public key (``algorithms`` asymmetric) or an HMAC shared secret."""

    value: Any
    algorithms: tuple[str, ...]

    async def key(self, kid: str | None) -> Any:
        return self.value


def pem_key(text: str) -> str:
    """A PEM public key as given in an environment variable (Clerk's CLERK_JWT_KEY may come as
    one line, its newlines lost): re-wrapped so the PEM parser accepts it."""
    text = text.strip().replace("\\n", "\n")
    head, tail = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
    body = text.removeprefix(head).removesuffix(tail)
    if "\n" in body.strip():  # already wrapped: kept as it is, ending as a re-wrap ends
        return f"{head}\n{body.strip()}\n{tail}\n"
    b64 = "".join(body.split())
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "\n".join([head, *lines, tail]) + "\n"


def _fetch_jwks(url: str, headers: Mapping[str, str], timeout: float) -> dict[str, Any]:
    """Keys by ``kid`` from the JWKS at ``url`` (blocking: run in a thread)."""
    try:
        r = httpx.get(url, headers=dict(headers), timeout=timeout, follow_redirects=False)
        r.raise_for_status()
        keyset = jwt.PyJWKSet.from_dict(r.json())
    except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
        # The URL may carry an instance name; the log is the operator's, the answer says less.
        logger.warning("JWKS fetch failed: %s: %s", type(exc).__name__, exc)
        raise KeysUnavailable("token verification keys unavailable") from None
    return {k.key_id: k.key for k in keyset.keys if k.key_id}


@dataclass
class JwksKeys:
    """Keys from a JWKS URL, cached; refetched for an unknown ``kid`` or past ``max_age``, but
    never more than once per ``refetch_interval`` seconds."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    algorithms: tuple[str, ...] = ASYMMETRIC
    refetch_interval: float = 60.0
    max_age: float = 3600.0
    timeout: float = 5.0
    clock: Callable[[], float] = time.monotonic
    fetches: int = field(default=0, init=False)
    """How many fetches were started (for tests and metrics)."""
    _keys: dict[str, Any] = field(default_factory=dict, repr=False)
    _fetched_at: float | None = field(default=None, repr=False)
    _failed: bool = field(default=False, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def key(self, kid: str | None) -> Any:
        if kid in self._keys and not self._stale():
            return self._keys[kid]
        async with self._lock:  # one fetch at a time; the others find its result
            if (kid not in self._keys or self._stale()) and self._may_fetch():
                await self._refresh()
        if kid not in self._keys:
            if self._failed:
                raise KeysUnavailable("token verification keys unavailable")
            raise UnknownKey(f"no signing key with kid {kid!r}")
        return self._keys[kid]

    def _stale(self) -> bool:
        return self._fetched_at is None or self.clock() - self._fetched_at > self.max_age

    def _may_fetch(self) -> bool:
        return self._fetched_at is None or self.clock() - self._fetched_at >= self.refetch_interval

    async def _refresh(self) -> None:
        self.fetches += 1
        self._fetched_at = self.clock()  # a failed fetch counts too: no hammering a sick server
        try:
            self._keys = await anyio.to_thread.run_sync(
                _fetch_jwks, self.url, self.headers, self.timeout
            )
        except KeysUnavailable:
            self._failed = True  # the keys already fetched, if any, stay in use
            raise
        self._failed = False
