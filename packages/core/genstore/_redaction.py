"""Keeping secrets out of records: the one redaction rule set of the decorator, the middleware and
the service.

- ``redact(value)``: a JSON-like value with every secret replaced by ``REDACTED``, at any depth
  (``max_depth``; deeper containers are replaced whole; by default one level deeper than a record
  keeps, so what the depth cuts is cut, and noted, by the recorder). Secrets are found
  - under secret-like names (``_secret_names.is_secret_name``: api_key, X-Api-Key, accessToken,
    password, pin, otp, sig, hmac, ...);
  - in name/value pairs: ``[["Authorization", "Bearer ..."]]``, ``{"name": "api_key", "value": ...}``;
  - in error bodies that echo the request: a FastAPI/pydantic 422 item whose ``loc`` names a
    secret field loses its ``input`` and ``ctx`` (an ``input`` holding the whole body is redacted
    like any other value);
  - in every string, by ``redact_text``.
  ``None`` and booleans are kept whatever their name: they cannot carry a secret.
- ``redact_text(text)``: URLs in the text through ``redact_url``; ``Bearer``/``Basic``/``Token``
  credentials; JWT-shaped strings; PEM private keys; well-known API-key shapes (``sk-``, ``r8_``,
  ``AKIA``, ``AIza``, ``ghp_``, ``hf_``, ``xox?-``, ``sk_live_``); ``name=value``/``"name": "value"``
  where the name is secret (after ``:``, bare ambiguous words such as ``key`` or ``pass`` are
  kept, so a prompt saying "key: golden" survives; ``key=``, ``session=``, ``code=`` are not).
- ``redact_url(url)``: credentials (``user:pw@``) removed, secret query values replaced.
- ``strip_signing(url)``: the URL to keep as ``source_url``: signing parameters of S3, GCS, Azure
  SAS and CloudFront signed URLs, ``token``/``sig``/``signature``-like and other secret
  parameters removed, credentials and fragment dropped.

Redaction never raises and is idempotent. Values to *use* (a result URL to download) must be used
before they are redacted: redaction is for what is stored.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias
from urllib.parse import SplitResult, unquote_plus, urlsplit, urlunsplit

from ._secret_names import is_secret_name, name_words, normalize_name
from ._storable import MAX_DEPTH

__all__ = [
    "REDACTED",
    "Redactor",
    "is_secret_name",
    "redact",
    "redact_text",
    "redact_url",
    "strip_signing",
]

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"
TOO_DEEP = "[redacted: nested too deep]"

SecretNames: TypeAlias = Iterable[str] | Callable[[str], bool]
"""More names to treat as secret (compared without case or separators), or a predicate."""

_PAIR_NAME_KEYS = frozenset({"name", "key", "header", "field", "param", "parameter"})
_PAIR_VALUE_KEYS = frozenset({"value", "values", "val", "content", "data", "text"})
# Bare words too ambiguous in prose ("a key: golden") to redact after in free text.
_TEXT_AMBIGUOUS = frozenset({"key", "keys", "pass", "pin", "code", "private", "session", "sig"})
_TEXT_AMBIGUOUS |= {"signature", "auth", "ticket", "sid", "tokens"}

_URL = re.compile(r"\bhttps?://[^\s\"'<>`]+", re.IGNORECASE)
# Every pattern starts only where a run of its characters starts (the lookbehinds) and never
# backtracks into a run (possessive quantifiers): linear time on hostile megabyte bodies.
_SCHEME = re.compile(
    r"(?<![A-Za-z0-9_-])(?:Bearer|Basic|Token|Digest|Bot|ApiKey|Api-Key)[ \t]++", re.IGNORECASE
)
_CREDENTIAL = re.compile(r"\[redacted\]|[A-Za-z0-9._~+/=:-]{4,}+")
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{4,}+\.[A-Za-z0-9_-]{4,}+\.[A-Za-z0-9_-]*+")
_PEM = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
)
_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_-])(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}+|r8_[A-Za-z0-9]{16,}+"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{30,}+|gh[pousr]_[A-Za-z0-9]{20,}+"
    r"|github_pat_[A-Za-z0-9_]{20,}+|hf_[A-Za-z0-9]{20,}+|xox[abposr]-[A-Za-z0-9-]{10,}+"
    r"|[rsp]k_(?:live|test)_[A-Za-z0-9]{10,}+)"
)
_NAME_AND_SEPARATOR = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z_][A-Za-z0-9_.-]{0,127}+)\\?[\"']?[ \t]*+(?P<sep>[:=])[ \t]*+\\?[\"']?"
)
_VALUE = re.compile(r"\[redacted\]|[^\s\"'&,;}\]\\]++")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Query parameters that only sign a URL (S3 SigV2/SigV4, GCS, Azure SAS, CloudFront): removed
# from source URLs. Those in _SIGNING_IF_SIGNED are ordinary names elsewhere, so they go only
# from a URL that carries a signature.
_SIGNING = _words(
    """signature sig token x-amz-signature x-amz-credential x-amz-security-token x-amz-algorithm
    x-amz-date x-amz-expires x-amz-signedheaders awsaccesskeyid googleaccessid key-pair-id
    x-goog-signature x-goog-credential x-goog-algorithm x-goog-date x-goog-expires
    x-goog-signedheaders"""
)
_SIGNING_IF_SIGNED = _words(
    """expires policy se sp sv sr st spr ss srt si sdd skoid sktid skt ske sks skv saoid suoid
    scid sip ses rscc rscd rsce rscl rsct exp hmac"""
)
_SIGNATURES = frozenset({"signature", "sig", "x-amz-signature", "x-goog-signature", "token"})


class Redactor:
    """The rule set, plus the application's own secret names (``extra``: names, or a predicate
    that fails closed) and names it knows are not secrets (``keep``)."""

    __slots__ = ("_extra", "_keep", "_predicate", "max_depth")

    def __init__(
        self, extra: SecretNames = (), *, keep: Iterable[str] = (), max_depth: int = MAX_DEPTH + 1
    ) -> None:
        self._predicate: Callable[[str], bool] | None = None
        self._extra: frozenset[str] = frozenset()
        if callable(extra):
            self._predicate = extra
        else:
            self._extra = frozenset(
                normalize_name(n) for n in ([extra] if isinstance(extra, str) else extra)
            )
        self._keep = frozenset(normalize_name(name) for name in keep)
        self.max_depth = max_depth

    def is_secret(self, name: str, *, in_query: bool = False) -> bool:
        """Whether the field, header or query parameter ``name`` holds a secret."""
        normal = normalize_name(name)
        if normal in self._keep:
            return False
        if is_secret_name(name, in_query=in_query) or normal in self._extra:
            return True
        if self._predicate is None:
            return False
        try:
            return bool(self._predicate(name))
        except Exception:
            # Fail closed: a broken predicate must not let a secret through.
            logger.exception("genstore: the redaction predicate raised for %r; redacting", name)
            return True

    def redact(self, value: Any) -> Any:
        """``value`` (JSON-like: dicts, lists, tuples, strings, numbers) with its secrets replaced;
        anything else is returned as it is."""
        return self._value(value, 0)

    def _value(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.redact_text(value)
        if not isinstance(value, dict | list | tuple):
            return value
        if depth >= self.max_depth:
            return TOO_DEEP
        if isinstance(value, dict):
            return self._mapping(value, depth)
        items = [self._pair(item, depth + 1) for item in value]
        return tuple(items) if isinstance(value, tuple) else items

    def _hidden(self, value: Any) -> Any:
        return value if value is None or isinstance(value, bool) else REDACTED

    def _mapping(self, value: dict[Any, Any], depth: int) -> dict[Any, Any]:
        secret_pair = any(
            isinstance(k, str)
            and k.lower() in _PAIR_NAME_KEYS
            and isinstance(v, str)
            and self.is_secret(v)
            for k, v in value.items()
        )
        echoes_secret = _is_error_item(value) and any(
            isinstance(part, str) and self.is_secret(part) for part in value["loc"]
        )
        result: dict[Any, Any] = {}
        for key, item in value.items():
            name = key.lower() if isinstance(key, str) else None
            if name is not None and (
                self.is_secret(key)
                or (secret_pair and name in _PAIR_VALUE_KEYS)
                or (echoes_secret and name in ("input", "ctx"))
            ):
                result[key] = self._hidden(item)
            else:
                result[key] = self._value(item, depth + 1)
        return result

    def _pair(self, item: Any, depth: int) -> Any:
        """An element of a list: a ``[name, value]`` pair whose name is secret hides its value."""
        if (
            isinstance(item, list | tuple)
            and len(item) == 2
            and isinstance(item[0], str | bytes)
            and self.is_secret(item[0].decode("latin-1") if isinstance(item[0], bytes) else item[0])
        ):
            hidden = [item[0], self._hidden(item[1])]
            return tuple(hidden) if isinstance(item, tuple) else hidden
        return self._value(item, depth)

    def redact_text(self, text: str) -> str:
        """``text`` with the secrets it shows replaced (see the module documentation)."""
        if len(text) < 4:
            return text  # nothing that short can be recognised as a secret
        # Each stage runs only if the text holds what its pattern needs (a cheap C-level test):
        # most strings of a request are prompts and parameter values that hold none of them.
        if "-----BEGIN" in text:
            text = _PEM.sub(REDACTED, text)
        if "://" in text:
            text = _URL.sub(lambda m: self.redact_url(m.group(0)), text)
        if " " in text or "\t" in text:
            text = _replace_after(_SCHEME, text, _credential_end)
        if "eyJ" in text:
            text = _JWT.sub(REDACTED, text)
        text = _KEY_SHAPES.sub(REDACTED, text)
        if ":" in text or "=" in text:
            text = _replace_after(_NAME_AND_SEPARATOR, text, self._secret_value_end)
        return text

    def _secret_value_end(self, match: re.Match[str]) -> int | None:
        """Where the value after ``name=``/``name:`` ends, if the name is a secret's."""
        name = match.group("name")
        if match.group("sep") == "=":  # query, form or cookie syntax: name=value
            secret = self.is_secret(name, in_query=True)
        else:  # "name: value" is also prose ("a key: golden"): ambiguous bare words are kept
            words = name_words(name)
            secret = not (len(words) == 1 and words[0] in _TEXT_AMBIGUOUS) and self.is_secret(name)
        if not secret:
            return None  # decided before looking at the value: each byte is scanned once
        value = _VALUE.match(match.string, match.end())
        return None if value is None or value.group() == REDACTED else value.end()

    def redact_url(self, url: str) -> str:
        """``url`` without credentials, its secret query values replaced (everything else kept
        byte for byte); text that is not an absolute URL goes through unchanged."""
        parts = _split(url)
        if parts is None:
            return url
        fields = _query(parts.query)
        query = [
            (raw_name, REDACTED if value and self.is_secret(name, in_query=True) else raw_value)
            for raw_name, raw_value, name, value in fields
        ]
        fragment = self.redact_text(parts.fragment) if "=" in parts.fragment else parts.fragment
        unchanged = query == [(f[0], f[1]) for f in fields] and fragment == parts.fragment
        if unchanged and "@" not in parts.netloc:
            return url  # byte for byte: nothing to hide
        return _join(parts, query, fragment)

    def strip_signing(self, url: str) -> str:
        """``url`` as it may be stored as a result's ``source_url``: signing and secret query
        parameters removed, credentials and fragment dropped."""
        parts = _split(url)
        if parts is None:
            return self.redact_text(url)
        query = _query(parts.query)
        signed = any(name.lower() in _SIGNATURES for _, _, name, _ in query)
        kept = [
            (raw_name, raw_value)
            for raw_name, raw_value, name, _ in query
            if not (_is_signing(name.lower(), signed) or self.is_secret(name, in_query=True))
        ]
        if len(kept) == len(query) and "@" not in parts.netloc and not parts.fragment:
            return url  # byte for byte: nothing to remove
        return _join(parts, kept, "")


