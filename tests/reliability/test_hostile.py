"""Hostile input by hand: each request gets a clear 4xx and leaves the stored data as it was.

The "before" and "after" of every request is a dump of every table of the server's SQLite
file, so a rejected request that wrote anything (a row, an idempotency entry, a changed
status) is caught.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefactor_core import SchemaRegistry
from prefactor_server.testing import LocalServer

TOKEN_A = "hostile-token-a-0123456789"


@dataclass
class World:
    server: LocalServer
    http: httpx.AsyncClient
    db_path: Path
    token_b: str
    instance_id: str
    span_id: str
    span_key: str
    register_key: str

    def headers(self, token: str = TOKEN_A) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


# Wrong tokens are counted on purpose (the brake on guessing): not a change of the data.
_COUNTERS = ("auth_failures",)


def snapshot(db_path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the failed-token counter, sorted."""
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        tables = [
            row[0]
            for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not row[0].startswith("sqlite_") and row[0] not in _COUNTERS
        ]
        return {t: sorted(db.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}


@pytest.fixture(name="world")
async def fixture_world(tmp_path: Path) -> AsyncIterator[World]:
    db_path = tmp_path / "hostile.db"
    server = LocalServer(db_path, token=TOKEN_A)
    token_b = server.create_account("other")
    registry = SchemaRegistry()
    registry.register_type(name="agent:step", params_schema={"type": "object"}, title="Step")
    async with httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as http:
        headers = {"Authorization": f"Bearer {TOKEN_A}"}
        register = await http.post(
            "/api/v1/agent_instance/register",
            headers=headers,
            json={
                "agent_id": "hostile-agent",
                "agent_version": {"name": "Hostile"},
                "agent_schema_version": registry.to_agent_schema_version("hostile-schema"),
                "idempotency_key": "register-key-0001",
            },
        )
        assert register.status_code == 201, register.text
        instance_id = register.json()["details"]["id"]
        span = await http.post(
            "/api/v1/agent_spans",
            headers=headers,
            json={
                "details": {
                    "agent_instance_id": instance_id,
                    "schema_name": "agent:step",
                    "status": "active",
                    "payload": {"q": "hello"},
                    "idempotency_key": "span-key-00000001",
                }
            },
        )
        assert span.status_code == 201, span.text
        yield World(
            server,
            http,
            db_path,
            token_b,
            instance_id,
            span.json()["details"]["id"],
            "span-key-00000001",
            "register-key-0001",
        )
    await server.aclose()


async def _rejected(
    world: World,
    method: str,
    path: str,
    *,
    status: int | tuple[int, ...],
    field: str | None = None,
    token: str = TOKEN_A,
    **kwargs: Any,
) -> dict[str, Any]:
    """Send one hostile request; check the 4xx envelope and that nothing changed."""
    before = snapshot(world.db_path)
    response = await world.http.request(method, path, headers=world.headers(token), **kwargs)
    after = snapshot(world.db_path)
    expected = status if isinstance(status, tuple) else (status,)
    assert response.status_code in expected, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["status"] == "error", body
    assert isinstance(body["code"], str)
    assert body["code"]
    assert isinstance(body["message"], str)
    assert body["message"]
    assert len(response.content) < 10_000, "the error echoes the hostile input back"
    if field is not None:
        named = field in body.get("errors", {}) or field in body["message"]
        assert named, f"the answer does not name {field!r}: {body}"
    changed = {t for t in before if before[t] != after.get(t)}
    assert not changed, f"a rejected request changed {changed}"
    return body


def _span(world: World, **fields: Any) -> dict[str, Any]:
    details = {"agent_instance_id": world.instance_id, "schema_name": "agent:step", **fields}
    return {"details": details}


# -- malformed bodies -----------------------------------------------------------------


async def test_deeply_nested_json(world: World) -> None:
    depth = 100_000
    body = (
        f'{{"details":{{"agent_instance_id":"{world.instance_id}","schema_name":"agent:step","payload":{{"x":'
        + "[" * depth
        + "]" * depth
        + "}}}"
    )
    await _rejected(world, "POST", "/api/v1/agent_spans", status=400, content=body.encode())
    bulk = '{"items":' + "[" * depth + "]" * depth + "}"
    await _rejected(world, "POST", "/api/v1/bulk", status=400, content=bulk.encode())


async def test_body_over_10_mb(world: World) -> None:
    payload = {"blob": "x" * (10 * 1024 * 1024)}
    await _rejected(
        world, "POST", "/api/v1/agent_spans", status=413, json=_span(world, payload=payload)
    )
    items = [
        {
            "_type": "agent_spans/create",
            "idempotency_key": "bulk-key-000001",
            **_span(world, payload=payload)["details"],
        }
    ]
    await _rejected(world, "POST", "/api/v1/bulk", status=413, json={"items": items})


async def test_invalid_utf8(world: World) -> None:
    raw = b'{"details":{"agent_instance_id":"\xff\xfe","schema_name":"agent:\xc3\x28"}}'
    await _rejected(world, "POST", "/api/v1/agent_spans", status=400, content=raw)
    await _rejected(
        world, "POST", f"/api/v1/agent_spans/{world.span_id}/finish", status=400, content=raw
    )
    await _rejected(world, "GET", "/api/v1/agent_spans/%FF%FE", status=404)


async def test_not_an_object(world: World) -> None:
    for raw in (b"[]", b'"details"', b"null", b"1e999999", b"{", b"\x00"):
        await _rejected(world, "POST", "/api/v1/agent_spans", status=400, content=raw)


# -- huge strings ---------------------------------------------------------------------


async def test_huge_strings_name_the_field(world: World) -> None:
    huge = "a" * 1_000_000
    await _rejected(
        world, "POST", "/api/v1/agent_spans", status=422, field="id", json=_span(world, id=huge)
    )
    await _rejected(
        world,
        "POST",
        "/api/v1/agent_spans",
        status=422,
        field="idempotency_key",
        json=_span(world, idempotency_key=huge),
    )
    await _rejected(
        world,
        "POST",
        "/api/v1/agent_spans",
        status=422,
        field="schema_name",
        json={"details": {"agent_instance_id": world.instance_id, "schema_name": huge}},
    )
    await _rejected(
        world,
        "POST",
        "/api/v1/agent_spans",
        status=404,
        json={"details": {"agent_instance_id": huge, "schema_name": "agent:step"}},
    )
    await _rejected(
        world,
        "POST",
        f"/api/v1/agent_spans/{world.span_id}/finish",
        status=422,
        field="status",
        json={"status": huge},
    )


# -- ids with path characters ---------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id", ["../etc/passwd", "a/b", "a%2Fb", "a\\b", "a\x00b", "..", "a b", "é", ""]
)
async def test_ids_with_path_characters(world: World, bad_id: str) -> None:
    await _rejected(
        world, "POST", "/api/v1/agent_spans", status=422, field="id", json=_span(world, id=bad_id)
    )


