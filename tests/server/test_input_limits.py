"""Inputs the server cannot store or should not read: deep nesting, huge integers, huge
offsets, long values echoed in errors, non-JSON bodies, oversized and trickled bodies."""

from __future__ import annotations

import asyncio
import gzip
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import orjson
import pytest

from prefactor_server._json import parse_json
from prefactor_server.testing import LocalServer

if TYPE_CHECKING:
    from conftest import Api


def _nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = {"k": value} if level % 2 else [value]
    return value


def _raw(body: dict[str, Any], marker: str, depth: int) -> bytes:
    """``body`` encoded with ``marker`` replaced by ``depth`` levels of nesting (orjson
    itself refuses to write more than 254)."""
    inner = "[" * depth + "1" + "]" * depth
    return orjson.dumps(body).replace(orjson.dumps(marker), inner.encode())


@pytest.mark.parametrize("depth", [129, 300, 1000])
async def test_deep_nesting_is_422_naming_the_field_everywhere(
    api: Api, client: httpx.AsyncClient, depth: int
) -> None:
    """Between 255 and 1024 levels orjson reads but cannot write: each endpoint answered 500."""
    instance = await api.register()
    span = (await api.span(instance["id"])).json()["details"]
    key = {"idempotency_key": str(uuid.uuid4())}
    cases = [
        (
            "/api/v1/agent_spans",
            {"details": {"agent_instance_id": instance["id"], "schema_name": "agent:retrieval",
                         "payload": {"x": "DEEP"}, **key}},
            "payload",
        ),
        (f"/api/v1/agent_spans/{span['id']}/finish", {"result_payload": {"x": "DEEP"}, **key},
         "result_payload"),
        (f"/api/v1/agent_instance/{instance['id']}/record_quality",
         {"name": "accuracy", "payload": {"x": "DEEP"}, **key}, "payload"),
        ("/api/v1/agent_instance/register",
         {"agent_id": "deep-agent", "agent_version": {"name": "D"},
          "agent_schema_version": {"external_identifier": "deep", "span_schemas": {"t": "DEEP"}},
          **key},
         "agent_schema_version"),
    ]  # fmt: skip
    for path, body, field in cases:
        response = await client.post(
            path, content=_raw(body, "DEEP", depth), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (path, response.status_code, response.text[:300])
        assert response.json()["code"] == "too_deep"
        assert field in response.json()["errors"], response.json()
        assert len(response.content) < 2000


async def test_deep_item_in_bulk_keeps_the_items_before_it(
    server: LocalServer, api: Api, client: httpx.AsyncClient
) -> None:
    instance = await api.register()
    good = {
        "_type": "agent_spans/create",
        "idempotency_key": "good-item-0001",
        "agent_instance_id": instance["id"],
        "schema_name": "agent:retrieval",
        "status": "active",
        "payload": {"ok": True},
    }
    bad = {**good, "idempotency_key": "bad-item-00001", "payload": {"x": "DEEP"}}
    after = {**good, "idempotency_key": "later-item-001"}
    raw = _raw({"items": [good, bad, after]}, "DEEP", 400)
    response = await client.post(
        "/api/v1/bulk", content=raw, headers={"Content-Type": "application/json"}
    )  # fmt: skip
    assert response.status_code == 200, response.text[:300]
    outputs = response.json()["outputs"]
    assert outputs["good-item-0001"]["status"] == "success"
    assert outputs["bad-item-00001"]["code"] == "too_deep"
    assert "payload" in outputs["bad-item-00001"]["errors"]
    assert "later-item-001" not in outputs
    stored = await client.get(f"/api/v1/agent_spans/{outputs['good-item-0001']['details']['id']}")
    assert stored.json()["details"]["payload"] == {"ok": True}


async def test_nesting_up_to_the_cap_is_stored(api: Api) -> None:
    instance = await api.register()
    payload = {"x": _nested(127)}
    created = await api.span(instance["id"], payload=payload)
    assert created.status_code == 201, created.text[:300]
    assert created.json()["details"]["payload"] == payload
    one_more = await api.span(instance["id"], payload={"x": _nested(128)})
    assert one_more.status_code == 422


async def test_integers_beyond_64_bits_are_refused_not_rounded(
    api: Api, client: httpx.AsyncClient
) -> None:
    """orjson reads 2^64 and beyond as a float: the value was stored silently changed."""
    instance = await api.register()
    for number in (2**64, -(2**63) - 1, 10**30):
        raw = orjson.dumps(
            {"details": {"agent_instance_id": instance["id"], "schema_name": "agent:retrieval",
                         "payload": {"n": "NUMBER", "s": "1" * 40}}}
        ).replace(b'"NUMBER"', str(number).encode())  # fmt: skip
        response = await client.post("/api/v1/agent_spans", content=raw)
        assert response.status_code == 422, (number, response.text)
        assert "payload.n" in response.json()["errors"]
    # The edges of the 64-bit range (and digit runs inside strings) are kept exactly.
    for number in (2**64 - 1, -(2**63), 2**63):
        created = await api.span(instance["id"], payload={"n": number, "s": "9" * 40})
        assert created.status_code == 201, created.text
        span_id = created.json()["details"]["id"]
        stored = await client.get(f"/api/v1/agent_spans/{span_id}")
        assert orjson.loads(stored.content)["details"]["payload"] == {"n": number, "s": "9" * 40}


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, -(10**19), 10**19 * 9, 10**30])
def test_parse_keeps_each_huge_integer_exact_on_its_own(number: int) -> None:
    """Each form of an integer orjson would round (20 digits, or a minus and 19) is found
    when it is the body's only long digit run; the edges of the 64-bit range need no
    second parse and come back exact too."""
    for value in (number, 2**64 - 1, -(2**63)):
        parsed = parse_json(b'{"a": "2026-01-01T00:00:00", "n": %d, "b": 1.5}' % value)
        assert parsed == {"a": "2026-01-01T00:00:00", "n": value, "b": 1.5}
        assert type(parsed["n"]) is int


