"""Rendering queued operations as the JSON the API expects.

Params and results are JSON-encoded once, on the caller's path, when the span starts or
finishes (that both checks them and takes a snapshot the caller can no longer change).
Here the encoded text is spliced into request bodies as it is, so nothing is encoded
twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as quote
from typing import Any

import orjson

from prefactor_core.operations import Operation, OperationType

__all__ = ["BULK_ACTIONS", "encode_json", "iso", "render_bulk_item", "render_single"]

_dumps = orjson.dumps
_OPTIONS = orjson.OPT_NON_STR_KEYS


def encode_json(value: Any) -> str:
    """Encode a JSON value compactly (orjson: fast, and strict about what is JSON).

    Raises:
        TypeError: For values JSON cannot represent (objects, sets, bytes, ...), and
            for integers beyond 64 bits. NaN and infinities become ``null``.
    """
    return _dumps(value, option=_OPTIONS).decode()


BULK_ACTIONS: dict[OperationType, str] = {
    OperationType.REGISTER_AGENT_INSTANCE: "agent_instances/register",
    OperationType.START_AGENT_INSTANCE: "agent_instances/start",
    OperationType.FINISH_AGENT_INSTANCE: "agent_instances/finish",
    OperationType.RECORD_QUALITY: "agent_instances/record_quality",
    OperationType.CREATE_SPAN: "agent_spans/create",
    OperationType.FINISH_SPAN: "agent_spans/finish",
}
"""The bulk action of each operation type."""


_second = -1
_second_text = ""


def iso(timestamp: float) -> str:
    """Format a Unix timestamp as ISO 8601 in UTC with microseconds.

    The date and time to the second are formatted once per second (the background
    sender formats two timestamps per span).
    """
    global _second, _second_text
    micros = round(timestamp * 1_000_000)
    second, fraction = divmod(micros, 1_000_000)
    if second != _second:
        _second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second = second
    return f"{_second_text}.{fraction:06d}+00:00"


def _fields(op: Operation) -> list[str]:
    """The body fields of ``op`` as ``"key":value`` texts (path parameters excluded)."""
    p = op.payload
    kind = op.type
    out: list[str] = []
    if kind is OperationType.CREATE_SPAN:
        out.append(f'"id":{quote(p["span_id"])}')
        out.append(f'"agent_instance_id":{quote(p["instance_id"])}')
        out.append(f'"schema_name":{quote(p["schema_name"])}')
        out.append(f'"status":"{p["status"]}"')
        out.append(f'"payload":{p.get("payload_json") or "{}"}')
        if p.get("parent_span_id") is not None:
            out.append(f'"parent_span_id":{quote(p["parent_span_id"])}')
        if p.get("started_at") is not None:
            out.append(f'"started_at":"{iso(p["started_at"])}"')
        if p.get("result_json") is not None:
            out.append(f'"result_payload":{p["result_json"]}')
        if p.get("finished_at") is not None:
            out.append(f'"finished_at":"{iso(p["finished_at"])}"')
    elif kind is OperationType.FINISH_SPAN:
        out.append(f'"status":"{p["status"]}"')
        if p.get("result_json") is not None:
            out.append(f'"result_payload":{p["result_json"]}')
        if p.get("timestamp") is not None:
            out.append(f'"timestamp":"{iso(p["timestamp"])}"')
    elif kind is OperationType.START_AGENT_INSTANCE:
        ts = p.get("timestamp")
        out.append(f'"timestamp":"{iso(ts)}"' if ts is not None else '"timestamp":null')
    elif kind is OperationType.FINISH_AGENT_INSTANCE:
        out.append(f'"status":"{p["status"]}"')
        if p.get("timestamp") is not None:
            out.append(f'"timestamp":"{iso(p["timestamp"])}"')
    elif kind is OperationType.RECORD_QUALITY:
        out.append(f'"name":{quote(p["name"])}')
        out.append(f'"payload":{p.get("payload_json") or "null"}')
    elif kind is OperationType.REGISTER_AGENT_INSTANCE:
        body: dict[str, Any] = p["body"]
        out.extend(f"{quote(k)}:{encode_json(v)}" for k, v in body.items())
    if op.idempotency_key is not None:
        out.append(f'"idempotency_key":{quote(op.idempotency_key)}')
    return out


def render_bulk_item(op: Operation) -> str:
    """Render ``op`` as one item of a ``POST /api/v1/bulk`` request."""
    fields = [f'"_type":"{BULK_ACTIONS[op.type]}"']
    kind = op.type
    if kind is OperationType.FINISH_SPAN:
        fields.append(f'"agent_span_id":{quote(op.payload["span_id"])}')
    elif kind in (
        OperationType.START_AGENT_INSTANCE,
        OperationType.FINISH_AGENT_INSTANCE,
        OperationType.RECORD_QUALITY,
    ):
        fields.append(f'"agent_instance_id":{quote(op.payload["instance_id"])}')
    fields.extend(_fields(op))
    return "{" + ",".join(fields) + "}"


def render_single(op: Operation) -> tuple[str, str]:
    """Render ``op`` as a single request: its path and its JSON body (always POST)."""
    p = op.payload
    kind = op.type
    body = "{" + ",".join(_fields(op)) + "}"
    if kind is OperationType.CREATE_SPAN:
        return "/api/v1/agent_spans", '{"details":' + body + "}"
    if kind is OperationType.FINISH_SPAN:
        return f"/api/v1/agent_spans/{p['span_id']}/finish", body
    if kind is OperationType.REGISTER_AGENT_INSTANCE:
        return "/api/v1/agent_instance/register", body
    action = {
        OperationType.START_AGENT_INSTANCE: "start",
        OperationType.FINISH_AGENT_INSTANCE: "finish",
        OperationType.RECORD_QUALITY: "record_quality",
    }[kind]
    return f"/api/v1/agent_instance/{p['instance_id']}/{action}", body
