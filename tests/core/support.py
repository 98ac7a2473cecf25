"""Test helpers for prefactor_core: transports that record, hold or break requests, and
readers that fetch what the server stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from prefactor_server.testing import LocalServer

# What a fault plan may answer for one request.
PASS = "pass"
FAIL_503 = "503"
FAIL_429 = "429"
FAIL_401 = "401"
CONNECT_ERROR = "connect_error"
TIMEOUT = "timeout"
LOSE_RESPONSE = "lose_response"  # the server stores it, the client never hears back


@dataclass
class Recorded:
    """One request as it reached the transport."""

    method: str
    path: str
    body: Any
    outcome: str = PASS


@dataclass
class TestTransport(httpx.AsyncBaseTransport):
    """Wraps the in-process server transport to record, fail or hold requests.

    Attributes:
        inner: The real transport (the server's ASGI transport).
        plan: Decides the outcome of each request from (request, index); PASS by default.
        strip_capabilities: Remove ``capabilities`` from ping answers, so the SDK
            behaves as against an API without bulk or announced id partitions.
        gate: When set, every request waits for this event before it is handled.
        arrived: Set whenever a request reaches the transport.
        answered: Set whenever the server has handled a forwarded request.
    """

    __test__ = False

    inner: httpx.AsyncBaseTransport
    plan: Callable[[httpx.Request, int], str] = lambda _request, _index: PASS
    strip_capabilities: bool = False
    gate: asyncio.Event | None = None
    requests: list[Recorded] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = len(self.requests)
        content = await request.aread()  # a long bulk body is streamed in pieces
        body = json.loads(content) if content else None
        record = Recorded(request.method, request.url.path, body)
        self.requests.append(record)
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.plan(request, index)
        record.outcome = outcome
        if outcome == FAIL_503:
            return _error(request, 503, "unavailable", {"Retry-After": "0"})
        if outcome == FAIL_429:
            return _error(request, 429, "rate_limited", {"Retry-After": "0"})
        if outcome == FAIL_401:
            return _error(request, 401, "unauthorized", {})
        if outcome == CONNECT_ERROR:
            raise httpx.ConnectError("connection refused (injected)", request=request)
        if outcome == TIMEOUT:
            raise httpx.ReadTimeout("timed out (injected)", request=request)
        response = await self.inner.handle_async_request(request)
        self.answered.set()
        if outcome == LOSE_RESPONSE:
            await response.aread()
            raise httpx.ReadError(
                "connection reset after the server answered (injected)", request=request
            )
        if self.strip_capabilities and request.url.path == "/api/v1/ping":
            await response.aread()
            data = json.loads(response.content)
            data.pop("capabilities", None)
            return httpx.Response(response.status_code, json=data, request=request)
        return response

    def paths(self) -> list[str]:
        """The paths of the requests that reached the server, in order."""
        return [r.path for r in self.requests if r.outcome in (PASS, LOSE_RESPONSE)]

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        """Every write the server received as (action, fields), bulk items unpacked, in order."""
        out: list[tuple[str, dict[str, Any]]] = []
        for r in self.requests:
            if r.outcome not in (PASS, LOSE_RESPONSE) or r.method != "POST":
                continue
            if r.path == "/api/v1/bulk":
                out.extend((item["_type"], item) for item in r.body["items"])
            elif r.path == "/api/v1/agent_spans":
                out.append(("agent_spans/create", r.body["details"]))
            elif r.path.startswith("/api/v1/agent_spans/"):
                out.append(
                    ("agent_spans/finish", {**r.body, "agent_span_id": r.path.split("/")[4]})
                )
            elif r.path == "/api/v1/agent_instance/register":
                out.append(("agent_instances/register", r.body))
            else:
                parts = r.path.split("/")
                out.append(
                    (f"agent_instances/{parts[5]}", {**r.body, "agent_instance_id": parts[4]})
                )
        return out


def _error(
    request: httpx.Request, status: int, code: str, headers: dict[str, str]
) -> httpx.Response:
    body = {"status": "error", "code": code, "message": f"injected {status}"}
    return httpx.Response(status, json=body, headers=headers, request=request)


async def read_all(server: LocalServer, path: str, **params: str) -> list[dict[str, Any]]:
    """Read every row of a list endpoint of the server, page by page."""
    rows: list[dict[str, Any]] = []
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as http:
        offset: int | None = 0
        while offset is not None:
            query = {**params, "pagination[offset]": str(offset), "pagination[page_size]": "100"}
            response = await http.get(path, params=query, headers=headers)
            assert response.status_code == 200, response.text
            data = response.json()
            rows.extend(data["summaries"])
            offset = data["pagination"]["next_page_offset"]
    return rows


async def read_one(server: LocalServer, path: str) -> dict[str, Any]:
    """Read one resource of the server."""
    headers = {"Authorization": f"Bearer {server.token}"}
    async with httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as http:
        response = await http.get(path, headers=headers)
        assert response.status_code == 200, response.text
        details: dict[str, Any] = response.json()["details"]
        return details


async def spans_of(server: LocalServer, instance_id: str) -> list[dict[str, Any]]:
    """Every span the server stored for an instance."""
    return await read_all(server, "/api/v1/agent_spans", agent_instance_id=instance_id)
