"""Checks for request fields, raising 422 with the field path (no pydantic on the hot path)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from prefactor_server.errors import ApiError, excerpt, invalid

__all__ = [
    "CLIENT_ID",
    "MAX_DEPTH",
    "check_storable",
    "client_id",
    "idempotency_key",
    "is_storable",
    "object_field",
    "optional_object",
    "optional_str",
    "required_str",
    "shown",
    "status_field",
]

CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A client-chosen id (ARCHITECTURE.md)."""
_SHOWN_CHARS = 80

MAX_DEPTH = 128
"""Deepest nesting of objects and arrays accepted in a request item's fields.

orjson reads 1024 levels but writes at most 254, and a stored value sits a few levels
down in the answers and stored replays; 128 leaves room for both (issue 10)."""


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, cut short: a client's megabyte-long string
    must not come back in the answer (nor fill the logs)."""
    return excerpt(repr(value), _SHOWN_CHARS)


def required_str(fields: Mapping[str, Any], name: str, prefix: str = "") -> str:
    """Return a required non-empty string field."""
    value = fields.get(name)
    if value is None:
        raise ApiError(
            422, "validation_error", f"{prefix}{name} is required", {prefix + name: ["is required"]}
        )
    if not isinstance(value, str) or not value:
        raise invalid(prefix + name, "must be a non-empty string")
    return value


def optional_str(fields: Mapping[str, Any], name: str, prefix: str = "") -> str | None:
    """Return an optional string field (None when absent or null)."""
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(prefix + name, "must be a string")
    return value


def object_field(fields: Mapping[str, Any], name: str, prefix: str = "") -> dict[str, Any]:
    """Return an object field that defaults to ``{}`` when absent or null."""
    value = fields.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(prefix + name, "must be an object")
    return value


def optional_object(
    fields: Mapping[str, Any], name: str, prefix: str = ""
) -> dict[str, Any] | None:
    """Return an object field that stays None when absent or null."""
    value = fields.get(name)
    if value is not None and not isinstance(value, dict):
        raise invalid(prefix + name, "must be an object")
    return value


def status_field(
    fields: Mapping[str, Any], name: str, allowed: Collection[str], default: str, prefix: str = ""
) -> str:
    """Return a status field from a fixed vocabulary."""
    value = fields.get(name)
    if value is None:
        return default
    if value not in allowed:
        raise invalid(prefix + name, f"must be one of {', '.join(allowed)}")
    return str(value)


def client_id(fields: Mapping[str, Any], name: str = "id", prefix: str = "") -> str | None:
    """Return a client-chosen id: 1 to 64 letters, digits, ``_`` or ``-`` (ARCHITECTURE.md)."""
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not CLIENT_ID.fullmatch(value):
        raise invalid(prefix + name, "must be 1 to 64 letters, digits, '_' or '-'")
    return value


def idempotency_key(value: Any, field: str = "idempotency_key", minimum: int = 1) -> str | None:
    """Return an idempotency key of ``minimum`` to 64 characters, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not minimum <= len(value) <= 64:
        raise invalid(field, f"must be a string of {minimum} to 64 characters")
    return value


# The integers orjson writes (and reads exactly): int64 and uint64.
_INT_LOW = -(2**63)
_INT_HIGH = 2**64 - 1


def _fits(value: Any, levels: int) -> bool:
    """Whether ``value`` is storable (the hot path: no paths built, values only)."""
    for child in value.values() if type(value) is dict else value:
        kind = type(child)
        if kind is dict or kind is list:
            if levels == 0 or not _fits(child, levels - 1):
                return False
        elif kind is int and not _INT_LOW <= child <= _INT_HIGH:
            return False
    return True


def _unstorable(value: Any, levels: int) -> tuple[list[str], str] | None:
    """The path to and the reason of the first value that cannot be stored, or None."""
    children = value.items() if type(value) is dict else enumerate(value)
    for key, child in children:
        kind = type(child)
        if kind is dict or kind is list:
            if levels == 0:
                return [str(key)], "deep"
            below = _unstorable(child, levels - 1)
            if below is not None:
                return [str(key), *below[0]], below[1]
        elif kind is int and not _INT_LOW <= child <= _INT_HIGH:
            return [str(key)], "int"
    return None


def is_storable(fields: Mapping[str, Any], limit: int = MAX_DEPTH) -> bool:
    """Whether :func:`check_storable` accepts ``fields`` (no error built: the hot path)."""
    return _fits(fields, limit)


def check_storable(fields: Mapping[str, Any], limit: int = MAX_DEPTH) -> None:
    """Refuse what the server cannot store exactly, with a 422 naming the field.

    That is nesting deeper than ``limit`` levels and integers outside the 64-bit range
    (they would otherwise come back as rounded floats).

    Raises:
        ApiError: 422 ``too_deep`` or ``invalid_value``; ``errors`` is keyed by the path
            (cut to its first parts for deep values).
    """
    if _fits(fields, limit):
        return
    found = _unstorable(fields, limit)
    if found is None:  # pragma: no cover - _fits and _unstorable agree
        return
    path, reason = found
    if reason == "deep":
        where = ".".join(path[:4]) + (".…" if len(path) > 4 else "")
        message = f"is nested deeper than {limit} levels (at {where})"
        raise ApiError(422, "too_deep", f"{path[0]}: {message}", {path[0]: [message]})
    raise invalid(".".join(path), "is an integer outside the 64-bit range (send it as a string)")
