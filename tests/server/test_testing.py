"""prefactor_server.testing: LocalServer in-process and on a real port."""

from __future__ import annotations

from pathlib import Path

import httpx

from prefactor_server.testing import LocalServer


async def test_run_serves_on_a_real_port(tmp_path: Path) -> None:
    """LocalServer.run answers ping over TCP on 127.0.0.1 with the given token."""
    async with LocalServer.run(tmp_path / "db.sqlite", token="smoke-token-1") as server:
        assert server.api_url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=server.api_url) as client:
            response = await client.get(
                "/api/v1/ping", headers={"Authorization": "Bearer smoke-token-1"}
            )
    assert response.status_code == 200
    assert response.json()["status"] == "success"


async def test_data_survives_reopening(database: str | Path) -> None:
    """A second LocalServer on the same database sees the first one's account and token."""
    async with LocalServer(database, token="same-token-1") as first:
        account_id = first.app.state.bootstrap.account.id
    async with LocalServer(database, token="same-token-1") as second:
        assert second.app.state.bootstrap.account.id == account_id
        assert second.app.state.bootstrap.new_token is None
