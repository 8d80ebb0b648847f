"""Which field names hold secrets: the one naming rule of genstore's redaction.

A name is split into lower-case words (``X-Api-Key`` -> x api key, ``accessToken`` -> access token,
``XAPIKey`` -> xapi key). It is secret when

A trailing number on a word is ignored (``password2``, ``key_1``).

1. a *strong* word or two-word compound appears anywhere in it: password, passwd, pwd, passphrase,
   passcode, secret(s), credential(s), cookie(s), authorization, jwt, bearer, apikey, otp, totp,
   hotp, csrf, xsrf, mfa, privatekey, accesskey, secretkey, clientsecret, sessionid,
   accesstoken, refreshtoken, idtoken, authtoken, apitoken, bearertoken, sessiontoken,
   csrftoken, securitytoken, samlresponse, ... (``password_hash``, ``apiKeyValue``);
2. or its *last* word (the head: ``signature_style`` is a style, ``x_amz_signature`` a signature)
   is one of signature(s), sig, hmac, auth, session, sid, verifier, assertion, private, ticket,
   or, with the qualifiers below, key(s), token(s), pass, pin, code.

Ambiguous heads, decided so that a secret is dropped rather than kept:

- ``key``/``keys``: secret (``key``, ``fal_key``, ``x_api_key``, ``private_key``) unless the word
  before says it is an identifier: idempotency, cache, sort, object, storage, partition, primary,
  foreign, dedup(e), lookup, row, hash, range, s3, blob, file, image, result, output, input,
  public, publishable, routing, group, order, unique, index, shard, record, entry, item,
  artifact/artefact, prefix, music, musical, foreign. A bare ``key`` is secret (``?key=`` carries
  Google API keys), so a music generator's ``key: "C major"`` is dropped unless kept by the
  application (``Redactor(keep=...)``).
- ``token``/``tokens``: secret unless the word before makes it a count or a tokenizer token:
  max, min, num, total, prompt, completion, output, input, stop, eos, bos, pad, special, sep,
  unk, mask, cls, image, text, vision, reasoning, thinking, cached, start, end (``max_tokens``).
- ``pass``: secret unless a rendering pass: hires, highres, first, second, third, final, refiner,
  refine, upscale, upscaler, render, multi, single, double, detail, denoise, num, max, min.
- ``pin``: secret (``pin``, ``user_pin``); ``pinned`` and ``pin_memory`` are not (other head).
- ``code``: secret when qualified as a credential (auth, authorization, verification, verify,
  otp, mfa, twofa, sms, email, reset, access, security, pin, recovery, backup, login, device,
  activation, confirmation, time (one_time_code)); a bare ``code`` only in a URL query (OAuth's
  ``?code=``), since in JSON it is usually an error code.
- ``private``: secret (the field's value is a private thing); booleans are never redacted, so
  ``"private": true`` survives anyway.

False positives accepted on purpose: ``secret_name``, ``cookie_consent``, ``session_user``.
"""

from __future__ import annotations

import functools
import itertools
import re

__all__ = ["is_secret_name", "name_words", "normalize_name"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_STRONG = _words(
    """password passwords passwd pwd passphrase passcode secret secrets credential credentials
    cookie cookies authorization authorisation jwt bearer apikey apikeys otp totp hotp csrf xsrf mfa
    privatekey accesskey secretkey clientsecret sessionid sessionkey accesstoken refreshtoken
    idtoken authtoken apitoken bearertoken sessiontoken csrftoken xsrftoken securitytoken
    oauthtoken samlresponse samlrequest setcookie wwwauthenticate authheader authvalue
    authstring authdata authinfo apisecret appsecret"""
)
_HEADS = _words(
    """signature signatures sig hmac auth session sid verifier assertion private ticket"""
)
_KEY_IDENTIFIERS = _words(
    """idempotency cache sort object storage partition primary foreign dedup dedupe lookup row
    hash range s3 blob file image result output input public publishable routing group order
    unique index shard record entry item artifact artefact prefix music musical"""
)
_TOKEN_COUNTS = _words(
    """max min num total prompt completion output input stop eos bos pad special sep unk mask cls
    image text vision reasoning thinking cached start end"""
)
_RENDER_PASSES = _words(
    """hires highres first second third final refiner refine upscale upscaler render multi single
    double detail denoise num max min"""
)
_CODE_CREDENTIALS = _words(
    """auth authorization verification verify otp mfa twofa sms email reset access security pin
    recovery backup login device activation confirmation time"""
)
_WORD_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@functools.lru_cache(maxsize=8192)
def name_words(name: str) -> tuple[str, ...]:
    """The lower-case words of a field name (camelCase, kebab-case, snake_case, dotted)."""
    return tuple(w for w in _NON_ALNUM.split(_WORD_BOUNDARY.sub("_", name).lower()) if w)


@functools.lru_cache(maxsize=8192)
def normalize_name(name: str) -> str:
    """A name with case and separators removed: ``X-Api-Key`` and ``x_api_key`` compare equal."""
    return "".join(name_words(name))


def _head_is_secret(head: str, before: str | None, in_query: bool) -> bool:
    if head in _HEADS:
        return True
    if head in ("key", "keys"):
        return before not in _KEY_IDENTIFIERS
    if head in ("token", "tokens"):
        return before not in _TOKEN_COUNTS
    if head == "pass":
        return before not in _RENDER_PASSES
    if head in ("pin", "pins", "pincode"):
        return True
    if head in ("code", "codes"):
        return before in _CODE_CREDENTIALS if before is not None else in_query
    return False


@functools.lru_cache(maxsize=8192)  # the same few names come back with every request
def is_secret_name(name: str, *, in_query: bool = False) -> bool:
    """Whether a field, header or parameter called ``name`` holds a secret (see the module
    documentation for the rule). ``in_query``: the name is a URL query parameter, where a bare
    ``code`` is an OAuth authorization code."""
    # Numbers change nothing: password2 is a password, key_1 a key (and s3_key an identifier).
    raw = tuple(word for word in name_words(name) if not word.isdigit())
    if not raw:
        return False
    words = tuple(word.rstrip("0123456789") for word in raw)
    joined = "".join(words)
    if joined in _STRONG or any(word in _STRONG for word in words):
        return True
    if any(a + b in _STRONG for a, b in itertools.pairwise(words)):
        return True
    return _head_is_secret(words[-1], raw[-2] if len(raw) > 1 else None, in_query)
