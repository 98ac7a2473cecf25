"""Tests for ``HttpClientConfig``: defaults, validation and repr."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from prefactor_http import HttpClientConfig


def make(**overrides: Any) -> HttpClientConfig:
    values: dict[str, Any] = {"api_url": "https://app.prefactorai.com", "api_token": "pf_x"}
    values.update(overrides)
    return HttpClientConfig(**values)


def test_defaults_match_the_published_client() -> None:
    """Every optional field has the published 0.4.3 default."""
    config = make()
    assert config.request_timeout == 30.0
    assert config.connect_timeout == 10.0
    assert config.max_retries == 3
    assert config.initial_retry_delay == 1.0
    assert config.max_retry_delay == 60.0
    assert config.retry_multiplier == 2.0
    assert config.retry_on_status_codes == (429, 500, 502, 503, 504)
    assert config.default_idempotency_key is None


def test_field_order_allows_positional_url_and_token() -> None:
    """``api_url`` and ``api_token`` can be passed positionally, as in the published client."""
    config = HttpClientConfig("http://localhost:8000", "tok")
    assert (config.api_url, config.api_token) == ("http://localhost:8000", "tok")
    names = [f.name for f in dataclasses.fields(HttpClientConfig)]
    assert names[:2] == ["api_url", "api_token"]


def test_repr_hides_the_token() -> None:
    """The token never appears in the config's repr."""
    assert "pf_secret" not in repr(make(api_token="pf_secret"))


def test_value_equality() -> None:
    """Two configs with the same values are equal."""
    assert make(max_retries=1) == make(max_retries=1)
    assert make(max_retries=1) != make(max_retries=2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("api_url", ""),
        ("api_url", "ftp://example.com"),
        ("api_url", "example.com"),
        ("api_url", "http://"),
        ("api_token", ""),
        ("request_timeout", 0),
        ("request_timeout", -1.0),
        ("request_timeout", math.nan),
        ("request_timeout", math.inf),
        ("connect_timeout", 0),
        ("max_retries", -1),
        ("max_retries", 1.5),
        ("max_retries", True),
        ("initial_retry_delay", 0),
        ("max_retry_delay", 0),
        ("retry_multiplier", 0.5),
        ("retry_multiplier", math.nan),
    ],
)
def test_bad_values_raise_value_error_naming_the_field(field: str, value: Any) -> None:
    """A bad value raises ValueError whose message names the field."""
    with pytest.raises(ValueError, match=field):
        make(**{field: value})


def test_initial_delay_must_not_exceed_max_delay() -> None:
    """``initial_retry_delay`` above ``max_retry_delay`` is rejected."""
    with pytest.raises(ValueError, match="initial_retry_delay must be <= max_retry_delay"):
        make(initial_retry_delay=5.0, max_retry_delay=2.0)


def test_zero_retries_and_multiplier_one_are_allowed() -> None:
    """The boundary values ``max_retries=0`` and ``retry_multiplier=1`` are valid."""
    config = make(max_retries=0, retry_multiplier=1.0)
    assert config.max_retries == 0
    assert config.retry_multiplier == 1.0