async def test_huge_integer_in_bulk_keeps_the_items_before_it(
    api: Api, client: httpx.AsyncClient
) -> None:
    instance = await api.register()
    good = {
        "_type": "agent_spans/create",
        "idempotency_key": "good-item-0001",
        "agent_instance_id": instance["id"],
        "schema_name": "agent:retrieval",
        "payload": {"n": 1},
    }
    bad = {**good, "idempotency_key": "bad-item-00001", "payload": {"n": "HUGE"}}
    raw = orjson.dumps({"items": [good, bad]}).replace(b'"HUGE"', str(2**80).encode())  # fmt: skip
    response = await client.post("/api/v1/bulk", content=raw)
    outputs = response.json()["outputs"]
    assert outputs["good-item-0001"]["status"] == "success"
    assert "payload.n" in outputs["bad-item-00001"]["errors"]


async def test_offset_beyond_64_bits_is_422(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/agent_spans", "/api/v1/agent_instance", "/api/v1/agent"):
        for offset in (2**63, 2**64, 10**30):
            response = await client.get(path, params={"pagination[offset]": str(offset)})
            assert response.status_code == 422, (path, offset, response.text)
            assert "pagination[offset]" in response.json()["errors"]
        last = await client.get(path, params={"pagination[offset]": str(2**63 - 1)})
        assert last.status_code == 200
        assert last.json()["summaries"] == []


async def test_errors_show_only_an_excerpt_of_the_bad_value(
    api: Api, client: httpx.AsyncClient
) -> None:
    """A 1 MB bad timestamp came back as a 2 MB error; every message is cut now."""
    instance = await api.register()
    huge = "9" * 1_000_000
    responses = [
        await api.span(instance["id"], started_at=huge),
        await api.span(instance["id"], schema_name="agent:llm", payload={"model": [huge]}),
        await api.span(instance["id"], schema_name="agent:llm", payload={huge: 1}),
        await client.post(f"/api/v1/agent_instance/{instance['id']}/finish",
                          json={"timestamp": huge + "x"}),
        await client.get("/api/v1/" + "x" * 50_000),
        await client.post(
            "/api/v1/agent_instance/register",
            json={"agent_version": {"name": "A"},
                  "agent_schema_version": {"span_schemas": {huge: {"type": 5}}}},
        ),
    ]  # fmt: skip
    for response in responses:
        assert 400 <= response.status_code < 500, response.text[:200]
        assert len(response.content) < 4000, (response.status_code, response.text[:200])
        body = response.json()
        assert body["status"] == "error"
        assert len(body["message"]) <= 400


async def test_viewer_not_found_page_shows_an_excerpt(server: LocalServer) -> None:
    async with httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as http:
        http.cookies.set("prefactor_token", server.token)
        page = await http.get("/runs/" + "r" * 50_000)
    assert page.status_code == 404
    assert "rrrr" in page.text
    assert len(page.content) < 20_000


async def test_many_schema_errors_are_capped(api: Api, client: httpx.AsyncClient) -> None:
    schema = {
        "external_identifier": "many",
        "span_schemas": {"t": {"type": "object", "additionalProperties": {"type": "string"}}},
    }
    instance = await api.register(agent_schema_version=schema)
    payload = {f"field-{i}": i for i in range(5000)}
    response = await api.span(instance["id"], schema_name="t", payload=payload)
    assert response.status_code == 422
    assert len(response.content) < 10_000
    assert len(response.json()["errors"]) <= 21


def _span_body(instance_id: str) -> bytes:
    return orjson.dumps(
        {"details": {"agent_instance_id": instance_id, "schema_name": "agent:retrieval"}}
    )


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
async def test_json_with_a_non_json_content_type_is_415(
    api: Api, client: httpx.AsyncClient, content_type: str
) -> None:
    instance = await api.register()
    body = _span_body(instance["id"])
    response = await client.post(
        "/api/v1/agent_spans", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_media_type"
    for accepted in ("application/json", "application/json; charset=utf-8",
                     "Application/JSON", "application/vnd.prefactor+json"):  # fmt: skip
        ok = await client.post(
            "/api/v1/agent_spans", content=body, headers={"Content-Type": accepted}
        )
        assert ok.status_code == 201, (accepted, ok.text)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "x-unheard-of"])
