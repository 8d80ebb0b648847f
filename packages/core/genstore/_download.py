"""Streaming a provider's result URL: one total deadline, every hop checked, bounded in size.

``open_download(url, rules)`` GETs ``url`` and hands back its body as chunks. What it guarantees:

- **one deadline** (``rules.deadline`` seconds) for the whole download: resolving, connecting, the
  TLS handshake, every redirect and every read. A server that sends a byte every second is
  abandoned when it runs out, not kept alive by each byte. Time the caller spends between chunks
  counts too. ``rules.idle_timeout`` also bounds each single network wait.
- **every hop checked** (redirects are followed here, at most ``rules.max_redirects``): the URL
  must be http(s) without credentials; its host is resolved, every address checked by
  ``rules.policy`` (see ``_netguard``), and the connection is made to one of *those* addresses, while
  the Host header, TLS SNI and certificate verification use the URL's name. No proxy from the
  environment is used: it would connect somewhere unchecked.
- **bounded size**: a declared or actual body over ``rules.limit`` bytes is abandoned.

Every failure is a ``DownloadError`` whose message is safe to store in a record: it names the host,
never the URL's path, query or credentials.
"""

from __future__ import annotations

import functools
import os
import re
import ssl
import zlib
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field

import httpcore
import httpx

from . import _netguard
from ._netguard import AddressKind, IPAddress, NetPolicy, classify
from ._options import StoreOptions
from ._pinned import Deadline, DeadlinePassed, PinnedBackend
from ._redaction import redact_text

__all__ = ["Download", "DownloadError", "DownloadRules", "open_download"]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_PIECE = 1024 * 1024
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]{1,63}(?:\.[A-Za-z0-9_-]{1,63})*\.?")
_USER_AGENT = b"genstore (result download)"


class DownloadError(Exception):
    """The result URL could not be fetched; the message is safe for ``result_error``."""


@dataclass(frozen=True)
class Download:
    """An open download: its declared type, its body as chunks (checked against the limit and
    the deadline; decoded if the server compressed it), and the URL finally fetched."""

    content_type: str | None
    chunks: Iterator[bytes]
    url: str
    """The last hop's URL; it may carry signing parameters (``strip_signing`` before storing)."""


@dataclass(frozen=True)
class DownloadRules:
    """How downloads are made; ``from_options`` builds the rules of a store."""

    limit: int
    """Largest body accepted, in bytes (after decoding)."""
    deadline: float = 300.0
    """Total seconds for the whole download."""
    idle_timeout: float = 60.0
    """Longest single network wait (connect, handshake, one read), within the deadline."""
    policy: NetPolicy = field(default_factory=NetPolicy)
    """Which addresses may be reached."""
    max_redirects: int = 10
    """Redirects followed before giving up."""
    ssl_context: ssl.SSLContext | None = None
    """Certificates trusted for https (None: certifi's, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``)."""

    @classmethod
    def from_options(
        cls, options: StoreOptions, environ: Mapping[str, str] = os.environ
    ) -> DownloadRules:
        """The rules of a store (``ConfigurationError`` for a bad ``private_urls``/allowlist)."""
        return cls(
            limit=options.max_result_bytes,
            deadline=options.download_deadline,
            idle_timeout=options.download_timeout,
            policy=NetPolicy.from_options(options.private_urls, options.url_allowlist, environ),
        )


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def _checked_url(text: str | httpx.URL) -> httpx.URL:
    """``text`` as a URL this module may fetch: http(s), a host, no credentials."""
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError, UnicodeError) as exc:
        raise DownloadError(f"the result URL is not a valid URL ({type(exc).__name__})") from exc
    if url.scheme not in _DEFAULT_PORTS:
        raise DownloadError(f"URL scheme {url.scheme or '(none)'!r} is not http or https")
    if url.userinfo:
        raise DownloadError("URLs with credentials (user:password@host) are not fetched")
    if not url.raw_host:
        raise DownloadError("the result URL has no host")
    host = url.raw_host.decode("ascii", "replace")
    if len(host) > 253 or (
        not _HOST_NAME.fullmatch(host) and _netguard.parse_ip_host(host) is None
    ):
        raise DownloadError("the result URL's host is not a valid host name")
    return url


def _redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    try:
        target = current.join(location)
    except (httpx.InvalidURL, TypeError, UnicodeError, ValueError) as exc:
        raise DownloadError(f"{current.host} redirected to an invalid URL") from exc
    return _checked_url(target)


def _safe(exc: BaseException) -> str:
    text = redact_text(str(exc)) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _network_error(exc: Exception, host: str, deadline: Deadline) -> DownloadError:
    if deadline.passed() or isinstance(exc, DeadlinePassed):
        return DownloadError(
            f"timed out: the download took longer than its deadline of {deadline.seconds:g} s"
        )
    if isinstance(exc, httpcore.TimeoutException):
        return DownloadError(f"timed out: {host} sent nothing for {deadline.idle:g} s")
    if isinstance(exc, httpcore.ConnectError):
        return DownloadError(f"could not connect to {host}: {_safe(exc)}")
    return DownloadError(f"download from {host} failed: {type(exc).__name__}: {_safe(exc)}")


_NETWORK_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


