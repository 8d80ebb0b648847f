"""One classification of PostgreSQL SQLSTATE codes, for every catalog on PostgreSQL (the
``postgres`` catalog through psycopg, the ``supabase`` catalog through PostgREST).

Only connection-level failures are retried: class 08 (connection exception), class 53
(insufficient resources: too many connections, disk or memory full), 57P01-57P05 (admin or crash
shutdown, cannot connect now, idle session timeout), 40001 (serialization failure) and 40P01
(deadlock), for which retrying is the documented answer. Every other code fails at once: a code
this table does not list is not known to heal by waiting, so it never costs the caller a retry
deadline.

At connect time libpq hands over the server's refusal as text without its SQLSTATE (a missing
database, a refused role or password): ``connect_sqlstate`` reads the code back from the message,
so those fail at once too instead of being retried as if the network were down. ``3D000`` (no such
database) is a configuration error, not a retry.
"""

from __future__ import annotations

import re
from enum import Enum

__all__ = ["CONFIGURATION_CODES", "Meaning", "classify", "connect_sqlstate", "is_retried"]


class Meaning(Enum):
    """What a SQLSTATE says to the caller."""

    RETRY = "retry"
    """Connection-level or concurrency failure: another attempt may succeed."""
    CONFLICT = "conflict"
    """A unique constraint refused the row (23505)."""
    INPUT = "input"
    """The value is at fault (classes 22, 23 other than 23505, 54)."""
    AUTH = "auth"
    """Credentials or privileges refused (class 28, 42501)."""
    SCHEMA = "schema"
    """A table, column or constraint genstore needs is missing (42P01, 42703, 42P10)."""
    FAIL = "fail"
    """Anything else: fails at once as ``BackendUnavailable``."""


_BY_CODE: dict[str, Meaning] = {
    "40001": Meaning.RETRY,
    "40P01": Meaning.RETRY,
    "57P01": Meaning.RETRY,
    "57P02": Meaning.RETRY,
    "57P03": Meaning.RETRY,
    "57P04": Meaning.RETRY,
    "57P05": Meaning.RETRY,
    "23505": Meaning.CONFLICT,
    "42501": Meaning.AUTH,
    "42P01": Meaning.SCHEMA,
    "42703": Meaning.SCHEMA,
    "42P10": Meaning.SCHEMA,
}
_BY_CLASS: dict[str, Meaning] = {
    "08": Meaning.RETRY,
    "53": Meaning.RETRY,
    "22": Meaning.INPUT,
    "23": Meaning.INPUT,
    "54": Meaning.INPUT,
    "28": Meaning.AUTH,
}


def classify(sqlstate: str) -> Meaning:
    """What ``sqlstate`` (five characters) means; ``FAIL`` for codes not listed."""
    code = sqlstate.strip().upper()
    return _BY_CODE.get(code) or _BY_CLASS.get(code[:2], Meaning.FAIL)


def is_retried(sqlstate: str) -> bool:
    """Whether a failure with ``sqlstate`` is worth another attempt."""
    return classify(sqlstate) is Meaning.RETRY


CONFIGURATION_CODES = frozenset({"3D000"})
"""Codes that name a configuration mistake (the database in the URL does not exist)."""

# The server's FATAL messages at connect time (and libpq's own, for a missing password), in the
# order checked, with the SQLSTATE the server sends with each. English, as servers and libpq
# built without NLS write them; an unrecognised message stays a retried connection failure.
_CONNECT_MESSAGES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r'database ".*" does not exist'), "3D000"),
    (re.compile(r'role ".*" does not exist'), "28000"),
    (re.compile(r"password authentication failed"), "28P01"),
    (re.compile(r"\bauthentication failed for user"), "28000"),
    (re.compile(r"no pg_hba\.conf entry"), "28000"),
    (re.compile(r"is not permitted to log in"), "28000"),
    (re.compile(r"permission denied for database"), "42501"),
    (re.compile(r"must have CONNECT privilege|must be superuser to connect"), "42501"),
    (re.compile(r"password is required|no password supplied|fe_sendauth"), "28P01"),
)


def connect_sqlstate(message: str) -> str | None:
    """The SQLSTATE of a connection refusal libpq reported only as ``message``, or None when
    the message is not one that waiting cannot cure (refused, reset, timed out...)."""
    for pattern, code in _CONNECT_MESSAGES:
        if pattern.search(message):
            return code
    return None
