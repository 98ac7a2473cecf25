"""Tests for prefactor_core._engine.wire: operations rendered as Prefactor API JSON.

The expected bodies follow the wire protocol (sections 2.2–2.9 for single requests,
section 5 and docs/ARCHITECTURE.md "Bulk items" for bulk items).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from prefactor_core import Operation, OperationType
from prefactor_core._engine.wire import (
    BULK_ACTIONS,
    encode_json,
    iso,
    render_bulk_item,
    render_single,
)

INSTANCE = "ins_0001"
SPAN = "spn_0002"
PARENT = "spn_0001"
KEY = "3e8a8d3c-6a55-4b1e-8f6e-2a7b8f7f2c11"

# 2026-08-10T09:00:01.123456Z and 2026-08-10T09:00:00Z as Unix timestamps.
T_FRACTION = datetime(2026, 8, 10, 9, 0, 1, 123456, tzinfo=UTC).timestamp()
T_WHOLE = datetime(2026, 8, 10, 9, 0, 0, tzinfo=UTC).timestamp()
ISO_FRACTION = "2026-08-10T09:00:01.123456+00:00"
ISO_WHOLE = "2026-08-10T09:00:00.000000+00:00"
ISO_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")

PARAMS_JSON = '{"model":"gpt-4","prompt":"Hi"}'
RESULT_JSON = '{"response":"Hello"}'


def _op(kind: OperationType, payload: dict[str, Any], key: str | None = KEY) -> Operation:
    return Operation(kind, payload, datetime.now(UTC), key)


def create_span(**overrides: Any) -> Operation:
    """A CREATE_SPAN operation as SpanContext builds it (plus dispatcher merge fields)."""
    payload: dict[str, Any] = {
        "instance_id": INSTANCE,
        "span_id": SPAN,
        "schema_name": "agent:llm",
        "status": "active",
        "parent_span_id": None,
        "payload_json": PARAMS_JSON,
        "started_at": None,
    }
    key = overrides.pop("key", KEY)
    payload.update(overrides)
    return _op(OperationType.CREATE_SPAN, payload, key)


def finish_span(**overrides: Any) -> Operation:
    """A FINISH_SPAN operation as SpanContext builds it."""
    payload: dict[str, Any] = {
        "instance_id": INSTANCE,
        "span_id": SPAN,
        "status": "complete",
        "result_json": RESULT_JSON,
        "timestamp": T_FRACTION,
    }
    key = overrides.pop("key", KEY)
    payload.update(overrides)
    return _op(OperationType.FINISH_SPAN, payload, key)


def start_instance(timestamp: float | None = T_FRACTION, key: str | None = KEY) -> Operation:
    """A START_AGENT_INSTANCE operation as the instance manager builds it."""
    return _op(
        OperationType.START_AGENT_INSTANCE, {"instance_id": INSTANCE, "timestamp": timestamp}, key
    )


def finish_instance(status: str = "failed", timestamp: float | None = T_WHOLE) -> Operation:
    """A FINISH_AGENT_INSTANCE operation as the instance manager builds it."""
    return _op(
        OperationType.FINISH_AGENT_INSTANCE,
        {"instance_id": INSTANCE, "status": status, "timestamp": timestamp},
    )


def record_quality(name: str = "summary_quality", payload_json: str | None = '{"score":0.95}'):
    """A RECORD_QUALITY operation as the instance manager builds it."""
    return _op(
        OperationType.RECORD_QUALITY,
        {"instance_id": INSTANCE, "name": name, "payload_json": payload_json},
    )


REGISTER_BODY: dict[str, Any] = {
    "agent_version": {"name": "support-bot", "external_identifier": "v1"},
    "agent_schema_version": {
        "external_identifier": "schemas-1",
        "span_type_schemas": [{"name": "agent:llm", "params_schema": {"type": "object"}}],
    },
    "update_current_version": True,
    "id": INSTANCE,
    "agent_id": "agt_0001",
}


def register(body: dict[str, Any] | None = None) -> Operation:
    """A REGISTER_AGENT_INSTANCE operation as the instance manager builds it."""
    return _op(
        OperationType.REGISTER_AGENT_INSTANCE,
        {"instance_id": INSTANCE, "body": REGISTER_BODY if body is None else body},
    )


ALL_OPERATIONS = {
    OperationType.REGISTER_AGENT_INSTANCE: register,
    OperationType.START_AGENT_INSTANCE: start_instance,
    OperationType.FINISH_AGENT_INSTANCE: finish_instance,
    OperationType.RECORD_QUALITY: record_quality,
    OperationType.CREATE_SPAN: create_span,
    OperationType.FINISH_SPAN: finish_span,
}


# -- every operation type ------------------------------------------------------------


def test_every_operation_type_has_a_bulk_action() -> None:
    """BULK_ACTIONS names a bulk action for every operation type."""
    assert set(BULK_ACTIONS) == set(OperationType)
    assert sorted(BULK_ACTIONS.values()) == [
        "agent_instances/finish",
        "agent_instances/record_quality",
        "agent_instances/register",
        "agent_instances/start",
        "agent_spans/create",
        "agent_spans/finish",
    ]


@pytest.mark.parametrize("kind", list(OperationType), ids=lambda kind: kind.name)
def test_every_operation_renders_valid_json(kind: OperationType) -> None:
    """Both renderings of every operation type are JSON objects carrying the key."""
    op = ALL_OPERATIONS[kind]()
    item = json.loads(render_bulk_item(op))
    assert item["_type"] == BULK_ACTIONS[kind]
    assert item["idempotency_key"] == KEY
    path, body_text = render_single(op)
    assert path.startswith("/api/v1/")
    body = json.loads(body_text)
    assert isinstance(body, dict)
    details = body["details"] if kind is OperationType.CREATE_SPAN else body
    assert details["idempotency_key"] == KEY
    assert "_type" not in details


# -- span create ---------------------------------------------------------------------


def test_create_span_single_is_wrapped_in_details() -> None:
    """A single span create posts to /agent_spans with every field inside 'details'."""
    op = create_span(parent_span_id=PARENT, started_at=T_FRACTION)
    path, body = render_single(op)
    assert path == "/api/v1/agent_spans"
    assert json.loads(body) == {
        "details": {
            "id": SPAN,
            "agent_instance_id": INSTANCE,
            "schema_name": "agent:llm",
            "status": "active",
            "payload": {"model": "gpt-4", "prompt": "Hi"},
            "parent_span_id": PARENT,
            "started_at": ISO_FRACTION,
            "idempotency_key": KEY,
        }
    }


def test_create_span_bulk_item_is_flat() -> None:
    """A bulk span create carries the span fields flat on the item."""
    op = create_span(parent_span_id=PARENT, started_at=T_FRACTION)
    assert json.loads(render_bulk_item(op)) == {
        "_type": "agent_spans/create",
        "id": SPAN,
        "agent_instance_id": INSTANCE,
        "schema_name": "agent:llm",
        "status": "active",
        "payload": {"model": "gpt-4", "prompt": "Hi"},
        "parent_span_id": PARENT,
        "started_at": ISO_FRACTION,
        "idempotency_key": KEY,
    }


def test_create_span_leaves_out_absent_optional_fields() -> None:
    """Without parent, start time or result, only the required fields are sent."""
    details = json.loads(render_single(create_span())[1])["details"]
    assert set(details) == {
        "id",
        "agent_instance_id",
        "schema_name",
        "status",
        "payload",
        "idempotency_key",
    }


def test_create_span_without_params_sends_empty_payload() -> None:
    """A span created without params sends payload {} (never null)."""
    op = create_span(status="pending", payload_json=None)
    details = json.loads(render_single(op)[1])["details"]
    assert details["payload"] == {}
    assert details["status"] == "pending"
    assert json.loads(render_bulk_item(op))["payload"] == {}


def test_create_span_merged_with_its_finish() -> None:
    """A create that already carries its finish sends result_payload and finished_at."""
    op = create_span(
        status="complete", started_at=T_WHOLE, result_json=RESULT_JSON, finished_at=T_FRACTION
    )
    item = json.loads(render_bulk_item(op))
    assert item["status"] == "complete"
    assert item["result_payload"] == {"response": "Hello"}
    assert item["started_at"] == ISO_WHOLE
    assert item["finished_at"] == ISO_FRACTION
    details = json.loads(render_single(op)[1])["details"]
    assert details["result_payload"] == {"response": "Hello"}
    assert details["finished_at"] == ISO_FRACTION


def test_create_span_without_key_has_no_key_field() -> None:
    """An operation without an idempotency key renders no idempotency_key field."""
    details = json.loads(render_single(create_span(key=None))[1])["details"]
    assert "idempotency_key" not in details


# -- span finish ---------------------------------------------------------------------


def test_finish_span_single_is_flat() -> None:
    """A single span finish posts a flat body to /agent_spans/{id}/finish."""
    path, body = render_single(finish_span())
    assert path == f"/api/v1/agent_spans/{SPAN}/finish"
    assert json.loads(body) == {
        "status": "complete",
        "result_payload": {"response": "Hello"},
        "timestamp": ISO_FRACTION,
        "idempotency_key": KEY,
    }


def test_finish_span_bulk_item_carries_the_span_id() -> None:
    """A bulk span finish carries the path parameter agent_span_id as an item field."""
    assert json.loads(render_bulk_item(finish_span(status="failed"))) == {
        "_type": "agent_spans/finish",
        "agent_span_id": SPAN,
        "status": "failed",
        "result_payload": {"response": "Hello"},
        "timestamp": ISO_FRACTION,
        "idempotency_key": KEY,
    }


def test_finish_span_without_result_or_timestamp() -> None:
    """result_payload and timestamp are left out when the operation has none."""
    op = finish_span(status="cancelled", result_json=None, timestamp=None)
    assert json.loads(render_single(op)[1]) == {"status": "cancelled", "idempotency_key": KEY}
    assert json.loads(render_bulk_item(op)) == {
        "_type": "agent_spans/finish",
        "agent_span_id": SPAN,
        "status": "cancelled",
        "idempotency_key": KEY,
    }


# -- instance start / finish ---------------------------------------------------------


def test_start_instance_single() -> None:
    """A single instance start posts {timestamp, idempotency_key} to .../{id}/start."""
    path, body = render_single(start_instance())
    assert path == f"/api/v1/agent_instance/{INSTANCE}/start"
    assert json.loads(body) == {"timestamp": ISO_FRACTION, "idempotency_key": KEY}


def test_start_instance_bulk_item() -> None:
    """A bulk instance start carries agent_instance_id as an item field."""
    assert json.loads(render_bulk_item(start_instance())) == {
        "_type": "agent_instances/start",
        "agent_instance_id": INSTANCE,
        "timestamp": ISO_FRACTION,
        "idempotency_key": KEY,
    }


def test_start_instance_always_has_timestamp() -> None:
    """The start body always has a timestamp key, null when no time was given."""
    op = start_instance(timestamp=None, key=None)
    assert json.loads(render_single(op)[1]) == {"timestamp": None}
    assert json.loads(render_bulk_item(op))["timestamp"] is None


def test_finish_instance_single() -> None:
    """A single instance finish posts {status, timestamp, idempotency_key}."""
    path, body = render_single(finish_instance())
    assert path == f"/api/v1/agent_instance/{INSTANCE}/finish"
    assert json.loads(body) == {"status": "failed", "timestamp": ISO_WHOLE, "idempotency_key": KEY}


def test_finish_instance_bulk_item() -> None:
    """A bulk instance finish carries agent_instance_id as an item field."""
    assert json.loads(render_bulk_item(finish_instance(status="complete"))) == {
        "_type": "agent_instances/finish",
        "agent_instance_id": INSTANCE,
        "status": "complete",
        "timestamp": ISO_WHOLE,
        "idempotency_key": KEY,
    }


def test_finish_instance_without_timestamp_leaves_it_out() -> None:
    """A finish without a time has no timestamp field."""
    body = json.loads(render_single(finish_instance(timestamp=None))[1])
    assert body == {"status": "failed", "idempotency_key": KEY}


# -- record quality ------------------------------------------------------------------


def test_record_quality_single() -> None:
    """A single quality record posts {name, payload, idempotency_key}."""
    path, body = render_single(record_quality())
    assert path == f"/api/v1/agent_instance/{INSTANCE}/record_quality"
    assert json.loads(body) == {
        "name": "summary_quality",
        "payload": {"score": 0.95},
        "idempotency_key": KEY,
    }


def test_record_quality_bulk_item() -> None:
    """A bulk quality record carries agent_instance_id, name and payload."""
    assert json.loads(render_bulk_item(record_quality())) == {
        "_type": "agent_instances/record_quality",
        "agent_instance_id": INSTANCE,
        "name": "summary_quality",
        "payload": {"score": 0.95},
        "idempotency_key": KEY,
    }


def test_record_quality_null_payload_is_sent_as_null() -> None:
    """A removal (payload None) sends payload: null, and the key is still present."""
    body = json.loads(render_single(record_quality(payload_json=None))[1])
    assert "payload" in body
    assert body["payload"] is None


# -- register ------------------------------------------------------------------------


def test_register_single() -> None:
    """A single register posts the body as given, plus the idempotency key."""
    path, body = render_single(register())
    assert path == "/api/v1/agent_instance/register"
    assert json.loads(body) == {**REGISTER_BODY, "idempotency_key": KEY}


def test_register_bulk_item() -> None:
    """A bulk register carries the register body flat on the item."""
    assert json.loads(render_bulk_item(register())) == {
        "_type": "agent_instances/register",
        **REGISTER_BODY,
        "idempotency_key": KEY,
    }


def test_register_body_with_unicode_and_quotes() -> None:
    """Register bodies with quotes, backslashes and non-ASCII text round-trip."""
    body = {
        "agent_version": {"name": 'Bot "ü" \\ → 🚀', "external_identifier": "v\n1"},
        "agent_schema_version": {"external_identifier": "s"},
        "update_current_version": True,
        "id": INSTANCE,
    }
    assert json.loads(render_single(register(body))[1]) == {**body, "idempotency_key": KEY}


# -- escaping, splicing and timestamps -----------------------------------------------


TRICKY = 'name "quoted" \\ back\\slash\nnew\tline ünïcödé → 🚀 \x00 \u2028'


def test_tricky_strings_are_escaped() -> None:
    """Ids, names and keys with quotes, controls and non-ASCII text round-trip exactly."""
    op = create_span(
        schema_name=TRICKY, instance_id=TRICKY, parent_span_id=TRICKY, key=TRICKY + "k"
    )
    details = json.loads(render_single(op)[1])["details"]
    assert details["schema_name"] == TRICKY
    assert details["agent_instance_id"] == TRICKY
    assert details["parent_span_id"] == TRICKY
    assert details["idempotency_key"] == TRICKY + "k"
    item = json.loads(render_bulk_item(finish_span(span_id=TRICKY)))
    assert item["agent_span_id"] == TRICKY
    quality = json.loads(render_bulk_item(record_quality(name=TRICKY)))
    assert quality["name"] == TRICKY


def test_pre_encoded_json_is_spliced_verbatim() -> None:
    """payload_json and result_json appear in the body byte for byte."""
    params = '{"z":1,"a":[1,2,{"b":null}],"u":"ü","n":1.5e-7}'
    result = '{"out":"→","list":[]}'
    p, r = params.encode(), result.encode()
    single = render_single(create_span(payload_json=params))[1]
    assert b'"payload":' + p in single
    bulk = render_bulk_item(create_span(payload_json=params, result_json=result))
    assert b'"payload":' + p in bulk
    assert b'"result_payload":' + r in bulk
    assert b'"result_payload":' + r in render_single(finish_span(result_json=result))[1]
    assert b'"payload":' + p in render_bulk_item(record_quality(payload_json=params))


def test_bodies_are_utf8_with_text_as_it_is() -> None:
    """Non-ASCII text goes as UTF-8, not as escapes; controls are escaped."""
    item = render_bulk_item(create_span(schema_name="agent:ünï→🚀", parent_span_id="a\nb\x00"))
    assert "agent:ünï→🚀".encode() in item
    assert b"a\\nb\\u0000" in item
    assert json.loads(item)["parent_span_id"] == "a\nb\x00"


LONE = "half \ud800 of a pair and \udfff"


@pytest.mark.parametrize("kind", list(OperationType), ids=lambda kind: kind.name)
def test_strings_with_lone_surrogates_still_render(kind: OperationType) -> None:
    """A string that is not valid UTF-8 (a lone surrogate) is written with escapes, the
    rest of the body as usual; both renderings decode to the very same values."""
    ops = {
        OperationType.CREATE_SPAN: create_span(schema_name=LONE, parent_span_id=LONE),
        OperationType.FINISH_SPAN: finish_span(span_id=LONE),
        OperationType.RECORD_QUALITY: record_quality(name=LONE),
        OperationType.REGISTER_AGENT_INSTANCE: register({**REGISTER_BODY, "agent_id": LONE}),
        OperationType.START_AGENT_INSTANCE: start_instance(key=LONE),
        OperationType.FINISH_AGENT_INSTANCE: finish_instance(status=LONE),
    }
    op = ops[kind]
    item = render_bulk_item(op)
    assert b"\\ud800" in item
    assert LONE in json.loads(item).values()
    path, body = render_single(op)
    decoded = json.loads(body)
    assert LONE in (decoded.get("details") or decoded).values() or LONE in path


@pytest.mark.parametrize("kind", list(OperationType), ids=lambda kind: kind.name)
def test_timestamps_are_iso_8601_utc(kind: OperationType) -> None:
    """Every timestamp field is ISO 8601 with microseconds and a +00:00 offset."""
    op = ALL_OPERATIONS[kind]()
    if kind is OperationType.CREATE_SPAN:
        op = create_span(started_at=T_WHOLE, result_json="{}", finished_at=T_FRACTION)
    item = json.loads(render_bulk_item(op))
    for field in ("timestamp", "started_at", "finished_at"):
        if item.get(field) is not None:
            assert ISO_PATTERN.match(item[field]), item[field]
            assert datetime.fromisoformat(item[field]).utcoffset().total_seconds() == 0


def test_iso_formats_in_utc_with_microseconds() -> None:
    """iso() gives ISO 8601 in UTC, keeping six fraction digits at a whole second."""
    assert iso(T_FRACTION) == ISO_FRACTION
    assert iso(T_WHOLE) == ISO_WHOLE
    assert iso(0) == "1970-01-01T00:00:00.000000+00:00"
    assert datetime.fromisoformat(iso(T_FRACTION)).timestamp() == pytest.approx(T_FRACTION)


def test_encode_json_is_compact_and_keeps_unicode() -> None:
    """encode_json writes compact JSON with non-ASCII characters as they are."""
    assert encode_json({"a": [1, 2], "b": "ü→"}) == '{"a":[1,2],"b":"ü→"}'


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_encode_json_writes_non_json_numbers_as_null(value: float) -> None:
    """NaN and infinities, which JSON cannot represent, are written as null."""
    assert encode_json({"x": value}) == '{"x":null}'


def test_iso_of_interleaved_seconds_is_each_timestamps_own() -> None:
    """Starts and ends of long spans alternate between seconds (and the cache of
    formatted seconds fills up and starts again): each text is its own timestamp's."""
    stamps = [1_764_650_000 + k * 7.25 + (k % 3) * 0.000001 for k in range(600)]
    stamps = [t for pair in zip(stamps, reversed(stamps), strict=True) for t in pair]
    for t in stamps:
        micros = round(t * 1_000_000)
        expected = datetime.fromtimestamp(micros // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        assert iso(t) == f"{expected}.{micros % 1_000_000:06d}+00:00"
