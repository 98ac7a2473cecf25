"""Checks on arguments, run before anything is sent (wire protocol section 7)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

MAX_IDEMPOTENCY_KEY_LENGTH = 64
MIN_BULK_IDEMPOTENCY_KEY_LENGTH = 8

AGENT_STATUSES = frozenset({"pending", "active", "complete", "failed", "cancelled", "terminated"})
FINISH_STATUSES = frozenset({"complete", "failed", "cancelled"})
INSTANCE_PURPOSES = frozenset({"live", "smoke_test", "eval"})

# Path ids are inserted verbatim (as the published client does); these characters would
# change the meaning of the URL instead of naming a resource.
_PATH_BREAKERS = frozenset("/?#")


def check_idempotency_key(key: str) -> None:
    """Reject an idempotency key the API would refuse: empty or over 64 characters."""
    if not isinstance(key, str):
        raise ValueError(f"idempotency_key must be a string, got {type(key).__name__}")
    if not key:
        raise ValueError("idempotency_key must not be empty")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise ValueError(
            f"idempotency_key must be at most {MAX_IDEMPOTENCY_KEY_LENGTH} characters, "
            f"got {len(key)}"
        )


def check_bulk_items(items: Iterable[Mapping[str, Any]]) -> int:
    """Check raw bulk items: a ``_type`` each and unique 8–64 character keys.

    Returns:
        The number of items.

    Raises:
        ValueError: Naming the index of the first bad item and what is wrong with it.
    """
    seen: set[str] = set()
    count = 0
    for index, item in enumerate(items):
        count += 1
        if not isinstance(item, Mapping):
            raise ValueError(f"bulk item {index} must be a dict, got {type(item).__name__}")
        action = item.get("_type")
        if not isinstance(action, str) or not action:
            raise ValueError(f"bulk item {index} needs a non-empty '_type'")
        key = item.get("idempotency_key")
        if not isinstance(key, str):
            raise ValueError(f"bulk item {index} needs a string 'idempotency_key'")
        if not MIN_BULK_IDEMPOTENCY_KEY_LENGTH <= len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH:
            raise ValueError(
                f"bulk item {index}: idempotency_key must be {MIN_BULK_IDEMPOTENCY_KEY_LENGTH}"
                f" to {MAX_IDEMPOTENCY_KEY_LENGTH} characters, got {len(key)}"
            )
        if key in seen:
            raise ValueError(f"bulk item {index}: duplicate idempotency_key {key!r}")
        seen.add(key)
    if count == 0:
        raise ValueError("a bulk request needs at least one item")
    return count


def check_path_id(name: str, value: object) -> str:
    """Return ``value`` if it can be placed in a URL path as one segment."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if not _PATH_BREAKERS.isdisjoint(value):
        raise ValueError(f"{name} must not contain '/', '?' or '#', got {value!r}")
    return value


def check_choice(name: str, value: str, allowed: frozenset[str]) -> str:
    """Return ``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(allowed)}, got {value!r}")
    return value


def isoformat(name: str, value: datetime) -> str:
    """Serialise an aware datetime; the API rejects naive ones (``invalid_value``)."""
    if not isinstance(value, datetime):
        raise ValueError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (e.g. datetime.now(timezone.utc))")
    return value.isoformat()
