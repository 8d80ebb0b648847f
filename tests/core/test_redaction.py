"""The one redaction rule set: planted secrets never survive, ordinary parameters always do."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from genstore._redaction import (
    REDACTED,
    Redactor,
    is_secret_name,
    redact,
    redact_text,
    redact_url,
    strip_signing,
)
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field


@dataclass(frozen=True)
class Planted:
    """A secret hidden in ``value``; ``apply`` must leave no trace of it."""

    kind: str
    value: Any
    secret: str
    apply: Callable[[Any], Any] = redact


def _s(kind: str) -> str:
    """A unique secret string for one case (no shape any heuristic would catch by accident)."""
    return f"plantedSecret{kind.replace('-', '').replace('_', '')}Q"


SECRET_FIELDS = [
    "api_key", "apikey", "apiKey", "X-Api-Key", "x-api-key", "XAPIKey", "OPENAI_API_KEY",
    "fal_key", "key", "token", "access_token", "accessToken", "refresh_token", "id_token",
    "replicate_api_token", "bearer_token", "csrf_token", "secret", "client_secret",
    "aws_secret_access_key", "password", "passwd", "pass", "db_pass", "passcode", "passphrase",
    "pin", "user_pin", "otp", "mfa_code", "verification_code", "sig", "signature",
    "webhook_signature", "hmac", "private", "private_key", "credential", "credentials",
    "authorization", "Proxy-Authorization", "cookie", "Set-Cookie", "session", "session_id",
    "sessionToken", "auth", "jwt", "x-amz-security-token", "authorisation", "auth_header",
    "password2", "key_1",
]  # fmt: skip


def _field_cases() -> list[Planted]:
    return [Planted(f"field:{name}", {name: _s(name)}, _s(name)) for name in SECRET_FIELDS]


def _structural_cases() -> list[Planted]:
    deep: Any = {"password": _s("deep")}
    for _ in range(100):
        deep = {"nested": [deep]}
    big = "x" * (1024 * 1024 + 17) + f" password={_s('big')} end"
    return [
        Planted("nested", {"a": [{"b": {"c": [{"apiKey": _s("nested")}]}}]}, _s("nested")),
        Planted("deeper-than-the-limit", deep, _s("deep")),
        Planted("numeric pin", {"pin": 491826}, "491826"),
        Planted("secret object", {"credentials": {"user": "u", "pw": _s("obj")}}, _s("obj")),
        Planted(
            "header pairs", {"headers": [["Authorization", f"Bearer {_s('pairs')}"]]}, _s("pairs")
        ),
        Planted("asgi header tuples", [(b"x-api-key", _s("asgi").encode())], _s("asgi")),
        Planted("name/value dict", [{"name": "api_key", "value": _s("nv")}], _s("nv")),
        Planted("key/value dict", [{"key": "X-Auth-Token", "value": _s("kv")}], _s("kv")),
        Planted("query in a value", {"cb": f"https://h.test/x?token={_s('q')}&a=1"}, _s("q")),
        Planted("oauth code in a query", {"u": f"https://h.test/cb?code={_s('code')}"}, _s("code")),
        Planted("form body text", f"prompt=cat&api_key={_s('form')}&steps=4", _s("form")),
        Planted("url credentials", {"u": f"https://user:{_s('ui')}@h.test/a.png"}, _s("ui")),
        Planted("fragment token", {"u": f"https://h.test/#access_token={_s('fr')}"}, _s("fr")),
        Planted("bearer in text", f"upstream said: Bearer {_s('bt')}1 rejected", _s("bt")),
        Planted("basic in text", "Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA"),
        Planted(
            "jwt in text",
            {"error": "bad eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlX3BsYW50ZWQ"},
            "c2lnbmF0dXJlX3BsYW50ZWQ",
        ),
        Planted("openai key shape", "invalid key sk-proj-abcdEFGH1234ijklMNOP5678", "abcdEFGH1234"),
        Planted("replicate key shape", "r8_abcdEFGH1234ijklMNOP5678 denied", "abcdEFGH1234"),
        Planted("aws key id shape", "AKIAIOSFODNN7EXAMPLE not allowed", "IOSFODNN7EXAMPLE"),
        Planted(
            "pem private key",
            {"e": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANplanted\n-----END PRIVATE KEY-----"},
            "MIIEvQIBADANplanted",
        ),
        Planted("json echoed in text", f'echo: {{"password": "{_s("echo")}"}}', _s("echo")),
        Planted("pair after prose", f"error: password={_s('prose')}", _s("prose")),
        Planted("big body", big, _s("big")),
        Planted("cookie string", {"raw": f"theme=dark; session={_s('ck')}; x=1"}, _s("ck")),
        Planted("key= in text", f"GET /v1/models?alt=json&key={_s('gk')} failed", _s("gk")),
        Planted("code= in text", f"callback code={_s('oc')}&state=1", _s("oc")),
    ]


def _error_body_cases() -> list[Planted]:
    return [
        Planted(
            "422 echoing the body",
            {"detail": [{"type": "missing", "loc": ["body", "prompt"], "msg": "Field required",
                         "input": {"api_key": _s("422a"), "password": _s("422a")}}]},
            _s("422a"),
        ),
        Planted(
            "422 on a secret field",
            {"detail": [{"type": "string_too_short", "loc": ["body", "password"], "msg": "short",
                         "input": _s("422b"), "ctx": {"min_length": 99}}]},
            _s("422b"),
        ),
        Planted(
            "422 on a query pin",
            {"detail": [{"type": "int_parsing", "loc": ["query", "pin"], "msg": "bad",
                         "input": "x" + _s("422c")}]},
            _s("422c"),
        ),
    ]  # fmt: skip


# Each URL with its signature first, then the other values that strip_signing removes.
SIGNED_URLS = {
    "s3 sigv4": (
        "https://b.s3.amazonaws.com/o.png?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=ASIAPLANTED%2F20260101%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20260101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        "&X-Amz-Security-Token=plantedSessionTok&X-Amz-Signature=plantedSigV4",
        ("plantedSigV4", "ASIAPLANTED", "plantedSessionTok"),
    ),
    "s3 sigv2": (
        "https://b.s3.amazonaws.com/o.png?AWSAccessKeyId=AKIDPLANTED&Expires=1&Signature=plantedV2",
        ("plantedV2", "AKIDPLANTED"),
    ),
    "gcs": (
        "https://storage.googleapis.com/b/o.png?X-Goog-Algorithm=GOOG4-RSA-SHA256"
        "&X-Goog-Credential=svc%40p.iam.gserviceaccount.com%2Fplanted&X-Goog-Signature=plantedGcs",
        ("plantedGcs", "gserviceaccount"),
    ),
    "azure sas": (
        "https://a.blob.core.windows.net/c/o.png?sv=2021-08-06&st=2026-01-01&se=2026-01-02"
        "&sr=b&sp=r&skoid=plantedOid&sktid=plantedTid&sig=plantedAzure%3D",
        ("plantedAzure", "plantedOid", "plantedTid"),
    ),
    "cloudfront": (
        "https://d1.cloudfront.net/o.png?Expires=1&Policy=plantedPolicy"
        "&Signature=plantedCf~&Key-Pair-Id=APKAPLANTED",
        ("plantedCf", "plantedPolicy", "APKAPLANTED"),
    ),
    "supabase": (
        "https://p.supabase.co/storage/v1/object/sign/b/o.png?token=plantedSupa",
        ("plantedSupa",),
    ),
}


def _signed_url_cases() -> list[Planted]:
    cases = []
    for name, (url, secrets) in SIGNED_URLS.items():
        for secret in secrets:
            cases.append(Planted(f"strip_signing {name} {secret}", url, secret, strip_signing))
    for name, (url, secrets) in SIGNED_URLS.items():
        # the signature (listed first) also goes from any stored value
        cases.append(Planted(f"redact {name}", {"result_url": url}, secrets[0]))
    return cases


PLANTED = _field_cases() + _structural_cases() + _error_body_cases() + _signed_url_cases()


def test_at_least_the_46_kinds_of_the_issue_are_planted() -> None:
    assert len({case.kind for case in PLANTED}) >= 46


def _dump(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(
        value, default=lambda v: v.decode("latin-1") if isinstance(v, bytes) else str(v)
    )


@pytest.mark.parametrize("case", PLANTED, ids=lambda case: case.kind)
def test_a_planted_secret_appears_nowhere_in_the_output(case: Planted) -> None:
    assert case.secret in _dump(case.value)  # the case really plants it
    assert case.secret not in _dump(case.apply(case.value))


SURVIVORS: list[tuple[str, Any]] = [
    ("prompt", "a golden key: the token of love, Basic shapes, pass: go, signature style"),
    ("negative_prompt", "blurry, lowres"),
    ("steps", 30),
    ("cfg_scale", 7.5),
    ("seed", 1234567),
    ("sampler", "euler_a"),
    ("model", "sdxl-1.0"),
    ("pinned", True),
    ("pin_memory", True),
    ("max_tokens", 512),
    ("prompt_tokens", 100),
    ("idempotency_key", "req-42"),
    ("cache_key", "k1"),
    ("token_type", "bearer"),
    ("signature_style", "cursive"),
    ("signature_version", "v4"),
    ("status_code", 422),
    ("code", "rate_limited"),
    ("hires_pass", 2),
    ("width", 1024),
    ("private", True),
    ("is_private", False),
    ("session", None),
    ("image_url", "https://cdn.example.com/a.png?width=512&format=png"),
]


@pytest.mark.parametrize(("name", "value"), SURVIVORS, ids=[name for name, _ in SURVIVORS])
def test_ordinary_parameters_survive(name: str, value: Any) -> None:
    assert redact({name: value}) == {name: value}


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/a.png?width=512&format=png",
        "https://example.com/img?st=1&sp=2&se=3",  # Azure-like names, but nothing signed
        "https://replicate.delivery/pbxt/abc/out-0.webp",
        "http://127.0.0.1:8188/view?filename=ComfyUI_0001.png&type=output&subfolder=",
    ],
)
def test_unsigned_urls_survive_byte_for_byte(url: str) -> None:
    assert strip_signing(url) == url
    assert redact_url(url) == url


def test_strip_signing_keeps_the_non_signing_query() -> None:
    url = "https://b.s3.amazonaws.com/o.png?versionId=7&X-Amz-Signature=abc&X-Amz-Date=1&w=2"
    assert strip_signing(url) == "https://b.s3.amazonaws.com/o.png?versionId=7&w=2"


def test_redact_url_marks_what_it_hid() -> None:
    assert (
        redact_url("https://u:p@h.test/a?api_key=zz&n=1")
        == f"https://h.test/a?api_key={REDACTED}&n=1"
    )


def test_secret_names_are_read_in_every_spelling() -> None:
    for name in ("api_key", "apiKey", "ApiKey", "API_KEY", "api-key", "X-API-KEY", "api.key"):
        assert is_secret_name(name), name
    assert is_secret_name("code", in_query=True)
    assert not is_secret_name("code")


def test_a_redactor_takes_extra_names_and_names_to_keep() -> None:
    redactor = Redactor(["tenant-pass-phrase2"], keep=["key"])
    assert redactor.redact({"tenantPassPhrase2": "x", "key": "C major", "api_key": "y"}) == {
        "tenantPassPhrase2": REDACTED,
        "key": "C major",
        "api_key": REDACTED,
    }


def test_a_failing_predicate_redacts(caplog: pytest.LogCaptureFixture) -> None:
    def broken(name: str) -> bool:
        raise RuntimeError("boom")

    assert Redactor(broken).redact({"harmless": "v"}) == {"harmless": REDACTED}
    assert "redacting" in caplog.text


@pytest.mark.parametrize(
    "text",
    [
        "x" * 262_144,
        "a:" * 131_072,
        "eyJ-" * 65_536,
        "sk-" * 87_381,
        "Bearer " * 37_449,
        "Token " + "a" * 262_144,
        "https://h/?" * 23_831,
        '"a": ' * 52_428,
        "password=" * 29_127,
        "-----BEGIN PRIVATE KEY-----" * 9_709,
    ],
    ids=lambda text: text[:12],
)
def test_hostile_quarter_megabytes_are_redacted_in_linear_time(text: str) -> None:
    # A quadratic scan of 256 KiB takes minutes; a linear one, well under a second.
    started = time.monotonic()
    redact_text(text)
    assert time.monotonic() - started < 5.0


# --- properties -----------------------------------------------------------------------------

_FRAGMENTS = st.sampled_from(
    [
        "api_key", "password", "token", "key", "=", ":", ": ", " ", "&", "?", "\"", "'", "\\",
        "Bearer ", "Basic ", "eyJhbGciOi", "eyJzdWIi", ".", "https://h.test/p?", "#", "@",
        "sk-", "abcdefghijklmnopqrstuvwx", "0123456789", REDACTED, "[", "]", "%", "+", "\n",
        "-----BEGIN PRIVATE KEY-----", "-----END PRIVATE KEY-----", "user:pw@", "sig", "code",
    ]
)  # fmt: skip
_TEXT = st.one_of(
    st.text(max_size=60), st.lists(_FRAGMENTS | st.text(max_size=4), max_size=25).map("".join)
)
_NAMES = st.one_of(st.text(max_size=12), st.sampled_from(SECRET_FIELDS + [n for n, _ in SURVIVORS]))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(_NAMES, inner).map(list)
        | st.dictionaries(_NAMES, inner, max_size=4)
    ),
    max_leaves=30,
)


@given(_JSON)
def test_redact_never_raises_and_is_idempotent(value: Any) -> None:
    once = redact(value)
    assert redact(once) == once


@given(_TEXT)
def test_redact_text_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


@given(_TEXT)
def test_url_functions_never_raise_and_are_idempotent(text: str) -> None:
    for function in (redact_url, strip_signing):
        once = function(text)
        assert function(once) == once


class Generate(BaseModel):
    """A route's body model (module level: FastAPI resolves the annotation by name)."""

    prompt: str
    model: str  # never sent: its "missing" error echoes the whole body
    steps: int
    api_key: str = Field(pattern="^sk-")
    password: str = Field(min_length=40)


def test_a_real_fastapi_422_body_loses_the_secrets_it_echoes() -> None:
    import asyncio

    import httpx
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/generate")
    def generate(body: Generate) -> dict[str, str]:
        return {"ok": "yes"}

    sent = {"prompt": "a cat", "steps": "many", "api_key": "plantedKey422", "password": "pw422x"}

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return await client.post("/generate", json=sent)

    answer = asyncio.run(post())
    assert answer.status_code == 422
    body = answer.json()
    assert "plantedKey422" in json.dumps(body) and "pw422x" in json.dumps(body)
    cleaned = json.dumps(redact(body))
    assert "plantedKey422" not in cleaned and "pw422x" not in cleaned
    assert "a cat" in cleaned and "many" in cleaned  # the rest of the echo is still there
