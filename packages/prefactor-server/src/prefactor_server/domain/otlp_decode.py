"""Decode an OTLP trace export in the OTLP/JSON encoding into neutral spans; and the
:class:`Export` both encodings end in (protobuf: ``otlp_protobuf.py``).

An :class:`Export` holds resources (``service.name``,
``service.version``) each with their :class:`~prefactor_core.otel._mapping.OtelSpan`
values, plus the spans that could not be used (an id of the wrong length, an all-zero
trace id), which the endpoint reports as ``partial_success`` instead of failing the
whole export. A body that is not an export at all raises :class:`ApiError` 400 naming the
field.

OTLP/JSON is not protobuf's canonical JSON: trace and span ids are hex strings, 64-bit
integers may arrive as strings or numbers, enums as numbers, keys in lowerCamelCase
(snake_case is accepted too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from prefactor_core.otel._mapping import OtelEvent, OtelSpan
from prefactor_server._json import parse_json
from prefactor_server.domain.fields import shown
from prefactor_server.errors import ApiError

__all__ = ["MAX_DEPTH", "Export", "Resource", "decode_json", "invalid_otlp", "service_of"]

# Attribute values nested deeper than this are cut off (None): a hostile body must not
# exhaust the interpreter's stack. Real attributes nest a level or two.
MAX_DEPTH = 16


@dataclass
class Resource:
    """The spans of one OTLP resource and the service that sent them."""

    service_name: str
    service_version: str | None
    spans: list[OtelSpan] = field(default_factory=list)


@dataclass
class Export:
    """A decoded export: usable spans by resource, and the rejected ones."""

    resources: list[Resource] = field(default_factory=list)
    rejected: int = 0
    errors: list[str] = field(default_factory=list)

    def reject(self, where: str, reason: str) -> None:
        """Count one unusable span (the first few reasons are kept for the answer)."""
        self.rejected += 1
        if len(self.errors) < 5:
            self.errors.append(f"{where}: {reason}")

    @property
    def span_count(self) -> int:
        """The number of usable spans."""
        return sum(len(resource.spans) for resource in self.resources)


def invalid_otlp(field_path: str, message: str) -> ApiError:
    return ApiError(400, "invalid_otlp", f"{field_path}: {message}", {field_path: [message]})


def service_of(attrs: Mapping[str, Any]) -> tuple[str, str | None]:
    name = attrs.get("service.name")
    version = attrs.get("service.version")
    return (
        name if isinstance(name, str) and name else "unknown_service",
        str(version) if version is not None and version != "" else None,
    )


# -- OTLP/JSON -------------------------------------------------------------------------


def _get(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _list(obj: Mapping[str, Any], camel: str, snake: str, where: str) -> list[Any]:
    value = _get(obj, camel, snake)
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_otlp(f"{where}.{camel}", "must be an array")
    return value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise invalid_otlp(where, "must be an object")
    return value


_UINT64_END = 1 << 64
_INT64_MIN, _INT64_END = -(1 << 63), 1 << 63


def _digits(value: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes '²' and other digits ``int`` refuses)."""
    return value.isascii() and value.isdigit()


def _json_int(value: Any, where: str) -> int:
    """A fixed64 (times) or enum number: an integer or a string of ASCII digits, 0 ≤ n < 2^64."""
    if value is None:
        return 0
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _digits(value) and len(value) <= 20:
        number = int(value)
    if number is None or not 0 <= number < _UINT64_END:
        raise invalid_otlp(
            where, f"must be an unsigned 64-bit integer (or its digits), got {shown(value)}"
        )
    return number


def _json_int64(raw: Any) -> Any:
    """An ``intValue``: an int64 as OTLP says; digits beyond that range are kept as text,
    so nothing is lost and nothing past 64 bits reaches storage."""
    if isinstance(raw, str):
        body = raw[1:] if raw.startswith("-") else raw
        if not (_digits(body) and len(body) <= 19):
            return raw
        raw = int(raw)
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw if _INT64_MIN <= raw < _INT64_END else str(raw)
    return raw if isinstance(raw, float | bool) or raw is None else str(raw)


def _json_scalar(raw: Any) -> Any:
    """A string, bool or bytes value as sent; a wrong JSON type is kept as text (an integer
    past 64 bits must not reach storage as a number)."""
    if raw is None or isinstance(raw, str | bool | float):
        return raw
    if isinstance(raw, int):
        return _json_int64(raw)
    return str(raw)


def _json_enum(value: Any, names: Any, where: str) -> int:
    """An enum: a number as OTLP/JSON requires, or its name, which some senders write."""
    if isinstance(value, str) and not _digits(value):
        try:
            number: int = names.Value(value)
        except ValueError:
            raise invalid_otlp(where, f"is not a known value: {shown(value)}") from None
        return number
    return _json_int(value, where)