def _replace_after(
    head: re.Pattern[str], text: str, hidden_until: Callable[[re.Match[str]], int | None]
) -> str:
    """``text`` with what follows each ``head`` match replaced, up to where ``hidden_until``
    says (None: nothing to hide). Scanning resumes right after a head whose value is kept, since
    that value may start a match of its own (``error: password=x``, ``BEARER Bearer x``): one
    pass finds what a second would, so redaction is idempotent."""
    out: list[str] = []
    position = 0
    while (match := head.search(text, position)) is not None:
        out.append(text[position : match.end()])
        end = hidden_until(match)
        if end is None:
            position = match.end()
        else:
            out.append(REDACTED)
            position = end
    out.append(text[position:])
    return "".join(out)


def _credential_end(match: re.Match[str]) -> int | None:
    """After ``Bearer``/``Basic``/...: where the credential ends, if what follows is one rather
    than a word of prose ("Basic shapes"): it has a digit or a symbol, or mixed case."""
    found = _CREDENTIAL.match(match.string, match.end())
    if found is None or found.group() == REDACTED:
        return None
    value = found.group()
    uppers = sum(c.isupper() for c in value)
    lowers = sum(c.islower() for c in value)
    if any(c.isdigit() or c in "=+/_-.~:" for c in value) or (uppers >= 2 and lowers >= 2):
        return found.end()
    return None


