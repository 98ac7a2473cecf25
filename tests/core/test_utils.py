"""Tests for prefactor_core.utils: idempotency keys."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from prefactor_core import generate_idempotency_key, validate_idempotency_key
from prefactor_core.utils import MAX_IDEMPOTENCY_KEY_LENGTH


def test_generated_key_is_a_36_character_uuid4() -> None:
    """A generated key is the 36-character string form of a version-4 UUID."""
    key = generate_idempotency_key()
    assert isinstance(key, str)
    assert len(key) == 36
    parsed = uuid.UUID(key)
    assert parsed.version == 4
    assert str(parsed) == key


def test_generated_keys_are_unique() -> None:
    """Ten thousand generated keys are all different."""
    keys = {generate_idempotency_key() for _ in range(10_000)}
    assert len(keys) == 10_000


def test_generated_key_passes_validation() -> None:
    """A generated key is within the API limit and validates."""
    key = generate_idempotency_key()
    assert validate_idempotency_key(key) == key


def test_limit_is_64() -> None:
    """The documented API limit is 64 characters."""
    assert MAX_IDEMPOTENCY_KEY_LENGTH == 64


@pytest.mark.parametrize("key", ["k", "a" * 64, "span-456", "ключ-ü", "x y"])
def test_valid_keys_are_returned_unchanged(key: str) -> None:
    """Non-empty strings of at most 64 characters are returned as they are."""
    assert validate_idempotency_key(key) is key


def test_empty_key_raises() -> None:
    """An empty key raises ValueError."""
    with pytest.raises(ValueError, match="empty"):
        validate_idempotency_key("")


def test_key_longer_than_64_raises() -> None:
    """A 65-character key raises ValueError naming the limit."""
    with pytest.raises(ValueError, match="64"):
        validate_idempotency_key("a" * 65)


@pytest.mark.parametrize("key", [None, 123, b"bytes-key", ["k"], uuid.uuid4()])
def test_non_string_key_raises_value_error(key: Any) -> None:
    """A key that is not a str raises ValueError (not TypeError)."""
    with pytest.raises(ValueError, match="string"):
        validate_idempotency_key(key)