async def test_json_with_a_content_encoding_is_415_naming_the_header(
    api: Api, client: httpx.AsyncClient, encoding: str
) -> None:
    """A compressed body was read as JSON and refused as "not JSON": the header is named."""
    instance = await api.register()
    body = _span_body(instance["id"])
    sent = gzip.compress(body) if encoding == "gzip" else body
    for path in ("/api/v1/agent_spans", "/api/v1/bulk"):
        response = await client.post(
            path,
            content=sent,
            headers={"Content-Type": "application/json", "Content-Encoding": encoding},
        )
        assert response.status_code == 415, response.text
        error = response.json()
        assert error["code"] == "unsupported_encoding"
        assert list(error["errors"]) == ["content-encoding"]
    listed = await client.get("/api/v1/agent_spans", params={"agent_instance_id": instance["id"]})
    assert listed.json()["summaries"] == []
    for plain in ("identity", " Identity "):
        ok = await client.post(
            "/api/v1/agent_spans",
            content=body,
            headers={"Content-Type": "application/json", "Content-Encoding": plain},
        )
        assert ok.status_code == 201, (plain, ok.text)


async def test_login_body_has_the_api_size_cap(tmp_path: Path) -> None:
    """POST /login needs no token and read any body whole (200 MB cost 580 MB of memory)."""
    server = LocalServer(tmp_path / "db.sqlite", max_body_bytes=4096)
    async with (
        server,
        httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as http,
    ):
        declared = await http.post(
            "/login",
            content=b"token=" + b"x" * 10_000,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert declared.status_code == 413

        async def chunks() -> Any:
            for _ in range(10):
                yield b"x" * 1000

        streamed = await http.post(
            "/login", content=chunks(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )  # fmt: skip
        assert streamed.status_code == 413


async def _trickle(port: int, path: str, headers: str, stop: asyncio.Event) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n{headers}\r\n".encode()
    )
    await writer.drain()

    async def feed() -> None:
        # One byte at a time, far slower than the server's body time limit; this is the
        # behaviour under test, not a wait for something to happen.
        for _ in range(999):
            if stop.is_set():
                return
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.05)

    feeder = asyncio.create_task(feed())
    try:
        answer = await reader.read(65536)
    finally:
        stop.set()
        await feeder
        writer.close()
    return answer


async def test_a_trickled_body_times_out(tmp_path: Path) -> None:
    token = "trickle-token-0123456789"
    async with LocalServer.run(tmp_path / "db.sqlite", token=token, body_timeout=0.5) as server:
        port = int(server.api_url.rsplit(":", 1)[1])
        answer = await asyncio.wait_for(
            _trickle(port, "/api/v1/bulk", f"Authorization: Bearer {token}\r\n"
                     "Content-Type: application/json\r\n", asyncio.Event()),
            timeout=30,
        )  # fmt: skip
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        login = await asyncio.wait_for(
            _trickle(port, "/login", "Content-Type: application/x-www-form-urlencoded\r\n",
                     asyncio.Event()),
            timeout=30,
        )  # fmt: skip
        assert login.startswith(b"HTTP/1.1 408"), login[:200]
