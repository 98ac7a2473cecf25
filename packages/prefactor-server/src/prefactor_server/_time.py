"""Timestamps: ISO 8601 in, ISO 8601 UTC with ``Z`` out.

Stored and emitted as fixed-width strings (``2026-08-10T09:00:01.000000Z``), so they
sort as text and never need re-formatting on the way out.
"""

from __future__ import annotations

from datetime import UTC, datetime

from prefactor_server.errors import invalid

__all__ = ["format_timestamp", "now", "parse_timestamp"]

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> str:
    """Return the current time, formatted."""
    return datetime.now(UTC).strftime(_FORMAT)


def format_timestamp(value: datetime) -> str:
    """Format an aware datetime as UTC with ``Z``."""
    return value.astimezone(UTC).strftime(_FORMAT)


def parse_timestamp(value: object, field: str) -> str | None:
    """Parse a request timestamp.

    Args:
        value: The JSON value (None or a string).
        field: The field path, for the error.

    Returns:
        The formatted UTC timestamp, or None when ``value`` is None.

    Raises:
        ApiError: 422 ``invalid_value`` for a non-string, an unparsable string, or a naive
            timestamp (the hosted API rejects those too, wire spec 2.3).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(field, "must be an ISO 8601 timestamp string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(field, f"is not an ISO 8601 timestamp: {value!r}") from None
    if parsed.tzinfo is None:
        raise invalid(field, "must carry a UTC offset (naive timestamps are rejected)")
    return parsed.astimezone(UTC).strftime(_FORMAT)
