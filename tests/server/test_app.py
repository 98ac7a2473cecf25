"""App-wide behaviour: auth, cross-account isolation, error envelopes, ping, OpenAPI."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

import prefactor_server
from prefactor_server.testing import LocalServer

if TYPE_CHECKING:
    from conftest import Api

ENDPOINTS = [
    ("GET", "/api/v1/ping"),
    ("GET", "/api/v1/account"),
    ("POST", "/api/v1/agent_instance/register"),
    ("GET", "/api/v1/agent_instance"),
    ("GET", "/api/v1/agent_spans"),
    ("POST", "/api/v1/agent_spans"),
    ("POST", "/api/v1/bulk"),
    ("GET", "/api/v1/agent"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc"])
async def test_auth_required(
    server: LocalServer, method: str, path: str, header: str | None
) -> None:
    """A missing, unknown or non-bearer token is 401 unauthorized in the JSON envelope."""
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(transport=server.transport, base_url=server.api_url) as client:
        response = await client.request(method, path, headers=headers, json={})
    assert response.status_code == 401
    assert response.json()["status"] == "error"
    assert response.json()["code"] == "unauthorized"


async def test_other_account_sees_404(server: LocalServer, api: Api) -> None:
    """Another account's instances, spans and agents are 404 and absent from lists."""
    instance = await api.register()
    span = (await api.span(instance["id"])).json()["details"]
    token = server.create_account("other")
    async with httpx.AsyncClient(
        transport=server.transport,
        base_url=server.api_url,
        headers={"Authorization": f"Bearer {token}"},
    ) as other:
        assert (await other.get(f"/api/v1/agent_instance/{instance['id']}")).status_code == 404
        assert (await other.get(f"/api/v1/agent_spans/{span['id']}")).status_code == 404
        assert (await other.get("/api/v1/agent/my-agent")).status_code == 404
        finish = await other.post(f"/api/v1/agent_spans/{span['id']}/finish", json={})
        assert finish.status_code == 404
        listing = (await other.get("/api/v1/agent_spans")).json()
        assert listing["summaries"] == []
        ping = (await other.get("/api/v1/ping")).json()
        assert ping["details"]["name"] == "other"


async def test_ping_capabilities(server: LocalServer, client: httpx.AsyncClient) -> None:
    """Ping lists every bulk action, the caps, the PFID partition and client ids."""
    body = (await client.get("/api/v1/ping")).json()
    capabilities = body["capabilities"]
    assert set(capabilities) == {
        "bulk_actions",
        "bulk_max_items",
        "bulk_max_bytes",
        "pfid_partition",
        "client_ids",
    }
    assert capabilities["bulk_actions"] == [
        "agent_instances/register", "agent_instances/start", "agent_instances/finish",
        "agent_instances/record_quality", "agent_spans/create", "agent_spans/finish",
    ]  # fmt: skip
    assert capabilities["bulk_max_items"] == 1000
    assert capabilities["bulk_max_bytes"] == 10 * 1024 * 1024
    assert 0 <= capabilities["pfid_partition"] < 2**30
    assert capabilities["client_ids"] is True
    assert body["details"]["type"] == "account"


async def test_error_envelopes(client: httpx.AsyncClient) -> None:
    """Unknown routes, wrong methods, bad JSON and non-object bodies answer in the envelope."""
    unknown = await client.get("/api/v1/nope")
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "not_found"
    method = await client.delete("/api/v1/ping")
    assert method.status_code == 405
    assert method.json()["code"] == "method_not_allowed"
    broken = await client.post("/api/v1/agent_instance/register", content=b"{not json")
    assert broken.status_code == 400
    assert broken.json()["code"] == "invalid_json"
    array = await client.post("/api/v1/agent_instance/register", json=[1])
    assert array.status_code == 400
    bad_bool = await client.get(
        "/api/v1/agent/show", params={"agent_id": "a", "include_counts": "maybe"}
    )
    assert bad_bool.status_code == 422
    assert bad_bool.json()["code"] == "validation_error"
    assert "include_counts" in bad_bool.json()["errors"]


async def test_unhandled_error_is_500_envelope(
    server: LocalServer, client: httpx.AsyncClient
) -> None:
    """An exception escaping a route answers 500 with the JSON envelope, never HTML."""

    @server.app.get("/api/v1/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    response = await client.get("/api/v1/boom")
    assert response.status_code == 500
    assert response.json() == {
        "status": "error",
        "code": "internal_error",
        "message": "Internal server error",
    }


async def test_idempotency_key_header(api: Api, client: httpx.AsyncClient) -> None:
    """The Idempotency-Key header works like the body field."""
    instance = await api.register()
    url = f"/api/v1/agent_instance/{instance['id']}/finish"
    first = await client.post(url, json={}, headers={"Idempotency-Key": "header-key"})
    replay = await client.post(
        url, json={"status": "failed"}, headers={"Idempotency-Key": "header-key"}
    )
    assert replay.status_code == 200
    assert replay.json() == first.json()
    too_long = await client.post(url, json={"idempotency_key": "x" * 65})
    assert too_long.status_code == 422


async def test_openapi_document(client: httpx.AsyncClient) -> None:
    """/openapi.json documents every API path, and / stays free for the viewer."""
    document = (await client.get("/openapi.json")).json()
    paths = set(document["paths"])
    for path in (
        "/api/v1/ping", "/api/v1/account", "/api/v1/bulk", "/api/v1/agent_instance/register",
        "/api/v1/agent_instance/{instance_id}/terminate", "/api/v1/agent_spans",
        "/api/v1/agent_spans/{span_id}", "/api/v1/agent/show", "/api/v1/agent/{agent_id}",
    ):  # fmt: skip
        assert path in paths
    assert "/" not in paths


def test_public_names() -> None:
    """The package's __all__ is the sorted public surface."""
    assert prefactor_server.__all__ == ["Settings", "__version__", "create_app"]
    assert sorted(prefactor_server.__all__) == prefactor_server.__all__
