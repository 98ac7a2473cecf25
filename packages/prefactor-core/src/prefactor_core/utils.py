"""Idempotency keys."""

from __future__ import annotations

import uuid

__all__ = ["MAX_IDEMPOTENCY_KEY_LENGTH", "generate_idempotency_key", "validate_idempotency_key"]

MAX_IDEMPOTENCY_KEY_LENGTH = 64
"""The API's limit on the length of an idempotency key."""


def generate_idempotency_key() -> str:
    """Return a new random idempotency key (a 36-character UUID4 string)."""
    return str(uuid.uuid4())


def validate_idempotency_key(key: str) -> str:
    """Check that ``key`` is a usable idempotency key and return it unchanged.

    Raises:
        ValueError: If the key is not a string, is empty, or is longer than 64 characters.
    """
    if not isinstance(key, str):
        raise ValueError(f"idempotency key must be a string, got {type(key).__name__}")
    if not key:
        raise ValueError("idempotency key must not be empty")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(
            f"idempotency key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters, "
            f"got {len(key)}"
        )
    return key
