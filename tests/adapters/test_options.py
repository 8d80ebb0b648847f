"""The one URL-options parser every adapter uses: the same spellings everywhere."""

from __future__ import annotations

import math
from pathlib import Path

import genstore
import pytest
from genstore import ConfigurationError
from genstore_adapters._options import UrlOptions
from genstore_adapters.postgres.config import settings_from_url
from genstore_adapters.s3.config import S3Config
from hypothesis import given
from hypothesis import strategies as st

TRUE = ["1", "true", "TRUE", "yes", "On", " on "]
FALSE = ["", "0", "false", "No", "OFF"]


@pytest.mark.parametrize("raw", TRUE)
def test_true_spellings(raw: str) -> None:
    assert UrlOptions({"x": raw}, "test").flag("x") is True


@pytest.mark.parametrize("raw", FALSE)
def test_false_spellings(raw: str) -> None:
    assert UrlOptions({"x": raw}, "test").flag("x", default=True) is False


@given(st.text(max_size=12))
def test_a_flag_is_true_false_or_a_configuration_error(raw: str) -> None:
    try:
        value = UrlOptions({"x": raw}, "test").flag("x")
    except ConfigurationError:
        assert raw.strip().lower() not in {*map(str.strip, TRUE), *FALSE}
        return
    assert value is (raw.strip().lower() in {"1", "true", "yes", "on"})


@given(st.text(max_size=12) | st.floats().map(repr))
def test_a_number_is_finite_and_positive_or_refused(raw: str) -> None:
    options = UrlOptions({"n": raw}, "test")
    try:
        value = options.number("n", 7.0)
    except ConfigurationError:
        return
    assert value == 7.0 if raw == "" else (math.isfinite(value) and value > 0)


@given(st.integers(-5, 50) | st.floats(allow_nan=True).map(float))
def test_a_count_is_a_whole_number_at_least_its_minimum(value: float) -> None:
    options = UrlOptions({"n": str(value)}, "test")
    try:
        got = options.count("n", 1, minimum=2)
    except ConfigurationError:
        assert not (math.isfinite(value) and float(value).is_integer() and value >= 2)
        return
    assert got == value and got >= 2


def test_unknown_options_are_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown s3:// option\(s\) colour.*known: a, b"):
        UrlOptions({"colour": "red", "a": "1"}, "s3://").check_known({"a", "b"})


def test_every_adapter_takes_the_same_spellings(tmp_path: Path) -> None:
    with genstore.open_store(f"{tmp_path}?fsync=yes") as store:
        assert store.blobs.fsync is True  # type: ignore[attr-defined]
    with pytest.raises(ConfigurationError, match="fsync"):
        genstore.open_store(f"{tmp_path}?fsync=maybe")
    with pytest.raises(ConfigurationError, match="unknown local store option"):
        genstore.open_store(f"{tmp_path}?fsnyc=true")
    assert S3Config.from_url("b/p", {"retry_deadline": "2.5"}).retry.deadline == 2.5
    for bad in ({"retry_deadline": "inf"}, {"block_size": "5.5"}, {"retry_deadline": "-1"}):
        with pytest.raises(ConfigurationError):
            S3Config.from_url("b", bad)
    assert settings_from_url("postgresql://h/db?deadline=2.5").deadline == 2.5
    with pytest.raises(ConfigurationError):
        settings_from_url("postgresql://h/db?deadline=inf")
