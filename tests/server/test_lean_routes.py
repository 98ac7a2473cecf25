"""The lean route of ``POST /api/v1/bulk`` (``api/lean.py``) answers exactly as the FastAPI
route did: the same requests (good ones, and every kind of refusal: authentication, the
rate limit, content type, body caps, malformed bodies and items) sent to two fresh
servers, one with the lean route switched off, give the same status, headers and body;
and the lean route did answer them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from tests.lean_support import count_lean_answers

from prefactor_server import _time
from prefactor_server.api import lean
from prefactor_server.testing import LocalServer

TOKEN = "lean-route-token-1"
NOW = "2026-05-04T03:02:01.123456Z"
BULK = ("POST", "/api/v1/bulk")
SCHEMA = {"external_identifier": "lean-schema", "span_schemas": {"step": {"type": "object"}}}


def _item(key: str, instance: str, **fields: Any) -> dict[str, Any]:
    return {"_type": "agent_spans/create", "idempotency_key": key, "id": key.removeprefix("c-"),
            "agent_instance_id": instance, "schema_name": "step", "status": "complete",
            "payload": {"q": 1}, "result_payload": {"a": 2},
            "started_at": "2026-01-01T00:00:00.000001+00:00",
            "finished_at": "2026-01-01T00:00:01.000000Z", **fields}  # fmt: skip


async def _chunks(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 1000):
        yield body[start : start + 1000]


def _requests(instance: str) -> list[tuple[dict[str, str], bytes | None]]:
    """(headers, body) of each request; the body None means a chunked body over the cap."""
    good = orjson.dumps({"items": [_item(f"c-span-{n:04d}", instance) for n in range(30)]})
    auth = {"Authorization": f"Bearer {TOKEN}", "Accept-Encoding": "identity"}
    json = {**auth, "Content-Type": "application/json"}
    minimal = {**json, "Prefer": "return=minimal"}
    bad_item = {"items": [_item("c-span-0100", instance), {"_type": "x", "idempotency_key": 5}]}
    return [
        (minimal, good),
        (json, good),  # replays, in full
        ({**json, "Authorization": f"bearer {TOKEN}"}, good),  # any case of the scheme
        ({**json, "Prefer": 'return="minimal", respond-async'}, good),
        ({"Content-Type": "application/json"}, good),  # no token
        ({**json, "Authorization": f"Basic {TOKEN}"}, good),
        ({**json, "Authorization": "Bearer "}, good),
        ({**json, "Content-Type": "text/plain"}, good),
        (json, b"{not json"),
        (json, b"[1, 2]"),
        (json, b"   "),
        (json, b'{"items": []}'),
        (json, orjson.dumps(bad_item)),
        (json, orjson.dumps({"items": [_item("c-span-0200", instance, _type="agents/list")]})),
        (
            json,
            orjson.dumps({"items": [_item("c-span-0300", instance, payload={"n": 0})]}).replace(
                b'"n":0', b'"n":18446744073709551616'
            ),
        ),  # an integer out of range: 422 for that item
        (json, b'{"items": [' + b" " * 20000 + b"]}"),  # over the body cap (Content-Length)
        (json, None),  # over the body cap, chunked
        *[({**json, "Authorization": f"Bearer wrong-{n}"}, good) for n in range(10)],
        (json, good),  # the token worked from this address before: still accepted
        ({**json, "Authorization": "Bearer wrong-again"}, good),  # 429 with Retry-After
    ]


async def _answers(path: Path) -> list[tuple[int, dict[str, str], bytes]]:
    server = LocalServer(path, token=TOKEN, max_body_bytes=16384)
    answers = []
    async with server, server.client() as client:
        instance = (await client.post("/api/v1/agent_instance/register", json={
            "agent_id": "lean", "agent_version": {"external_identifier": "v1"},
            "agent_schema_version": SCHEMA, "idempotency_key": "register-1"}))  # fmt: skip
        assert instance.status_code == 201, instance.text
        iid = instance.json()["details"]["id"]
        account = instance.json()["details"]["account_id"]
        bare = httpx.AsyncClient(transport=server.transport, base_url=server.api_url)
        async with bare:
            for headers, body in _requests(iid):
                content = _chunks(b'{"items": [' + b" " * 20000 + b"]}") if body is None else body
                response = await bare.post("/api/v1/bulk", content=content, headers=headers)
                kept = dict(response.headers)
                assert "content-encoding" not in kept
                # The gzip middleware says its answers vary with Accept-Encoding; the lean
                # route's never do (they are never compressed).
                vary = kept.pop("vary", "").replace("Accept-Encoding", "").strip(", ")
                if vary:
                    kept["vary"] = vary
                text = response.content.replace(iid.encode(), b"<I>")
                text = text.replace(account.encode(), b"<A>")
                answers.append((response.status_code, kept, text))
    return answers


@pytest.fixture(name="served")
def fixture_served(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the requests the lean route answers (the fixed clock makes answers equal)."""
    monkeypatch.setattr(_time, "now", lambda: NOW)
    return count_lean_answers(monkeypatch, BULK)


async def test_lean_route_answers_as_fastapi(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, served: list[str]
) -> None:
    fast = await _answers(tmp_path / "lean.db")
    assert len(served) == len(_requests("x"))
    monkeypatch.delitem(lean.ROUTES, BULK)
    slow = await _answers(tmp_path / "fastapi.db")
    assert len(served) == len(_requests("x"))
    assert fast == slow
    statuses = [status for status, _, _ in fast]
    assert statuses == [200, 200, 200, 200, 401, 401, 401, 415, 400, 400, 400, 422, 422, 200,
                        200, 413, 413, *[401] * 10, 200, 429]  # fmt: skip
    assert fast[0][1]["preference-applied"] == "return=minimal"
    assert fast[-1][1]["retry-after"]
    for _, headers, _ in fast:
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
        assert headers["content-type"] == "application/json"
    refused = orjson.loads(fast[12][2])
    assert refused["errors"] == {
        "items.1.idempotency_key": ["must be a string of 8 to 64 characters"]
    }


async def test_bulk_answers_are_not_compressed(tmp_path: Path) -> None:
    """A bulk answer comes uncompressed even when the client accepts gzip (our SDK's
    httpx always does); the API's other large answers still come compressed."""
    server = LocalServer(tmp_path / "gzip.db", token=TOKEN)
    async with server, server.client() as client:
        instance = await client.post("/api/v1/agent_instance/register", json={
            "agent_id": "lean", "agent_version": {"external_identifier": "v1"},
            "agent_schema_version": SCHEMA, "idempotency_key": "register-1"})  # fmt: skip
        iid = instance.json()["details"]["id"]
        items = [_item(f"c-span-{n:04d}", iid) for n in range(40)]
        gzip = {"Accept-Encoding": "gzip"}
        answer = await client.post("/api/v1/bulk", json={"items": items}, headers=gzip)
        assert answer.status_code == 200, answer.text
        assert len(answer.content) > 1024
        assert "content-encoding" not in answer.headers
        assert list(answer.json()["outputs"]) == [item["idempotency_key"] for item in items]
        listed = await client.get(
            "/api/v1/agent_spans", params={"agent_instance_id": iid}, headers=gzip
        )
        assert listed.headers["content-encoding"] == "gzip"
