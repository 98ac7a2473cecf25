"""``prefactor traces list`` orders runs by when they were recorded, whatever their ids."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from prefactor_server.cli import main
from prefactor_server.testing import LocalServer

TOKEN = "cli-order-token-123"


@pytest.fixture(name="api_url", scope="module")
def fixture_api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server holding two runs: "zzzz-older" recorded first, "0000-newer" after it.

    Their ids sort the other way round from their age, as an OTLP run's ``otel-<hex>`` id
    does against the SDK's time-ordered ids.
    """
    runner = asyncio.Runner()
    context = LocalServer.run(tmp_path_factory.mktemp("order") / "order.db", token=TOKEN)
    server = runner.run(context.__aenter__())

    async def register_both() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=server.api_url, headers=headers) as client:
            for run_id in ("zzzz-older", "0000-newer"):
                response = await client.post(
                    "/api/v1/agent_instance/register",
                    json={
                        "agent_id": "order-agent",
                        "agent_version": {"name": "Order", "external_identifier": "v1"},
                        "id": run_id,
                        "idempotency_key": f"register-{run_id}",
                    },
                )
                assert response.status_code == 201, response.text

    try:
        runner.run(register_both())
        yield server.api_url
    finally:
        runner.run(context.__aexit__(None, None, None))
        runner.close()


def test_list_is_newest_first_not_by_id(api_url: str) -> None:
    """The run recorded last comes first, although its id sorts last."""
    cli = CliRunner(env={"COLUMNS": "200", "PREFACTOR_API_TOKEN": None})
    result = cli.invoke(main, ["traces", "list", "--api-url", api_url, "--token", TOKEN])
    assert result.exit_code == 0, result.output
    newer = result.stdout.index("0000-newer")
    older = result.stdout.index("zzzz-older")
    assert newer < older, result.stdout
