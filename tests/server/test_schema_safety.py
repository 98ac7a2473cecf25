"""Hostile span schemas: no file or network access, linear-time patterns, bounded work.

A registered schema is the client's input, checked on the single writer path (issue 10).
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import orjson
import pytest

from prefactor_server.testing import LocalServer

if TYPE_CHECKING:
    from conftest import Api

SECRET = "TOP-SECRET-FILE-CONTENT-4242"


class _Counter(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        body = orjson.dumps({"type": "string", "description": SECRET})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(name="schema_host")
def fixture_schema_host() -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on 127.0.0.1 that serves a schema and records every request."""
    hits: ClassVar[list[str]] = []
    handler = type("Handler", (_Counter,), {"hits": hits})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(name="secret_file")
def fixture_secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.json"
    path.write_text(orjson.dumps({"type": "string", "description": SECRET}).decode())
    return path


def _version(params_schema: Any) -> dict[str, Any]:
    return {
        "external_identifier": f"v-{uuid.uuid4()}",
        "span_type_schemas": [{"name": "t", "params_schema": params_schema}],
    }


async def _register(client: httpx.AsyncClient, params_schema: Any) -> httpx.Response:
    return await client.post(
        "/api/v1/agent_instance/register",
        json={
            "agent_id": "schema-agent",
            "agent_version": {"name": "A", "external_identifier": "v1"},
            "agent_schema_version": _version(params_schema),
        },
    )


def _refs(base: str, secret_file: Path) -> list[str]:
    return [
        f"{base}/schema.json",
        f"file://{secret_file}",
        str(secret_file),
        "other.json#/defs/x",
        "https://json-schema.org/draft/2020-12/schema",
    ]


async def test_references_outside_the_schema_are_refused_at_registration(
    client: httpx.AsyncClient, schema_host: tuple[str, list[str]], secret_file: Path
) -> None:
    base, hits = schema_host
    for ref in _refs(base, secret_file):
        for schema, field in (
            ({"$ref": ref}, "$ref"),
            ({"type": "object", "properties": {"a": {"$ref": ref}}}, "properties.a.$ref"),
            ({"$defs": {"x": {"$dynamicRef": ref}}}, "$defs.x.$dynamicRef"),
        ):
            response = await _register(client, schema)
            assert response.status_code == 422, (ref, response.text)
            body = response.json()
            assert body["code"] == "invalid_schema"
            where = f"agent_schema_version.span_type_schemas.0.params_schema.{field}"
            assert where in body["errors"], body
            assert SECRET not in response.text
    assert hits == []


async def test_references_inside_the_schema_still_work(api: Api, client: httpx.AsyncClient) -> None:
    schema = {
        "$defs": {"name": {"type": "string"}},
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/name"}, "b": {"$ref": "#/properties/a"}},
        # A "$ref" inside data keywords is data, not a reference.
        "default": {"$ref": "http://example.invalid/x"},
    }
    response = await _register(client, schema)
    assert response.status_code == 201, response.text
    instance_id = response.json()["details"]["id"]
    good = await api.span(instance_id, schema_name="t", payload={"a": "x", "b": "y"})
    assert good.status_code == 201, good.text
    bad = await api.span(instance_id, schema_name="t", payload={"a": "x", "b": 5})
    assert bad.status_code == 422
    assert "payload.b" in bad.json()["errors"]


async def test_a_stored_schema_with_remote_references_reads_nothing(
    server: LocalServer,
    api: Api,
    client: httpx.AsyncClient,
    schema_host: tuple[str, list[str]],
    secret_file: Path,
) -> None:
    """A version stored before the registration check existed is refused with 422, not run."""
    base, hits = schema_host
    for ref in _refs(base, secret_file)[:2]:
        response = await _register(client, {"type": "object"})
        assert response.status_code == 201
        details = response.json()["details"]
        hostile = {"span_types": {"t": {"name": "t", "params_schema": {"$ref": ref}}}}
        with closing(sqlite3.connect(server.settings.db_path)) as db, db:
            db.execute(
                "UPDATE schema_versions SET body = ? WHERE id = ?",
                (orjson.dumps(hostile).decode(), details["agent_schema_version_id"]),
            )
        span = await api.span(details["id"], schema_name="t", payload={"a": 1})
        assert span.status_code == 422, span.text
        assert "payload" in span.json()["errors"]
        assert SECRET not in span.text
    assert hits == []


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "(a)\\1"},
        {"type": "object", "patternProperties": {"^(?=x)": {}}},
        {"type": "string", "pattern": "(?<!a)b"},
        {"patternProperties": {"^a": {}}, "unevaluatedProperties": False},
        # Long patterns: compiling "(a|b)" * 100,000 took 4.5 s on the writer.
        {"type": "string", "pattern": "(a|b)" * 1000},
        {"type": "object", "patternProperties": {"x" * 1001: {}}},
    ],
)
async def test_patterns_without_linear_matching_are_refused(
    client: httpx.AsyncClient, schema: dict[str, Any]
) -> None:
    response = await _register(client, {"type": "object", "properties": {"s": schema}})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_schema"
    assert any("params_schema" in field for field in response.json()["errors"])


