"""The shared recording rules: which names are secrets, how records are cleaned of them, and how
a failed response's error text is read."""

from __future__ import annotations

import pytest
from genstore._recording.rules import Redactor, error_message, is_secret_name


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "apiKey",
        "APIKey",
        "API_KEY",
        "x-api-key",
        "apikey",
        "key",
        "openaiApiKey",
        "access_token",
        "accessToken",
        "refresh-token",
        "token",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "Authorization",
        "cookie",
        "session_id",
        "sessionId",
        "jwt",
        "aws_secret_access_key",
        "X-Amz-Signature",
        "private_key",
        "credentials",
    ],
)
def test_credential_like_names_are_secret(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "prompt",
        "aspectRatio",
        "guidance",
        "max_tokens",
        "keyframes",
        "monkey",
        "author",
        "steps",
        "seed",
        "strength",
        "images",
        "tokenizer",
    ],
)
def test_generation_parameters_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


def test_clean_redacts_secret_names_at_any_depth_and_keeps_the_rest() -> None:
    redactor = Redactor(["Email"])
    value = {
        "a": 1,
        "api_key": "x",
        "nested": {"token": "y", "list": [{"password": "z", "ok": True}], "email": "e"},
        "items": ["token", "password"],  # values are kept: only names are judged
    }
    hidden = "[redacted]"
    assert redactor.redact(value) == {
        "a": 1,
        "api_key": hidden,
        "nested": {"token": hidden, "list": [{"password": hidden, "ok": True}], "email": hidden},
        "items": ["token", "password"],
    }


def test_a_raising_predicate_drops_the_field() -> None:
    def predicate(name: str) -> bool:
        raise RuntimeError("bug in the app's predicate")

    redactor = Redactor(predicate)
    assert redactor.is_secret("size", in_query=True)
    assert not Redactor(lambda name: name == "x").is_secret("size", in_query=True)


def test_a_single_string_is_one_name() -> None:
    redactor = Redactor("email")
    assert redactor.is_secret("EMAIL", in_query=True)
    assert not redactor.is_secret("e", in_query=True)


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"success": false, "error": "boom"}', "application/json", "boom"),
        (
            b'{"error": {"message": "quota exceeded", "code": 429}}',
            "application/json",
            "quota exceeded",
        ),
        (b'{"detail": "Not Found"}', "application/json", "Not Found"),
        (b'{"detail": [{"loc": ["body"]}]}', "application/json", '[{"loc": ["body"]}]'),
        (b'{"other": 1}', "application/json", '{"other": 1}'),
        (b"upstream timed out\n", "text/plain", "upstream timed out"),
        (b"", "text/plain", "HTTP 504"),
        (b"\xff\xfe", "application/octet-stream", "\ufffd\ufffd"),
    ],
)
def test_error_message(body: bytes, content_type: str, expected: str) -> None:
    assert error_message(body, content_type, 504) == expected


def test_error_message_is_clipped() -> None:
    message = error_message(b"x" * 10_000, "text/plain", 500)
    assert len(message) == 2000 and message.endswith("…")
