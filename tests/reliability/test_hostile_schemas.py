"""Hostile span schemas against a real server: answered at once, and nobody else waits.

Each scenario registers a schema (or sends a payload) built to make the server read a
file, fetch a URL that never answers, backtrack exponentially, branch exponentially or
recurse, while a second account keeps writing. Checked for each:

* the answer: a 4xx naming the field (never a 500, never the fetched or read content),
  and no request to the never-answering URL;
* the other account kept writing while it was handled: every write it made meanwhile
  was stored.

No wall-clock bound is asserted (the machines are shared): the holes these cover took
minutes or forever, so a regression hangs and the module's timeout fails it.

Before issue 10 the remote ``$ref`` stalled every account's writes until the URL
answered, ``^(a+)+$`` on 40 characters ran for hours, and the deep payload answered 500.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from prefactor_server.testing import LocalServer

TOKEN = "hostile-schemas-token-0123456789"
SECRET = "SECRET-SCHEMA-CONTENT-7131"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@dataclass
class Stage:
    server: LocalServer
    attacker: httpx.AsyncClient
    bystander: httpx.AsyncClient
    bystander_instance: str
    secret_file: Path
    slow_url: str
    slow_hits: list[str]


def _never_answering_server() -> tuple[ThreadingHTTPServer, list[str], threading.Event]:
    hits: list[str] = []
    release = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            release.wait(60)  # a URL that does not answer while the test runs

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    return server, hits, release


@pytest.fixture(name="slow_url")
def fixture_slow_url() -> Iterator[tuple[str, list[str]]]:
    server, hits, release = _never_answering_server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/schema.json", hits
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join()


def _register_body(params_schema: Any, name: str = "t") -> dict[str, Any]:
    return {
        "agent_id": "hostile-schema-agent",
        "agent_version": {"name": "H", "external_identifier": "v1"},
        "agent_schema_version": {
            "external_identifier": f"v-{uuid.uuid4()}",
            "span_type_schemas": [{"name": name, "params_schema": params_schema}],
        },
    }


@pytest.fixture(name="stage")
async def fixture_stage(tmp_path: Path, slow_url: tuple[str, list[str]]) -> AsyncIterator[Stage]:
    secret_file = tmp_path / "secret.json"
    secret_file.write_text(orjson.dumps({"type": "string", "description": SECRET}).decode())
    async with LocalServer.run(tmp_path / "hostile.db", token=TOKEN) as server:
        other = server.create_account("bystander")
        async with (
            httpx.AsyncClient(
                base_url=server.api_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
            ) as attacker,
            httpx.AsyncClient(
                base_url=server.api_url, headers={"Authorization": f"Bearer {other}"}, timeout=120
            ) as bystander,
        ):
            registered = await bystander.post(
                "/api/v1/agent_instance/register", json=_register_body({"type": "object"})
            )
            assert registered.status_code == 201, registered.text
            yield Stage(
                server,
                attacker,
                bystander,
                registered.json()["details"]["id"],
                secret_file,
                *slow_url,
            )


async def _plain_write(stage: Stage) -> None:
    response = await stage.bystander.post(
        "/api/v1/agent_spans",
        json={
            "details": {
                "agent_instance_id": stage.bystander_instance,
                "schema_name": "t",
                "status": "complete",
                "payload": {"q": "plain"},
            }
        },
    )
    assert response.status_code == 201, response.text


async def _while_bystander_writes(stage: Stage, hostile: Any) -> tuple[httpx.Response, int]:
    """Run ``hostile`` while the other account writes; return its answer and how many
    writes the other account made meanwhile (each one checked stored; at least one)."""
    done = asyncio.Event()
    writes = 0

    async def keep_writing() -> None:
        nonlocal writes
        while True:
            await _plain_write(stage)
            writes += 1
            if done.is_set():
                return

    writer = asyncio.create_task(keep_writing())
    try:
        response = await hostile
    finally:
        done.set()
        await writer
    return response, writes


async def _register_then_span(stage: Stage, schema: Any, payload: Any) -> httpx.Response:
    registered = await stage.attacker.post(
        "/api/v1/agent_instance/register", json=_register_body(schema)
    )
    if registered.status_code != 201:
        return registered
    return await stage.attacker.post(
        "/api/v1/agent_spans",
        json={"details": {"agent_instance_id": registered.json()["details"]["id"],
                          "schema_name": "t", "payload": payload}},
    )  # fmt: skip


def _exploding_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {
        f"d{i}": {"anyOf": [{"$ref": f"#/$defs/d{i + 1}"}, {"$ref": f"#/$defs/d{i + 1}"}]}
        for i in range(60)
    }
    defs["d60"] = {"type": "string"}
    return {"$defs": defs, "$ref": "#/$defs/d0"}


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


SCENARIOS: dict[str, tuple[Any, Any, str, str]] = {
    # name: (params schema, payload, expected code, field the answer names)
    "remote $ref (a URL that never answers)": (
        {"$ref": "SLOW_URL"}, {"s": 1}, "invalid_schema", "params_schema.$ref"),
    "file $ref": ({"properties": {"s": {"$ref": "SECRET_FILE"}}}, {"s": 1},
                  "invalid_schema", "params_schema.properties.s.$ref"),
    "catastrophic pattern": (
        {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a+)+$"}}},
        {"s": "a" * 40 + "!"}, "validation_error", "payload.s"),
    "catastrophic patternProperties": (
        {"type": "object", "patternProperties": {"^(a|aa)+$": {"type": "string"}},
         "additionalProperties": False},
        {"a" * 60 + "!": "x"}, "validation_error", "payload"),
    "exploding anyOf": (_exploding_schema(), {"s": 1}, "invalid_schema", "payload"),
    "reference cycle": ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, {"s": 1},
                        "invalid_schema", "payload"),
    "nested $schema with a catastrophic pattern": (
        {"$defs": {"x": {"$schema": "https://json-schema.org/draft/2020-12/schema",
                         "pattern": "^(a+)+$"}}, "$ref": "#/$defs/x"},
        "a" * 40 + "!", "invalid_schema", "params_schema.$defs.x.$schema"),
    "huge schema (metaschema check)": (
        {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(50_000)}},
        {"s": 1}, "invalid_schema", "agent_schema_version"),
}  # fmt: skip


def _resolve(value: Any, stage: Stage) -> Any:
    text = orjson.dumps(value).decode()
    text = text.replace("SLOW_URL", stage.slow_url).replace("SECRET_FILE", str(stage.secret_file))
    return orjson.loads(text)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_hostile_schema(stage: Stage, scenario: str) -> None:
    schema, payload, code, field = SCENARIOS[scenario]
    response, writes = await _while_bystander_writes(
        stage, _register_then_span(stage, _resolve(schema, stage), payload)
    )
    assert response.status_code == 422, response.text[:300]
    body = response.json()
    assert body["code"] == code, body
    assert any(field in name for name in body["errors"]), body
    assert SECRET not in response.text
    assert stage.slow_hits == []
    assert writes >= 1


async def test_deeply_nested_payload(stage: Stage) -> None:
    """500 levels: orjson reads it but could not write it back (a 500, whole bulk lost)."""
    items = [
        {"_type": "agent_spans/create", "idempotency_key": f"item-{i:08d}",
         "agent_instance_id": stage.bystander_instance, "schema_name": "t",
         "payload": {"x": "DEEP" if i == 5 else i}}
        for i in range(10)
    ]  # fmt: skip
    raw = orjson.dumps({"items": items}).replace(b'"DEEP"', _deep(500))
    response, writes = await _while_bystander_writes(
        stage,
        stage.bystander.post(
            "/api/v1/bulk", content=raw, headers={"Content-Type": "application/json"}
        ),
    )
    assert response.status_code == 200, response.text[:300]
    outputs = response.json()["outputs"]
    assert [outputs[f"item-{i:08d}"]["status"] for i in range(5)] == ["success"] * 5
    assert outputs["item-00000005"]["code"] == "too_deep"
    assert "payload" in outputs["item-00000005"]["errors"]
    assert "item-00000006" not in outputs
    assert writes >= 1