def _is_signing(name: str, signed: bool) -> bool:
    if name in _SIGNING or name.startswith(("x-amz-", "x-goog-")):
        return True
    return signed and name in _SIGNING_IF_SIGNED


def _is_error_item(value: dict[Any, Any]) -> bool:
    """A pydantic/FastAPI validation error item: ``{"loc": [...], "msg": ..., "input": ...}``."""
    return isinstance(value.get("loc"), list | tuple) and ("input" in value or "ctx" in value)


def _split(url: str) -> SplitResult | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return parts if parts.scheme and parts.netloc else None


def _query(query: str) -> list[tuple[str, str | None, str, str]]:
    """Each ``name=value`` of a query: raw name, raw value (None without ``=``), and both decoded."""
    fields: list[tuple[str, str | None, str, str]] = []
    for segment in query.split("&"):
        if not segment:
            continue
        raw_name, equals, raw_value = segment.partition("=")
        fields.append(
            (
                raw_name,
                raw_value if equals else None,
                unquote_plus(raw_name),
                unquote_plus(raw_value),
            )
        )
    return fields


def _join(parts: SplitResult, query: list[tuple[str, str | None]], fragment: str) -> str:
    netloc = parts.netloc.rsplit("@", 1)[-1]  # credentials never survive
    text = "&".join(name if value is None else f"{name}={value}" for name, value in query)
    return urlunsplit((parts.scheme, netloc, parts.path, text, fragment))


_DEFAULT = Redactor()


def redact(value: Any) -> Any:
    """``value`` with every secret replaced, by the default rules (see ``Redactor.redact``)."""
    return _DEFAULT.redact(value)


def redact_text(text: str) -> str:
    """``text`` with the secrets it shows replaced, by the default rules."""
    return _DEFAULT.redact_text(text)


def redact_url(url: str) -> str:
    """``url`` without credentials and with its secret query values replaced."""
    return _DEFAULT.redact_url(url)


def strip_signing(url: str) -> str:
    """``url`` fit to store as ``source_url``: no signing or secret parameters, no credentials."""
    return _DEFAULT.strip_signing(url)