async def test_catastrophic_pattern_answers_at_once(api: Api, client: httpx.AsyncClient) -> None:
    """``^(a+)+$`` on 40 ``a`` and a ``b`` takes Python's re about 2^40 steps; RE2 is linear.

    Before RE2 this request did not come back within the test's timeout.
    """
    schema = {
        "type": "object",
        "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}},
        "patternProperties": {"^(b+)+$": {"type": "integer"}},
        "additionalProperties": {"type": "string"},
    }
    response = await _register(client, schema)
    assert response.status_code == 201, response.text
    instance_id = response.json()["details"]["id"]
    evil = "a" * 40 + "!"
    bad = await api.span(instance_id, schema_name="t", payload={"s": evil})
    assert bad.status_code == 422
    assert "payload.s" in bad.json()["errors"]
    # The key does not match the pattern, so it is an additional property: a string.
    keys = await api.span(instance_id, schema_name="t", payload={"b" * 40 + "!": 1})
    assert keys.status_code == 422, keys.text
    assert any(field.startswith("payload.bbbb") for field in keys.json()["errors"])
    good = await api.span(instance_id, schema_name="t", payload={"s": "aaa", "bbb": 3})
    assert good.status_code == 201, good.text


async def test_exploding_schema_is_cut_off_with_422(api: Api, client: httpx.AsyncClient) -> None:
    """Forty levels of two-way anyOf is 2^40 branches: the budget ends it with a 422."""
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(40)
    }
    defs["d40"] = {"type": "string"}
    response = await _register(client, {"$defs": defs, "$ref": "#/$defs/d0"})
    assert response.status_code == 201, response.text
    instance_id = response.json()["details"]["id"]
    span = await api.span(instance_id, schema_name="t", payload={"x": 1})
    assert span.status_code == 422, span.text
    assert span.json()["code"] == "invalid_schema"
    assert "payload" in span.json()["errors"]


async def test_reference_cycle_is_422_not_500(api: Api, client: httpx.AsyncClient) -> None:
    schema = {
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
        "$ref": "#/$defs/a",
    }
    response = await _register(client, schema)
    assert response.status_code == 201, response.text
    span = await api.span(response.json()["details"]["id"], schema_name="t", payload={"x": 1})
    assert span.status_code == 422, span.text
    assert "payload" in span.json()["errors"]


async def test_unique_items_of_objects_is_not_quadratic(
    api: Api, client: httpx.AsyncClient
) -> None:
    """jsonschema compares unsortable items pairwise: 20,000 objects were 2 × 10^8 compares."""
    schema = {"type": "object", "properties": {"x": {"type": "array", "uniqueItems": True}}}
    response = await _register(client, schema)
    instance_id = response.json()["details"]["id"]
    items = [{"i": i} for i in range(20_000)]
    good = await api.span(instance_id, schema_name="t", payload={"x": items})
    assert good.status_code == 201, good.text[:300]
    for duplicate in ([{"i": 1}, {"i": 1.0}], [{"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}]):
        bad = await api.span(instance_id, schema_name="t", payload={"x": duplicate})
        assert bad.status_code == 422, duplicate
    distinct = await api.span(instance_id, schema_name="t", payload={"x": [1, True, "1", [1]]})
    assert distinct.status_code == 201, distinct.text


async def test_nested_schema_keyword_is_refused(
    server: LocalServer, api: Api, client: httpx.AsyncClient
) -> None:
    """A nested "$schema" made jsonschema switch to its stock validator for that part:
    Python's backtracking regular expressions again, and no budget."""
    draft = "https://json-schema.org/draft/2020-12/schema"
    hostile = {"$defs": {"x": {"$schema": draft, "pattern": "^(a+)+$"}}, "$ref": "#/$defs/x"}
    response = await _register(client, hostile)
    assert response.status_code == 422
    assert any(field.endswith("$defs.x.$schema") for field in response.json()["errors"])
    # A version stored before the check is refused at use, without running the pattern.
    response = await _register(client, {"type": "object"})
    details = response.json()["details"]
    body = {"span_types": {"t": {"name": "t", "params_schema": hostile}}}
    with closing(sqlite3.connect(server.settings.db_path)) as db, db:
        db.execute(
            "UPDATE schema_versions SET body = ? WHERE id = ?",
            (orjson.dumps(body).decode(), details["agent_schema_version_id"]),
        )
    span = await api.span(details["id"], schema_name="t", payload="a" * 40 + "!")
    assert span.status_code == 422, span.text
    # A top-level "$schema" is still fine.
    assert (await _register(client, {"$schema": draft, "type": "object"})).status_code == 201


async def test_huge_schema_is_refused_before_the_metaschema_check(
    client: httpx.AsyncClient,
) -> None:
    """jsonschema's metaschema check of 50,000 properties took 25 s on the writer."""
    huge = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(50_000)}}
    response = await _register(client, huge)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_schema"
    assert "agent_schema_version" in response.json()["errors"]
    big = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(1200)}}
    response = await _register(client, big)
    assert response.status_code == 422
    assert "agent_schema_version.span_type_schemas.0.params_schema" in response.json()["errors"]
    fits = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(300)}}
    assert (await _register(client, fits)).status_code == 201
    # Many schemas that each fit are bounded in all (each costs a metaschema check).
    many = {
        "external_identifier": "many-types",
        "span_schemas": {f"t{i}": {"type": "object", "properties": {"a": {}}} for i in range(2000)},
    }
    response = await client.post(
        "/api/v1/agent_instance/register",
        json={"agent_version": {"name": "A"}, "agent_schema_version": many},
    )
    assert response.status_code == 422
    assert "agent_schema_version" in response.json()["errors"]