async def test_path_traversal_in_urls(world: World) -> None:
    for path in (
        "/api/v1/agent_spans/..%2F..%2Fping",
        "/api/v1/agent_instance/..%2Fregister/start",
        "/api/v1/agent_spans/%2e%2e/finish",
    ):
        await _rejected(world, "POST", path, status=(404, 405), content=b"{}")
    await _rejected(world, "GET", "/api/v1/agent_instance/..%2F..%2Fetc%2Fpasswd", status=404)


# -- accounts -------------------------------------------------------------------------


async def test_token_of_another_account(world: World) -> None:
    other = world.token_b
    await _rejected(
        world, "GET", f"/api/v1/agent_instance/{world.instance_id}", status=404, token=other
    )
    await _rejected(world, "GET", f"/api/v1/agent_spans/{world.span_id}", status=404, token=other)
    await _rejected(
        world,
        "POST",
        f"/api/v1/agent_spans/{world.span_id}/finish",
        status=404,
        token=other,
        json={"status": "complete"},
    )
    await _rejected(
        world,
        "POST",
        f"/api/v1/agent_instance/{world.instance_id}/finish",
        status=404,
        token=other,
        json={},
    )
    await _rejected(
        world,
        "POST",
        "/api/v1/agent_spans",
        status=404,
        token=other,
        json=_span(world, status="active"),
    )
    listing = await world.http.get(
        "/api/v1/agent_spans",
        params={"agent_instance_id": world.instance_id},
        headers=world.headers(other),
    )
    assert listing.status_code == 200
    assert listing.json()["summaries"] == []


