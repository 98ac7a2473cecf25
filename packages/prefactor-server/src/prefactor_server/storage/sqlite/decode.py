"""SQLite rows → the typed rows of :mod:`prefactor_server.storage.rows`.

SQLite stores JSON columns as text and booleans as integers; these decode a fetched
``sqlite3.Row`` into the row type every backend returns.
"""

from __future__ import annotations

import sqlite3
from typing import Any, cast

import orjson

from prefactor_server.storage.rows import InstanceRow, SpanRow, SpanViewRow

__all__ = ["dumps", "instance_row", "loads", "span_row", "span_view_row"]


def loads(value: str | bytes | None) -> Any:
    """A JSON column's value (None stays None)."""
    return None if value is None else orjson.loads(value)


def dumps(value: Any) -> str | None:
    """A value as a JSON column's text (None stays NULL)."""
    return None if value is None else orjson.dumps(value).decode()


def instance_row(row: sqlite3.Row) -> InstanceRow:
    """An instance (extra columns such as a run's ``sort_key`` kept)."""
    record: dict[str, Any] = dict(row)
    record["quality_payloads"] = orjson.loads(record["quality_payloads"])
    record["quality_summaries"] = orjson.loads(record["quality_summaries"])
    return cast(InstanceRow, record)


def span_row(row: sqlite3.Row) -> SpanRow:
    """A span (``orphaned`` as a bool; the storage's own ``keyed_create`` left out)."""
    record: dict[str, Any] = dict(row)
    record.pop("keyed_create", None)
    record["payload"] = orjson.loads(record["payload"])
    record["result_payload"] = loads(record["result_payload"])
    record["orphaned"] = bool(record["orphaned"])
    return cast(SpanRow, record)


def span_view_row(row: sqlite3.Row) -> SpanViewRow:
    """A span as the viewer's tree reads it (payloads may be left out: None)."""
    record: dict[str, Any] = dict(row)
    record["payload"] = loads(record["payload"])
    record["result_payload"] = loads(record["result_payload"])
    return cast(SpanViewRow, record)
