"""One SQLSTATE table for every PostgreSQL catalog: only connection-level failures are retried,
and the postgres and supabase catalogs agree on every code."""

from __future__ import annotations

import re

import psycopg
import pytest
from genstore import AuthError, BackendUnavailable, ConfigurationError
from genstore_adapters._retry import RetryPolicy
from genstore_adapters._sqlstate import Meaning, classify, connect_sqlstate, is_retried
from genstore_adapters.postgres import errors as pg_errors
from genstore_adapters.supabase import errors as sb_errors
from hypothesis import given
from hypothesis import strategies as st
from postgrest.exceptions import APIError

RETRIED = ["08000", "08006", "08P01", "53300", "53100", "57P01", "57P03", "57P05", "40001", "40P01"]
NOT_RETRIED = [
    "57014",
    "55P03",
    "58030",
    "40002",
    "XX000",
    "42601",
    "P0001",
    "22P05",
    "23505",
    "28P01",
]


@pytest.mark.parametrize("code", RETRIED)
def test_connection_level_codes_are_retried(code: str) -> None:
    assert is_retried(code)


@pytest.mark.parametrize("code", NOT_RETRIED)
def test_other_codes_are_not(code: str) -> None:
    assert not is_retried(code)


def test_meanings() -> None:
    assert classify("23505") is Meaning.CONFLICT
    assert classify("22P05") is Meaning.INPUT
    assert classify("28P01") is Meaning.AUTH
    assert classify("42P01") is Meaning.SCHEMA
    assert classify("XX000") is Meaning.FAIL


def _pg_error(code: str) -> psycopg.Error:
    cls = psycopg.errors.lookup(code)
    return cls("x")


def _sb_transient(code: str) -> bool:
    failure = sb_errors.describe(APIError({"code": code, "message": "x"}))
    assert failure is not None
    return sb_errors.is_transient(failure)


# Every SQLSTATE psycopg knows (its table also maps names, which are left out).
KNOWN_CODES = sorted(c for c in psycopg.errors._sqlcodes if re.fullmatch(r"[0-9A-Z]{5}", c))


@given(st.sampled_from(KNOWN_CODES))
def test_postgres_and_supabase_agree_on_every_code(code: str) -> None:
    expected = is_retried(code)
    assert pg_errors.is_transient(_pg_error(code)) is expected
    assert _sb_transient(code) is expected


@pytest.mark.parametrize("code", ["XX000", "57014"])
def test_an_unlisted_code_fails_at_once_on_supabase(code: str) -> None:
    calls = 0

    def request() -> None:
        nonlocal calls
        calls += 1
        raise APIError({"code": code, "message": "boom"})

    with pytest.raises(BackendUnavailable, match="boom"):
        sb_errors.call(RetryPolicy(deadline=15), request, what="op")
    assert calls == 1


@pytest.mark.parametrize("code", ["XX000", "57014"])
def test_an_unlisted_code_fails_at_once_on_postgres(code: str) -> None:
    calls = 0

    def attempt(left: float) -> None:
        nonlocal calls
        calls += 1
        raise _pg_error(code)

    with pytest.raises(BackendUnavailable):
        pg_errors.retrying(attempt, what="op", deadline=15)
    assert calls == 1


# -- refusals at connect time, which libpq reports without their SQLSTATE ------------------------

_NAMES = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters='"\n'),
    min_size=1,
    max_size=40,
)
_PREFIX = 'connection failed: connection to server at "127.0.0.1", port 5432 failed: FATAL:  '


@given(_NAMES)
def test_a_missing_database_is_read_back_as_3d000_and_is_a_configuration_error(
    name: str,
) -> None:
    error = psycopg.OperationalError(f'{_PREFIX}database "{name}" does not exist')
    assert connect_sqlstate(str(error)) == "3D000"
    assert not pg_errors.is_transient(error)
    translated = pg_errors.translate(error, "stats")
    assert isinstance(translated, ConfigurationError)
    # One line: whitespace inside the server's message is folded.
    assert str(translated).endswith(" ".join(f'database "{name}" does not exist'.split()))
    assert len(str(translated).splitlines()) == 1


@given(_NAMES)
def test_a_missing_role_is_read_back_as_28000_and_is_an_auth_error(name: str) -> None:
    error = psycopg.OperationalError(f'{_PREFIX}role "{name}" does not exist')
    assert connect_sqlstate(str(error)) == "28000"
    assert not pg_errors.is_transient(error)
    assert isinstance(pg_errors.translate(error, "stats"), AuthError)


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ('password authentication failed for user "app"', "28P01"),
        (
            'no pg_hba.conf entry for host "127.0.0.1", user "app", database "x", no encryption',
            "28000",
        ),
        ('role "app" is not permitted to log in', "28000"),
        ('permission denied for database "x"', "42501"),
        ('Ident authentication failed for user "app"', "28000"),
        ("fe_sendauth: no password supplied", "28P01"),
    ],
)
def test_other_refusals_are_read_back(message: str, code: str) -> None:
    assert connect_sqlstate(_PREFIX + message) == code
    error = psycopg.OperationalError(_PREFIX + message)
    assert not pg_errors.is_transient(error)
    assert isinstance(pg_errors.translate(error, "stats"), AuthError)


@pytest.mark.parametrize(
    "message",
    [
        "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?",
        "server closed the connection unexpectedly",
        "timeout expired",
        'could not translate host name "db" to address: Temporary failure in name resolution',
        "FATAL:  the database system is starting up",
        "FATAL:  sorry, too many clients already",
        "SSL SYSCALL error: EOF detected",
    ],
)
def test_connection_trouble_stays_retried(message: str) -> None:
    assert connect_sqlstate(message) is None
    assert pg_errors.is_transient(psycopg.OperationalError(_PREFIX + message))