async def test_templates_cannot_multiply_into_huge_summaries(
    api: Api, client: httpx.AsyncClient
) -> None:
    """A 1 MB template repeating {{x}} made a 200 MB summary per span."""
    long_template = {
        "external_identifier": "long-template",
        "span_type_schemas": [{"name": "t", "template": "{{x}}" * 200_000}],
    }
    response = await client.post(
        "/api/v1/agent_instance/register",
        json={"agent_version": {"name": "A"}, "agent_schema_version": long_template},
    )
    assert response.status_code == 422
    assert "agent_schema_version.span_type_schemas.0.template" in response.json()["errors"]
    repeating = {
        "external_identifier": "repeating-template",
        "span_type_schemas": [{"name": "t", "template": "{{x}}" * 400}],
    }
    instance = await api.register(agent_schema_version=repeating)
    span = await api.span(instance["id"], schema_name="t", payload={"x": "y" * 100_000})
    assert span.status_code == 201
    summary = span.json()["details"]["summary"]
    assert 0 < len(summary) <= 2000
    assert summary.startswith("yyyy")


async def test_new_schema_versions_per_request_are_bounded(client: httpx.AsyncClient) -> None:
    """200 registers of large new versions in one bulk request held the writer for minutes:
    past the per-request size, the item gets a 422 and the items before it are kept."""

    def version(index: int) -> dict[str, Any]:
        properties = {f"p{i}": {"type": "string"} for i in range(900)}
        return {
            "external_identifier": f"big-{index}",
            "span_schemas": {
                name: {"type": "object", "properties": properties} for name in ("a", "b")
            },
        }

    items = [
        {
            "_type": "agent_instances/register",
            "idempotency_key": f"register-{index:04d}",
            "agent_id": "bulk-agent",
            "agent_version": {"name": "A", "external_identifier": "v1"},
            "agent_schema_version": version(index),
        }
        for index in range(4)
    ]
    response = await client.post("/api/v1/bulk", json={"items": items})
    outputs = response.json()["outputs"]
    assert outputs["register-0000"]["status"] == "success", outputs["register-0000"]
    assert outputs["register-0001"]["status"] == "success"
    assert outputs["register-0002"]["code"] == "too_many_schemas"
    assert "agent_schema_version" in outputs["register-0002"]["errors"]
    assert "register-0003" not in outputs
    # The next request has its own allowance.
    again = await client.post("/api/v1/bulk", json={"items": items[2:3]})
    assert again.json()["outputs"]["register-0002"]["status"] == "success"


async def test_references_to_nothing_are_refused_at_registration(client: httpx.AsyncClient) -> None:
    """A `#/...` pointer or `#anchor` that names no part of the schema is a 422 at
    registration, naming the field (before: accepted, then every span got a 422)."""
    for schema, field in (
        (
            {"type": "object", "properties": {"a": {"$ref": "#/definitions/nope"}}},
            "properties.a.$ref",
        ),
        ({"$defs": {"x": {"type": "string"}}, "$ref": "#/$defs/y"}, "$ref"),
        ({"items": {"$ref": "#missing-anchor"}}, "items.$ref"),
    ):
        response = await _register(client, schema)
        assert response.status_code == 422, (schema, response.text)
        body = response.json()
        assert body["code"] == "invalid_schema"
        where = f"agent_schema_version.span_type_schemas.0.params_schema.{field}"
        assert where in body["errors"], body


async def test_escaped_pointers_and_anchors_resolve(client: httpx.AsyncClient) -> None:
    """JSON-pointer escapes (~1 for '/', ~0 for '~') and `$anchor`s are followed."""
    schema = {
        "$defs": {"a/b": {"type": "string"}, "c~d": {"$anchor": "cd", "type": "integer"}},
        "type": "object",
        "properties": {
            "x": {"$ref": "#/$defs/a~1b"},
            "y": {"$ref": "#/$defs/c~0d"},
            "z": {"$ref": "#cd"},
            "w": {"$ref": "#"},
        },
    }
    response = await _register(client, schema)
    assert response.status_code == 201, response.text
