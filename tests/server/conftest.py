"""Fixtures for the server tests: a LocalServer on each backend (a SQLite file in tmp_path,
the session's PostgreSQL database), an HTTP client, and a bare storage with an account
(the storage contract suite, ``test_storage_contract*.py``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from prefactor_server.domain.accounts import create_account
from prefactor_server.settings import Settings
from prefactor_server.storage import Account, Storage, open_storage
from prefactor_server.testing import LocalServer

SCHEMA: dict[str, Any] = {
    "external_identifier": "schema-v1",
    "span_type_schemas": [
        {
            "name": "agent:llm",
            "params_schema": {
                "type": "object",
                "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}},
                "required": ["model", "prompt"],
            },
            "result_schema": {"type": "object", "properties": {"response": {"type": "string"}}},
            "title": "LLM Call",
            "template": "{{model}}: {{prompt}} → {{response}}",
        },
        {"name": "agent:retrieval", "params_schema": {"type": "object"}},
    ],
    "quality_schemas": [
        {
            "name": "accuracy",
            "schema": {"type": "object", "properties": {"score": {"type": "number"}}},
            "template": "Score {{score}}",
        }
    ],
}


class Api:
    """A thin helper over the in-process client for the common calls of the tests."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def register(self, **fields: Any) -> dict[str, Any]:
        """Register an instance with the test schema and return its details."""
        body = {
            "agent_id": "my-agent",
            "agent_version": {"name": "My Agent", "external_identifier": "v1"},
            "agent_schema_version": SCHEMA,
            "idempotency_key": str(uuid.uuid4()),
            **fields,
        }
        response = await self.client.post("/api/v1/agent_instance/register", json=body)
        assert response.status_code == 201, response.text
        details: dict[str, Any] = response.json()["details"]
        return details

    async def span(self, instance_id: str, **fields: Any) -> httpx.Response:
        """Create a span (defaults: active agent:retrieval) and return the response."""
        details = {
            "agent_instance_id": instance_id,
            "schema_name": "agent:retrieval",
            "status": "active",
            "payload": {},
            "idempotency_key": str(uuid.uuid4()),
            **fields,
        }
        return await self.client.post("/api/v1/agent_spans", json={"details": details})

    async def finish_span(self, span_id: str, **fields: Any) -> httpx.Response:
        """Finish a span and return the response."""
        body = {"idempotency_key": str(uuid.uuid4()), **fields}
        return await self.client.post(f"/api/v1/agent_spans/{span_id}/finish", json=body)


@pytest.fixture(name="server")
async def fixture_server(database: str | Path) -> AsyncIterator[LocalServer]:
    """A server on a fresh database of each backend, closed after the test."""
    server = LocalServer(database, token="test-token-123")
    try:
        yield server
    finally:
        await server.aclose()


@pytest.fixture(name="client")
async def fixture_client(server: LocalServer) -> AsyncIterator[httpx.AsyncClient]:
    """An authenticated in-process client."""
    async with server.client() as client:
        yield client


@pytest.fixture(name="api")
def fixture_api(client: httpx.AsyncClient) -> Api:
    """The helper over the authenticated client."""
    return Api(client)


@pytest.fixture(name="storage")
def fixture_storage(database: str | Path) -> Iterator[Storage]:
    """A fresh storage of each backend (the storage contract suite's subject)."""
    storage = open_storage(Settings.from_env({}, db_path=database))
    try:
        yield storage
    finally:
        storage.close()


@pytest.fixture(name="account")
def fixture_account(storage: Storage) -> Account:
    """An account made through the write path of ``storage``."""
    return storage.write_sync(lambda s: create_account(s, "acc"))
