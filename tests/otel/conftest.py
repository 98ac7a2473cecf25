"""Fixtures of the OpenTelemetry tests: a real ``prefactor serve`` on 127.0.0.1 and readers,
and the real server reached in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.reliability.support import TOKEN, ServerProcess

from prefactor_server.testing import LocalServer

LOCAL_TOKEN = "otel-local-token"
"""The token of the in-process ``server`` fixture."""


class Served:
    """A running server and a reader of what it stored."""

    def __init__(self, process: ServerProcess) -> None:
        self.process = process
        self.url = process.url
        self.token = TOKEN
        self.headers = {"Authorization": f"Bearer {TOKEN}"}

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """GET an API path and return the JSON body (asserting success)."""
        response = httpx.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=10)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def instance(self, instance_id: str) -> dict[str, Any]:
        """The agent instance resource."""
        details: dict[str, Any] = self.get(f"/api/v1/agent_instance/{instance_id}")["details"]
        return details

    def spans(self, **filters: Any) -> list[dict[str, Any]]:
        """Every span matching the filters (all pages)."""
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            body = self.get(
                "/api/v1/agent_spans",
                **filters,
                **{"pagination[offset]": offset, "pagination[page_size]": 100},
            )
            out.extend(body["summaries"])
            offset = body["pagination"]["next_page_offset"]
            if offset is None:
                return out


@pytest.fixture(name="served", scope="module")
def fixture_served(
    tmp_path_factory: pytest.TempPathFactory, module_database: str | Path
) -> Iterator[Served]:
    """A real ``prefactor serve`` process for the module (each backend), stopped at the end."""
    directory: Path = tmp_path_factory.mktemp("otel-server")
    process = ServerProcess(module_database, directory / "server.log")
    process.start()
    try:
        yield Served(process)
    finally:
        process.stop()


@pytest.fixture(name="server")
async def fixture_server(tmp_path: Path) -> AsyncIterator[LocalServer]:
    """The real server on a SQLite file, reached in-process (token ``LOCAL_TOKEN``)."""
    server = LocalServer(tmp_path / "prefactor.db", token=LOCAL_TOKEN)
    yield server
    await server.aclose()
