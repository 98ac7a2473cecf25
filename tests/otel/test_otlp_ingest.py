"""POST /v1/traces with the standard OTLP exporter and hand-made OTLP/JSON, into a real
``prefactor serve``: one trace, one instance, one tree; deduplicated; any order."""

from __future__ import annotations

import gzip
import json
import math
from typing import Any

import httpx
import orjson
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.otel.conftest import Served
from tests.otel.support import (
    QUESTION,
    SERVICE,
    make_provider,
    otlp_json,
    otlp_protobuf,
    record_trace,
)

from prefactor_core.otel._mapping import agent_id_for_service, instance_id_for_trace


def _exporter(served: Served) -> OTLPSpanExporter:
    return OTLPSpanExporter(endpoint=f"{served.url}/v1/traces", headers=served.headers)


def _ids(spans: list[ReadableSpan]) -> tuple[str, dict[str, str]]:
    trace_id = format(spans[0].context.trace_id, "032x")
    by_name = {
        span.name: f"otel-{trace_id}-{format(span.context.span_id, '016x')}" for span in spans
    }
    return trace_id, by_name


def _by_id(served: Served, instance_id: str) -> dict[str, dict[str, Any]]:
    return {span["id"]: span for span in served.spans(agent_instance_id=instance_id)}


def test_exported_trace_becomes_one_instance_with_its_tree(served: Served) -> None:
    """The standard exporter's protobuf export is stored as one instance: tree, statuses,
    model, messages, token usage and the remaining attributes."""
    spans = record_trace()
    trace_id, ids = _ids(spans)
    assert _exporter(served).export(spans) is SpanExportResult.SUCCESS

    instance = served.instance(instance_id_for_trace(trace_id))
    assert instance["status"] == "complete"
    assert instance["agent_id"] == agent_id_for_service(SERVICE)
    agent = served.get(f"/api/v1/agent/{instance['agent_id']}")["details"]
    assert agent["name"] == SERVICE

    stored = _by_id(served, instance["id"])
    assert set(stored) == set(ids.values())
    root = stored[ids["invoke_agent travel"]]
    assert root["parent_span_id"] is None
    assert root["schema_name"] == "agent"
    for name in ("chat gpt-4o", "execute_tool get_weather", "ChatOpenAI"):
        assert stored[ids[name]]["parent_span_id"] == root["id"]
        assert stored[ids[name]]["orphaned"] is False

    chat = stored[ids["chat gpt-4o"]]
    assert chat["schema_name"] == "llm"
    assert chat["status"] == "complete"
    assert chat["payload"]["model"] == "gpt-4o"
    assert chat["payload"]["messages"] == [{"role": "user", "content": QUESTION}]
    assert chat["payload"]["attributes"]["server.address"] == "api.example.test"
    assert chat["result_payload"]["usage"] == {
        "input_tokens": 12,
        "output_tokens": 7,
        "total_tokens": 19,
    }
    assert chat["result_payload"]["messages"][0]["tool_calls"] == [
        {"id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}
    ]

    tool = stored[ids["execute_tool get_weather"]]
    assert tool["schema_name"] == "tool"
    assert tool["status"] == "failed"
    assert tool["payload"]["tool"] == "get_weather"
    error = tool["result_payload"]["error"]
    assert error["type"] == "TimeoutError"
    assert "weather service timed out" in error["message"]
    assert "Traceback" in error["stacktrace"]

    llm = stored[ids["ChatOpenAI"]]
    assert llm["schema_name"] == "llm"
    assert llm["payload"]["model"] == "gpt-4o-mini"
    assert llm["payload"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": QUESTION},
    ]
    assert llm["payload"]["input"] == QUESTION
    assert llm["result_payload"]["output"] == "Rain, 12°C."
    assert llm["result_payload"]["usage"] == {
        "input_tokens": 20,
        "output_tokens": 5,
        "total_tokens": 25,
    }
    assert instance["started_at"] == root["started_at"]
    assert instance["finished_at"] == root["finished_at"]


def test_resent_export_stores_nothing_twice(served: Served) -> None:
    """Exporting the same spans again leaves one copy of each."""
    spans = record_trace()
    trace_id, ids = _ids(spans)
    exporter = _exporter(served)
    for _ in range(3):
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert len(served.spans(agent_instance_id=instance_id_for_trace(trace_id))) == len(ids)


def test_split_and_reversed_exports_build_one_tree(served: Served) -> None:
    """Children exported before their parent, one span per export, end in one tree."""
    spans = record_trace()
    trace_id, ids = _ids(spans)
    instance_id = instance_id_for_trace(trace_id)
    exporter = _exporter(served)
    children = [span for span in spans if span.parent is not None]
    root = next(span for span in spans if span.parent is None)
    for span in reversed(children):
        assert exporter.export([span]) is SpanExportResult.SUCCESS
    early = _by_id(served, instance_id)
    assert all(span["orphaned"] for span in early.values())
    assert served.instance(instance_id)["status"] == "active"

    assert exporter.export([root]) is SpanExportResult.SUCCESS
    stored = _by_id(served, instance_id)
    assert len(stored) == len(ids)
    assert not any(span["orphaned"] for span in stored.values())
    assert {span["parent_span_id"] for span in stored.values()} == {None, ids[root.name]}
    instance = served.instance(instance_id)
    assert instance["status"] == "complete"
    assert instance["started_at"] == stored[ids[root.name]]["started_at"]


def _wide_trace(children: int) -> list[ReadableSpan]:
    """One trace: a root, ``children`` LLM spans under it and a tool span under each."""
    exporter = InMemorySpanExporter()
    provider = make_provider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("openinference.instrumentation.test")
    with tracer.start_as_current_span("agent", attributes={"openinference.span.kind": "AGENT"}):
        for index in range(children):
            with (
                tracer.start_as_current_span(
                    f"llm {index}", attributes={"openinference.span.kind": "LLM"}
                ),
                tracer.start_as_current_span(
                    f"tool {index}", attributes={"openinference.span.kind": "TOOL"}
                ),
            ):
                pass
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_large_export_of_many_traces_is_stored_whole(served: Served) -> None:
    """An export larger than one write (hundreds of spans, several traces of one service,
    children first) is stored whole: every tree intact, every instance finished by its
    root, all under one agent version; resending it stores nothing twice."""
    traces = [_wide_trace(100), *(_wide_trace(3) for _ in range(20)), _wide_trace(150)]
    spans = [span for trace in traces for span in trace]  # OTel ends children first
    assert len(spans) > 500
    exporter = _exporter(served)
    for _ in range(2):
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    versions = set()
    for trace in traces:
        trace_id, ids = _ids(trace)
        instance = served.instance(instance_id_for_trace(trace_id))
        stored = _by_id(served, instance["id"])
        assert set(stored) == set(ids.values())
        assert not any(span["orphaned"] for span in stored.values())
        for span in trace:
            parent = span.parent
            expected = (
                None if parent is None else f"otel-{trace_id}-{format(parent.span_id, '016x')}"
            )
            assert stored[ids[span.name]]["parent_span_id"] == expected
        root = stored[ids["agent"]]
        assert instance["status"] == "complete"
        assert instance["started_at"] == root["started_at"]
        assert instance["finished_at"] == root["finished_at"]
        versions.add((instance["agent_version_id"], instance["agent_schema_version_id"]))
    assert len(versions) == 1


def test_otlp_json_gzip_is_accepted(served: Served) -> None:
    """OTLP/JSON (hex ids, 64-bit integers as strings), gzip-compressed, stores the same."""
    spans = record_trace()
    trace_id, ids = _ids(spans)
    response = httpx.post(
        f"{served.url}/v1/traces",
        content=gzip.compress(otlp_json(spans)),
        headers={
            **served.headers,
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {}
    stored = _by_id(served, instance_id_for_trace(trace_id))
    assert set(stored) == set(ids.values())
    assert stored[ids["chat gpt-4o"]]["result_payload"]["usage"]["total_tokens"] == 19


def test_unusable_spans_are_reported_as_partial_success(served: Served) -> None:
    """A span with a malformed trace id is refused and counted; the others are stored."""
    spans = record_trace()
    trace_id, ids = _ids(spans)
    document = orjson.loads(otlp_json(spans))
    bad = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    bad["traceId"] = "not-hex"
    response = httpx.post(
        f"{served.url}/v1/traces",
        content=orjson.dumps(document),
        headers={**served.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "traceId" in partial["errorMessage"]
    assert len(served.spans(agent_instance_id=instance_id_for_trace(trace_id))) == len(ids) - 1


def test_protobuf_answer_is_an_export_response(served: Served) -> None:
    """A protobuf export is answered with a serialised ExportTraceServiceResponse."""
    response = httpx.post(
        f"{served.url}/v1/traces",
        content=otlp_protobuf(record_trace()),
        headers={**served.headers, "Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    message = ExportTraceServiceResponse()
    message.ParseFromString(response.content)
    assert not message.HasField("partial_success")


def test_bad_requests_get_json_errors_naming_the_field(served: Served) -> None:
    """Missing token, wrong media type, undecodable bodies: 4xx JSON naming the problem."""
    url = f"{served.url}/v1/traces"
    proto = {**served.headers, "Content-Type": "application/x-protobuf"}
    cases: list[tuple[dict[str, str], bytes, int, str]] = [
        ({"Content-Type": "application/x-protobuf"}, b"", 401, "unauthorized"),
        ({**served.headers, "Content-Type": "text/plain"}, b"x", 415, "unsupported_media_type"),
        (proto, b"\xff\xff\xff" * 10, 400, "invalid_otlp"),
        ({**proto, "Content-Encoding": "gzip"}, b"not gzip", 400, "invalid_encoding"),
        ({**proto, "Content-Encoding": "br"}, b"x", 415, "unsupported_encoding"),
        (
            {**served.headers, "Content-Type": "application/json"},
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "'
            + b"a" * 32
            + b'", "spanId": "'
            + b"b" * 16
            + b'", "startTimeUnixNano": "soon"}]}]}]}',
            400,
            "invalid_otlp",
        ),
    ]
    for headers, body, status, code in cases:
        response = httpx.post(url, content=body, headers=headers)
        assert response.status_code == status, (code, response.text)
        error = response.json()
        assert error["code"] == code
        assert len(response.content) < 1000
    field = error["errors"]
    assert list(field) == ["resourceSpans.0.scopeSpans.0.spans.0.startTimeUnixNano"]


def test_deeply_nested_attribute_is_cut_not_a_crash(served: Served) -> None:
    """An attribute value nested sixty levels deep is stored cut short (200)."""
    value: dict[str, object] = {"stringValue": "bottom"}
    for _ in range(60):
        value = {"arrayValue": {"values": [value]}}
    span = {
        "traceId": "c" * 32,
        "spanId": "d" * 16,
        "name": "deep",
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225601000000000",
        "attributes": [{"key": "deep", "value": value}],
    }
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    response = httpx.post(
        f"{served.url}/v1/traces",
        content=orjson.dumps(body),
        headers={**served.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    [stored] = served.spans(agent_instance_id=instance_id_for_trace("c" * 32))
    depth, node = 0, stored["payload"]["attributes"]["deep"]
    while isinstance(node, list):
        depth, node = depth + 1, node[0]
    assert node is None
    assert depth < 20


def test_malformed_otlp_json_never_fails_the_server(served: Served) -> None:
    """Odd shapes in OTLP/JSON are refused with a 4xx naming the field, or stored; never 500."""
    span = {"traceId": "e" * 32, "spanId": "f" * 16, "name": "odd"}
    shapes: list[object] = [
        [],
        {"resourceSpans": 5},
        {"resourceSpans": [5]},
        {"resourceSpans": [{"resource": 5}]},
        {"resourceSpans": [{"scopeSpans": [{"scope": 5, "spans": [span]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "status": {"code": "NOPE"}}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "events": [5]}]}]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": [{**span, "attributes": [{"key": 1}]}]}]}]},
        {
            "resourceSpans": [
                {
                    "scopeSpans": [
                        {
                            "spans": [
                                {
                                    **span,
                                    "attributes": [
                                        {"key": "a", "value": {"arrayValue": {"values": 5}}},
                                        {"key": "b", "value": {"kvlistValue": {"values": 5}}},
                                    ],
                                }
                            ]
                        }
                    ]
                }
            ]
        },
    ]
    for shape in shapes:
        response = httpx.post(
            f"{served.url}/v1/traces",
            content=orjson.dumps(shape),
            headers={**served.headers, "Content-Type": "application/json"},
        )
        assert response.status_code < 500, (shape, response.text)
        if response.status_code >= 400:
            assert response.json()["status"] == "error"


def _post_json(served: Served, body: object) -> httpx.Response:
    # The standard library writes integers past 64 bits (orjson refuses to).
    return httpx.post(
        f"{served.url}/v1/traces",
        content=json.dumps(body).encode(),
        headers={**served.headers, "Content-Type": "application/json"},
    )


def test_times_out_of_range_or_not_ascii_digits_are_400(served: Served) -> None:
    """A time past 64 bits, a negative one or one of non-ASCII digits ('²', which
    str.isdigit takes) is a 400 naming the field, never a 500."""
    for bad in ("99999999999999999999999", "18446744073709551616", "²", "-5", -5):
        span = {
            "traceId": "1" * 32,
            "spanId": "2" * 16,
            "name": "bad time",
            "startTimeUnixNano": bad,
            "endTimeUnixNano": "1767225601000000000",
        }
        response = _post_json(served, {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
        assert response.status_code == 400, (bad, response.text)
        assert "resourceSpans.0.scopeSpans.0.spans.0.startTimeUnixNano" in response.json()["errors"]


def test_integers_past_64_bits_in_attributes_are_kept_as_text(served: Served) -> None:
    """An intValue (or a wrongly typed value) past 64 bits is stored as its digits, exactly,
    and the rest of the span with it; in range, it stays a number."""
    huge = "99999999999999999999999"
    span = {
        "traceId": "3" * 32,
        "spanId": "4" * 16,
        "name": "big numbers",
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225601000000000",
        "attributes": [
            {"key": "big", "value": {"intValue": huge}},
            {"key": "big_number", "value": {"intValue": int(huge)}},
            {"key": "typed_wrong", "value": {"stringValue": int(huge)}},
            {"key": "small", "value": {"intValue": "-42"}},
            {"key": "super", "value": {"intValue": "²"}},
            {"key": "nan", "value": {"doubleValue": "NaN"}},
        ],
    }
    response = _post_json(served, {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    assert response.status_code == 200, response.text
    [stored] = served.spans(agent_instance_id=instance_id_for_trace("3" * 32))
    attributes = stored["payload"]["attributes"]
    assert attributes["big"] == huge
    assert attributes["big_number"] == huge
    assert attributes["typed_wrong"] == huge
    assert attributes["small"] == -42
    assert attributes["super"] == "²"
    assert attributes["nan"] == "NaN"


def test_every_protobuf_attribute_value_kind_is_kept(served: Served) -> None:
    """Each AnyValue kind read from protobuf, including the defaults a oneof member reads
    as when another is set (empty string, 0, false) and a value with none set."""
    values = {
        "text": AnyValue(string_value="hello"),
        "empty": AnyValue(string_value=""),
        "zero": AnyValue(int_value=0),
        "big": AnyValue(int_value=-(1 << 40)),
        "no": AnyValue(bool_value=False),
        "half": AnyValue(double_value=0.5),
        "raw": AnyValue(bytes_value=b"\x00\x01"),
        "unset": AnyValue(),
    }
    values["list"] = AnyValue()
    values["list"].array_value.values.extend([AnyValue(string_value="a"), AnyValue(int_value=2)])
    values["map"] = AnyValue()
    values["map"].kvlist_value.values.append(KeyValue(key="k", value=AnyValue(string_value="")))
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x0e" * 16, b"\x0f" * 8, "kinds"
    span.start_time_unix_nano, span.end_time_unix_nano = 1767225600000000000, 1767225601000000000
    for key, value in values.items():
        span.attributes.append(KeyValue(key=key, value=value))
    response = httpx.post(
        f"{served.url}/v1/traces",
        content=request.SerializeToString(),
        headers={**served.headers, "Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200, response.text
    [stored] = served.spans(agent_instance_id=instance_id_for_trace("0e" * 16))
    assert stored["payload"]["attributes"] == {
        "text": "hello",
        "empty": "",
        "zero": 0,
        "big": -(1 << 40),
        "no": False,
        "half": 0.5,
        "raw": "AAE=",
        "unset": None,
        "list": ["a", 2],
        "map": {"k": ""},
    }


def test_token_counts_that_are_no_64_bit_number_are_kept_as_sent(served: Served) -> None:
    """A token count of non-ASCII digits ('²'), of more digits than 64 bits hold (as text,
    or as an intValue past 64 bits, which decodes as its digits), a float too large for
    64 bits or a negative number is no count: the span is stored with the attribute kept
    as it came, instead of failing the whole export with a 500. A count in range next to
    them is used."""
    counts = [
        ("llm.token_count.prompt", {"stringValue": "²"}),
        ("gen_ai.usage.input_tokens", {"stringValue": "9" * 30}),
        ("llm.token_count.completion", {"intValue": "9" * 25}),
        ("gen_ai.usage.output_tokens", {"doubleValue": 1e300}),
        ("llm.token_count.total", {"stringValue": "1" * 5000}),
        ("gen_ai.usage.cache_read_input_tokens", {"intValue": "-3"}),
        ("gen_ai.usage.reasoning_tokens", {"intValue": "7"}),
    ]
    span = {
        "traceId": "5" * 32,
        "spanId": "6" * 16,
        "name": "odd counts",
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225601000000000",
        "attributes": [{"key": key, "value": value} for key, value in counts],
    }
    response = _post_json(served, {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    assert response.status_code == 200, response.text
    [stored] = served.spans(agent_instance_id=instance_id_for_trace("5" * 32))
    assert stored["result_payload"]["usage"] == {"reasoning_tokens": 7}
    assert stored["payload"]["attributes"] == {
        "llm.token_count.prompt": "²",
        "gen_ai.usage.input_tokens": "9" * 30,
        "llm.token_count.completion": "9" * 25,
        "gen_ai.usage.output_tokens": 1e300,
        "llm.token_count.total": "1" * 5000,
        "gen_ai.usage.cache_read_input_tokens": -3,
    }


def test_nan_and_infinities_are_kept_as_otlp_json_writes_them(served: Served) -> None:
    """A double that is NaN or infinite (JSON has no such numbers: stored, it read back as
    null) is kept as "NaN", "Infinity" or "-Infinity", in protobuf as in OTLP/JSON, alone
    or in a list; finite doubles stay numbers."""
    doubles = {"nan": math.nan, "up": math.inf, "down": -math.inf, "half": 0.5}
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x0a" * 16, b"\x0b" * 8, "doubles"
    span.start_time_unix_nano, span.end_time_unix_nano = 1767225600000000000, 1767225601000000000
    for key, number in doubles.items():
        span.attributes.append(KeyValue(key=key, value=AnyValue(double_value=number)))
    listed = AnyValue()
    listed.array_value.values.extend(AnyValue(double_value=number) for number in doubles.values())
    span.attributes.append(KeyValue(key="list", value=listed))
    response = httpx.post(
        f"{served.url}/v1/traces",
        content=request.SerializeToString(),
        headers={**served.headers, "Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 200, response.text
    texts = {"nan": "NaN", "up": "Infinity", "down": "-Infinity"}
    as_json = {
        "traceId": "0c" * 16,
        "spanId": "0d" * 8,
        "name": "doubles",
        "startTimeUnixNano": "1767225600000000000",
        "endTimeUnixNano": "1767225601000000000",
        "attributes": [
            *[{"key": key, "value": {"doubleValue": text}} for key, text in texts.items()],
            {"key": "half", "value": {"doubleValue": 0.5}},
            {"key": "list", "value": {"arrayValue": {"values": [
                *[{"doubleValue": text} for text in texts.values()], {"doubleValue": 0.5}]}}},
        ],
    }  # fmt: skip
    response = _post_json(served, {"resourceSpans": [{"scopeSpans": [{"spans": [as_json]}]}]})
    assert response.status_code == 200, response.text
    expected = {**texts, "half": 0.5, "list": [*texts.values(), 0.5]}
    for trace in ("0a" * 16, "0c" * 16):
        [stored] = served.spans(agent_instance_id=instance_id_for_trace(trace))
        assert stored["payload"]["attributes"] == expected