def _resolve(url: httpx.URL, deadline: Deadline) -> tuple[str, int, list[IPAddress]]:
    host = url.raw_host.decode("ascii")
    port = url.port or _DEFAULT_PORTS[url.scheme]
    try:
        return host, port, _netguard.addresses_for(host, port, deadline.wait())
    except DeadlinePassed as exc:
        raise _network_error(exc, host, deadline) from exc
    except TimeoutError as exc:
        raise DownloadError(f"could not resolve {host} in time") from exc
    except ValueError as exc:  # a numeric-looking host that is no address, or a bad name
        raise DownloadError(f"{host} is not a valid address or host name") from exc
    except OSError as exc:
        raise DownloadError(f"could not resolve {host}") from exc


def _open_hop(
    url: httpx.URL, rules: DownloadRules, deadline: Deadline, stack: ExitStack, after_public: bool
) -> tuple[httpcore.Response, bool]:
    """GET one hop after checking where it goes; the response, and whether it was public."""
    host, port, addresses = _resolve(url, deadline)
    reason = rules.policy.refusal(host, addresses, after_public=after_public)
    if reason is not None:
        raise DownloadError(f"refused to fetch {reason}")
    pool = stack.enter_context(
        httpcore.ConnectionPool(
            ssl_context=rules.ssl_context or _default_ssl_context(),
            network_backend=PinnedBackend(host, port, addresses, deadline),
            max_connections=1,
            retries=0,
        )
    )
    target = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=port, target=url.raw_path)
    headers = [
        (b"Host", url.netloc),
        (b"User-Agent", _USER_AGENT),
        (b"Accept", b"*/*"),
        (b"Accept-Encoding", b"identity"),
    ]
    timeouts = dict.fromkeys(("connect", "read", "write", "pool"), rules.idle_timeout)
    try:
        response = stack.enter_context(
            pool.stream("GET", target, headers=headers, extensions={"timeout": timeouts})
        )
    except _NETWORK_ERRORS as exc:
        raise _network_error(exc, host, deadline) from exc
    return response, any(classify(address) is AddressKind.PUBLIC for address in addresses)


def _header(response: httpcore.Response, name: bytes) -> str | None:
    for key, value in response.headers:
        if key.lower() == name:
            return value.decode("latin-1").strip()
    return None


def _follow(url: str, rules: DownloadRules, deadline: Deadline, stack: ExitStack) -> Download:
    """Follow ``url`` through its redirects (each hop checked); the final hop's open body."""
    current = _checked_url(url)
    after_public = False
    for _ in range(rules.max_redirects + 1):
        with ExitStack() as hop:
            response, public = _open_hop(current, rules, deadline, hop, after_public)
            after_public = after_public or public
            location = _header(response, b"location")
            if response.status in _REDIRECTS and location is not None:
                current = _redirect_target(current, location)
                continue
            host = current.raw_host.decode("ascii")
            if response.status >= 300:
                raise DownloadError(f"{host} answered HTTP {response.status}")
            body = _body(response, rules.limit, deadline, host)
            stack.push(hop.pop_all())  # the final hop stays open while the caller reads
            return Download(_header(response, b"content-type"), body, str(current))
    raise DownloadError(f"more than {rules.max_redirects} redirects")


def _decoded(chunks: Iterator[bytes], encoding: str | None) -> Iterator[bytes]:
    """The body without its Content-Encoding; output comes in bounded pieces so that a small
    compressed body cannot expand into memory all at once."""
    encoding = (encoding or "identity").lower()
    if encoding == "identity":
        yield from chunks
        return
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise DownloadError(f"unsupported Content-Encoding {encoding[:40]!r}")
    decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib framing, detected
    try:
        for chunk in chunks:
            data = chunk
            while data:
                piece = decoder.decompress(data, _PIECE)
                data = decoder.unconsumed_tail
                if piece:
                    yield piece
        yield decoder.flush()
    except zlib.error as exc:
        raise DownloadError(f"the result's {encoding} encoding is corrupt") from exc


def _body(
    response: httpcore.Response, limit: int, deadline: Deadline, host: str
) -> Iterator[bytes]:
    length = _header(response, b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise DownloadError(f"the result is {length} bytes, over the limit of {limit} bytes")
    return _limited(response, limit, deadline, host)


def _limited(
    response: httpcore.Response, limit: int, deadline: Deadline, host: str
) -> Iterator[bytes]:
    received = 0
    try:
        for chunk in _decoded(response.iter_stream(), _header(response, b"content-encoding")):
            received += len(chunk)
            if received > limit:
                raise DownloadError(f"the result is larger than the limit of {limit} bytes")
            if deadline.passed():
                raise DeadlinePassed("deadline passed")
            if chunk:
                yield chunk
    except _NETWORK_ERRORS as exc:
        raise _network_error(exc, host, deadline) from exc


def open_download(url: str, rules: DownloadRules, /) -> AbstractContextManager[Download]:
    """GET ``url`` under ``rules``.

    ``DownloadError`` (safe to store) for a refused or invalid URL, an HTTP error, the deadline,
    the size limit or a network failure, raised on entry or while iterating
    ``Download.chunks``. Leaving the block closes the connection.
    """
    return _open(url, rules)


@contextmanager
def _open(url: str, rules: DownloadRules) -> Iterator[Download]:
    deadline = Deadline(rules.deadline, rules.idle_timeout)
    with ExitStack() as stack:
        yield _follow(url, rules, deadline, stack)
