"""Checks for request fields, raising 422 with the field path (no pydantic on the hot path)."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from prefactor_server.errors import ApiError, invalid

__all__ = [
    "client_id",
    "idempotency_key",
    "object_field",
    "optional_object",
    "optional_str",
    "required_str",
    "shown",
    "status_field",
]

_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHOWN_CHARS = 80


def shown(value: Any) -> str:
    """``repr(value)`` for an error message, cut short: a client's megabyte-long string
    must not come back in the answer (nor fill the logs)."""
    text = repr(value)
    if len(text) <= _SHOWN_CHARS:
        return text
    return f"{text[: _SHOWN_CHARS - 1]}… ({len(text)} characters)"


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
    if not isinstance(value, str) or not _CLIENT_ID.fullmatch(value):
        raise invalid(prefix + name, "must be 1 to 64 letters, digits, '_' or '-'")
    return value


def idempotency_key(value: Any, field: str = "idempotency_key", minimum: int = 1) -> str | None:
    """Return an idempotency key of ``minimum`` to 64 characters, or None."""
    if value is None:
        return None
    if not isinstance(value, str) or not minimum <= len(value) <= 64:
        raise invalid(field, f"must be a string of {minimum} to 64 characters")
    return value