async def test_idempotency_key_reused_by_another_account(world: World) -> None:
    """Account B sending A's key is a new request of B's, never a replay of A's answer."""
    body = await _rejected(
        world,
        "POST",
        "/api/v1/agent_spans",
        status=404,
        token=world.token_b,
        json=_span(world, idempotency_key=world.span_key),
    )
    assert world.span_id not in str(body)
    bulk = {
        "items": [
            {
                "_type": "agent_spans/create",
                "idempotency_key": world.span_key,
                **_span(world)["details"],
            }
        ]
    }
    before = snapshot(world.db_path)
    response = await world.http.post(
        "/api/v1/bulk", json=bulk, headers=world.headers(world.token_b)
    )
    assert response.status_code == 200
    output = response.json()["outputs"][world.span_key]
    assert output["status"] == "error", output
    assert output["code"] == "not_found", output
    assert snapshot(world.db_path) == before


async def test_bad_token(world: World) -> None:
    for token in ("nope-not-a-token", "' OR '1'='1", "x" * 10_000):
        await _rejected(world, "GET", "/api/v1/ping", status=401, token=token)
        await _rejected(
            world, "POST", "/api/v1/agent_spans", status=401, token=token, json=_span(world)
        )


# -- SQL-looking strings ----------------------------------------------------------------


async def test_sql_looking_strings(world: World) -> None:
    await _rejected(
        world,
        "POST",
        "/api/v1/agent_spans",
        status=422,
        field="id",
        json=_span(world, id="1' OR '1'='1"),
    )
    await _rejected(
        world,
        "POST",
        "/api/v1/agent_spans",
        status=422,
        field="schema_name",
        json={
            "details": {
                "agent_instance_id": world.instance_id,
                "schema_name": "agent:step'; DROP TABLE agent_spans; --",
            }
        },
    )
    await _rejected(
        world,
        "POST",
        "/api/v1/agent_spans",
        status=404,
        json={"details": {"agent_instance_id": "x' OR 1=1 --", "schema_name": "agent:step"}},
    )
    await _rejected(
        world,
        "GET",
        "/api/v1/agent_spans",
        status=422,
        field="sorting",
        params={"sorting": "id; DROP TABLE agent_spans"},
    )
    await _rejected(
        world,
        "GET",
        "/api/v1/agent_spans",
        status=422,
        field="pagination[offset]",
        params={"pagination[offset]": "0 OR 1=1"},
    )
    # A filter value is data, not SQL: it matches nothing.
    before = snapshot(world.db_path)
    for value in ("' OR 1=1 --", '" OR ""="', "%", "_"):
        listing = await world.http.get(
            "/api/v1/agent_spans",
            params={"agent_instance_id": value},
            headers=world.headers(),
        )
        assert listing.status_code == 200
        assert listing.json()["summaries"] == [], value
    assert snapshot(world.db_path) == before


async def test_rejected_requests_can_be_told_apart(world: World) -> None:
    """The snapshot does see changes: a valid request changes the data."""
    before = snapshot(world.db_path)
    response = await world.http.post(
        f"/api/v1/agent_spans/{world.span_id}/finish",
        json={"status": "complete"},
        headers=world.headers(),
    )
    assert response.status_code == 200
    assert snapshot(world.db_path) != before


async def test_unknown_bulk_action_is_not_echoed_in_full(tmp_path: Path) -> None:
    """A megabyte-long bulk `_type` gets a short error, not the whole string back."""
    server = LocalServer(tmp_path / "db.sqlite", token="hostile-token-1")
    async with (
        server,
        httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as http,
    ):
        response = await http.post(
            "/api/v1/bulk",
            json={"items": [{"_type": "x" * 1_000_000, "idempotency_key": "k" * 16}]},
            headers={"Authorization": "Bearer hostile-token-1"},
        )
    assert response.status_code in (200, 422)
    assert len(response.content) < 10_000
    assert "unknown bulk action" in response.text