def _json_value(value: Any, depth: int = 0) -> Any:
    if not isinstance(value, Mapping) or depth > MAX_DEPTH:
        return None
    for key in ("stringValue", "string_value"):
        if key in value:
            return _json_scalar(value[key])
    for key in ("boolValue", "bool_value"):
        if key in value:
            return _json_scalar(value[key])
    for key in ("intValue", "int_value"):
        if key in value:
            return _json_int64(value[key])
    for key in ("doubleValue", "double_value"):
        if key in value:
            return _json_double(value[key])
    for key in ("arrayValue", "array_value"):
        if key in value and isinstance(value[key], Mapping):
            items = value[key].get("values")
            return (
                [_json_value(item, depth + 1) for item in items] if isinstance(items, list) else []
            )
    for key in ("kvlistValue", "kvlist_value"):
        if key in value and isinstance(value[key], Mapping):
            return _json_attrs(value[key].get("values"), "kvlistValue", depth + 1)
    for key in ("bytesValue", "bytes_value"):
        if key in value:
            return _json_scalar(value[key])
    return None


def _json_double(raw: Any) -> Any:
    """A ``doubleValue``: a number, or its text ("NaN", "Infinity" as OTLP/JSON writes them);
    what is no number is kept as text."""
    if isinstance(raw, float):
        return raw
    if isinstance(raw, int | str) and not isinstance(raw, bool):
        try:
            number = float(raw)
        except (ValueError, OverflowError):
            return str(raw)
        return number if math.isfinite(number) else str(raw)
    return _json_scalar(raw)


def _json_attrs(items: Any, where: str, depth: int = 0) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise invalid_otlp(where, "must be an array of {key, value}")
    out: dict[str, Any] = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            raise invalid_otlp(f"{where}.{index}.key", "must be a string")
        out[item["key"]] = _json_value(item.get("value"), depth)
    return out


def _hex_id(value: Any, size: int) -> str | None:
    if not isinstance(value, str) or len(value) != size:
        return None
    lowered = value.lower()
    if lowered == "0" * size or any(char not in "0123456789abcdef" for char in lowered):
        return None
    return lowered


def decode_json(body: bytes) -> Export:
    """Decode an ``ExportTraceServiceRequest`` in the OTLP/JSON encoding.

    Raises:
        ApiError: 400 ``invalid_json`` / ``invalid_otlp`` naming the first bad field.
    """
    document = parse_json(body)  # integers past 64 bits exact, not floats
    root = _object(document, "body")
    export = Export()
    for r_index, raw_rs in enumerate(_list(root, "resourceSpans", "resource_spans", "body")):
        r_where = f"resourceSpans.{r_index}"
        resource_spans = _object(raw_rs, r_where)
        raw_resource = _object(resource_spans.get("resource") or {}, f"{r_where}.resource")
        attrs = _json_attrs(raw_resource.get("attributes"), f"{r_where}.resource.attributes")
        resource = Resource(*service_of(attrs))
        for s_index, raw_ss in enumerate(
            _list(resource_spans, "scopeSpans", "scope_spans", r_where)
        ):
            s_where = f"{r_where}.scopeSpans.{s_index}"
            scope_spans = _object(raw_ss, s_where)
            scope = scope_spans.get("scope") or {}
            scope_name = scope.get("name", "") if isinstance(scope, Mapping) else ""
            for index, raw_span in enumerate(_list(scope_spans, "spans", "spans", s_where)):
                where = f"{s_where}.spans.{index}"
                span = _object(raw_span, where)
                trace_id = _hex_id(_get(span, "traceId", "trace_id"), 32)
                span_id = _hex_id(_get(span, "spanId", "span_id"), 16)
                if trace_id is None:
                    export.reject(where, "traceId must be 32 hex characters, not all zero")
                    continue
                if span_id is None:
                    export.reject(where, "spanId must be 16 hex characters, not all zero")
                    continue
                status = _object(span.get("status") or {}, f"{where}.status")
                name = span.get("name", "")
                message = status.get("message", "")
                resource.spans.append(
                    OtelSpan(
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_span_id=_hex_id(_get(span, "parentSpanId", "parent_span_id"), 16),
                        name=name if isinstance(name, str) else str(name),
                        start_ns=_json_int(
                            _get(span, "startTimeUnixNano", "start_time_unix_nano"),
                            f"{where}.startTimeUnixNano",
                        ),
                        end_ns=_json_int(
                            _get(span, "endTimeUnixNano", "end_time_unix_nano"),
                            f"{where}.endTimeUnixNano",
                        ),
                        status_code=_json_enum(
                            status.get("code"), Status.StatusCode, f"{where}.status.code"
                        ),
                        status_message=message if isinstance(message, str) else str(message),
                        attributes=_json_attrs(span.get("attributes"), f"{where}.attributes"),
                        events=[
                            OtelEvent(
                                str(_object(event, f"{where}.events.{e_index}").get("name", "")),
                                _json_int(
                                    _get(event, "timeUnixNano", "time_unix_nano"),
                                    f"{where}.events.{e_index}.timeUnixNano",
                                ),
                                _json_attrs(
                                    event.get("attributes"), f"{where}.events.{e_index}.attributes"
                                ),
                            )
                            for e_index, event in enumerate(_list(span, "events", "events", where))
                        ],
                        kind=_json_enum(span.get("kind"), Span.SpanKind, f"{where}.kind"),
                        scope_name=scope_name if isinstance(scope_name, str) else "",
                    )
                )
        if resource.spans:
            export.resources.append(resource)
    return export
