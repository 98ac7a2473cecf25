"""The neutral span the OpenTelemetry mapping works on, and what it makes of it.

Both doors build :class:`OtelSpan` values: the server from OTLP (protobuf or JSON), the
SDK from ``ReadableSpan`` objects. No ``opentelemetry`` import.

They are named tuples, not frozen dataclasses: as immutable, and made in a quarter of the
time (one of each per span on the server's ingest path and the SDK's span processor).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = ["STATUS_ERROR", "STATUS_OK", "STATUS_UNSET", "MappedSpan", "OtelEvent", "OtelSpan"]

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2


class OtelEvent(NamedTuple):
    """One span event: its name, time (ns since the epoch) and attributes."""

    name: str
    time_ns: int
    attributes: Mapping[str, Any]


_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


class OtelSpan(NamedTuple):
    """An ended OpenTelemetry span, decoded from OTLP or taken from the OTel SDK.

    Attributes:
        trace_id: 32 lowercase hex characters.
        span_id: 16 lowercase hex characters.
        parent_span_id: The parent's 16 hex characters, or None for a root span.
        name: The span name.
        start_ns: Start time in nanoseconds since the epoch.
        end_ns: End time in nanoseconds since the epoch.
        status_code: 0 unset, 1 ok, 2 error (OTLP's ``Status.code``).
        status_message: The status description.
        attributes: Attribute values: str, bool, int, float, or lists of them.
        events: The span's events.
        kind: OTLP's span kind number (1 internal ... 5 consumer; 0 unspecified).
        scope_name: The instrumentation scope (library) name.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    status_code: int = STATUS_UNSET
    status_message: str = ""
    attributes: Mapping[str, Any] = _NO_ATTRIBUTES
    events: Sequence[OtelEvent] = ()
    kind: int = 0
    scope_name: str = ""


class MappedSpan(NamedTuple):
    """A Prefactor span made from an :class:`OtelSpan`.

    Attributes:
        schema_name: ``llm``, ``tool``, ``agent``, ``chain``, ``retriever``, ...
            or ``span``.
        status: ``complete`` or ``failed``.
        params: The span payload (see the module docstring).
        result: The result payload.
    """

    schema_name: str
    status: str
    params: dict[str, Any]
    result: dict[str, Any]
