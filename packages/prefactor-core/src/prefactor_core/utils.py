"""Idempotency keys, and a warning the framework adapters use."""

from __future__ import annotations

import logging
import uuid

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "generate_idempotency_key",
    "validate_idempotency_key",
    "warn_missing_adaptor_config",
]

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
        raise ValueError(f"Idempotency key must be a string, got {type(key).__name__}")
    if not key:
        raise ValueError("Idempotency key must not be empty")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(
            f"Idempotency key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters, "
            f"got {len(key)}"
        )
    return key


def warn_missing_adaptor_config(
    instance_id: str, adaptor_name: str, create_client_call: str
) -> None:
    """Log that an instance was created before an adapter could set up its client.

    Framework adapters call this when they are handed an instance whose client they
    did not configure (so their ``X-Prefactor-SDK`` entry and span types were not in
    place when the instance was registered).

    Args:
        instance_id: The instance created too early.
        adaptor_name: The adapter, e.g. ``"middleware"``.
        create_client_call: What to call instead, e.g.
            ``"PrefactorMiddleware.create_client(config)"``.
    """
    logging.getLogger("prefactor_core").warning(
        "agent instance %s was created before the %s set up its client; create the "
        "client with %s first, then the instance",
        instance_id,
        adaptor_name,
        create_client_call,
    )
