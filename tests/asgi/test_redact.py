"""Which names are secrets, and how records are cleaned of them."""

from __future__ import annotations

import pytest
from genstore_asgi import is_secret_name
from genstore_asgi._redact import Redactor


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


def test_clean_drops_secret_names_at_any_depth_and_keeps_the_rest() -> None:
    redactor = Redactor(["Email"])
    value = {
        "a": 1,
        "api_key": "x",
        "nested": {"token": "y", "list": [{"password": "z", "ok": True}], "email": "e"},
        "items": ["token", "password"],  # values are kept: only names are judged
    }
    assert redactor.clean(value) == {
        "a": 1,
        "nested": {"list": [{"ok": True}]},
        "items": ["token", "password"],
    }


def test_a_raising_predicate_drops_the_field() -> None:
    def predicate(name: str) -> bool:
        raise RuntimeError("bug in the app's predicate")

    redactor = Redactor(predicate)
    assert redactor.drops("size")
    assert not Redactor(lambda name: name == "x").drops("size")


def test_a_single_string_is_one_name() -> None:
    redactor = Redactor("email")
    assert redactor.drops("EMAIL")
    assert not redactor.drops("e")
