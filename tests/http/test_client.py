"""Tests for ``PrefactorHttpClient``: lifecycle, headers, the generic ``request()``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from prefactor_http import (
    ClientState,
    HttpClientConfig,
    PrefactorClientError,
    PrefactorHttpClient,
    __version__,
)
from prefactor_http.client import DEFAULT_SDK_HEADER

MakeClient = Callable[..., PrefactorHttpClient]


async def test_request_before_open_raises_client_error(make_client: MakeClient, api) -> None:
    """A request on an unopened client raises PrefactorClientError and sends nothing."""
    client = make_client()
    with pytest.raises(PrefactorClientError, match="not open") as info:
        await client.validate_token()
    assert (info.value.method, info.value.path) == ("GET", "/api/v1/ping")
    assert api.requests == []


async def test_request_after_close_raises_client_error(make_client: MakeClient, api) -> None:
    """A request after ``close()`` raises PrefactorClientError mentioning the closed state."""
    async with make_client() as client:
        pass
    assert client.state is ClientState.CLOSED
    with pytest.raises(PrefactorClientError, match="closed"):
        await client.agent_instances.get("ins_0001")
    assert api.requests == []


async def test_lifecycle_states(make_client: MakeClient) -> None:
    """The state goes UNOPENED → OPENED → CLOSED, and ``open()`` returns the client."""
    client = make_client()
    assert client.state is ClientState.UNOPENED
    assert await client.open() is client
    assert client.state is ClientState.OPENED
    assert "OPENED" in repr(client)
    await client.aclose()
    assert client.state is ClientState.CLOSED


async def test_open_twice_raises(make_client: MakeClient) -> None:
    """Opening an open client raises PrefactorClientError."""
    async with make_client() as client:
        with pytest.raises(PrefactorClientError, match="already open"):
            await client.open()


async def test_reopen_after_close_raises(make_client: MakeClient) -> None:
    """A closed client cannot be reopened, with or without ``async with``."""
    client = make_client()
    await client.open()
    await client.close()
    with pytest.raises(PrefactorClientError, match="cannot be reopened"):
        await client.open()
    with pytest.raises(PrefactorClientError, match="cannot be reopened"):
        async with client:
            pass


async def test_close_is_idempotent_and_allowed_before_open(make_client: MakeClient) -> None:
    """``close()`` may be called repeatedly and on a never-opened client."""
    client = make_client()
    await client.close()
    await client.close()
    assert client.state is ClientState.CLOSED


async def test_context_manager_closes_on_error(make_client: MakeClient) -> None:
    """Leaving ``async with`` through an exception still closes the client."""
    client = make_client()
    with pytest.raises(RuntimeError):
        async with client:
            raise RuntimeError("boom")
    assert client.state is ClientState.CLOSED


async def test_connection_pool_is_shared_between_requests(client: PrefactorHttpClient, api) -> None:
    """Every request goes through the same httpx client (one pool)."""
    pool = client._http
    api.reply()
    api.reply()
    await client.validate_token()
    await client.validate_token()
    assert client._http is pool
    assert isinstance(pool, httpx.AsyncClient)


async def test_every_request_carries_the_spec_headers(client: PrefactorHttpClient, api) -> None:
    """Authorization, Content-Type, Accept and X-Prefactor-SDK are on every request (1.2)."""
    api.reply()
    await client.validate_token()
    headers = api.last.headers
    assert headers["authorization"] == "Bearer pf_test_token"
    assert headers["content-type"] == "application/json"
    assert headers["accept"] == "application/json"
    assert headers["x-prefactor-sdk"] == f"prefactor-http@{__version__}"
    assert "idempotency-key" not in headers


def test_default_sdk_header_names_this_distribution() -> None:
    """The default header is ``prefactor-http@<version>``."""
    assert f"prefactor-http@{__version__}" == DEFAULT_SDK_HEADER


async def test_given_sdk_header_is_sent_as_is(make_client: MakeClient, api) -> None:
    """An explicit ``sdk_header`` replaces the default verbatim (the core chaining rule)."""
    api.reply()
    async with make_client("prefactor-langchain@0.3.0 prefactor-core@0.6.0") as client:
        await client.validate_token()
    assert api.last.headers["x-prefactor-sdk"] == "prefactor-langchain@0.3.0 prefactor-core@0.6.0"


async def test_setting_sdk_header_on_open_client_changes_later_requests(
    client: PrefactorHttpClient, api
) -> None:
    """Assigning ``sdk_header`` on an open client rewrites the header of later requests."""
    api.reply()
    api.reply()
    api.reply()
    await client.validate_token()
    client.sdk_header = "prefactor-livekit@0.1.5 prefactor-core@0.6.0"
    await client.validate_token()
    client.sdk_header = None
    await client.validate_token()
    sent = [request.headers["x-prefactor-sdk"] for request in api.requests]
    assert sent == [
        DEFAULT_SDK_HEADER,
        "prefactor-livekit@0.1.5 prefactor-core@0.6.0",
        DEFAULT_SDK_HEADER,
    ]
    assert client.sdk_header == DEFAULT_SDK_HEADER


def test_blank_sdk_header_falls_back_to_default(make_client: MakeClient) -> None:
    """A blank header string means the default."""
    assert make_client("   ").sdk_header == DEFAULT_SDK_HEADER


async def test_validate_token_returns_the_raw_ping_object(client: PrefactorHttpClient, api) -> None:
    """``validate_token()`` sends ``GET /api/v1/ping`` with no body and returns the JSON."""
    ping = {
        "status": "success",
        "details": {"type": "account", "id": "acc_1", "name": "local"},
        "capabilities": {"bulk_max_items": 1000, "pfid_partition": 123456789},
    }
    api.reply(200, ping)
    assert await client.validate_token() == ping
    assert api.last.method == "GET"
    assert str(api.last.url) == "http://prefactor.test/api/v1/ping"
    assert api.last.content == b""


async def test_trailing_slash_of_api_url_is_ignored(api, sleeps) -> None:
    """``{api_url}{path}`` is built without a double slash."""
    config = HttpClientConfig(api_url="http://prefactor.test/base/", api_token="t")
    api.reply()
    async with PrefactorHttpClient(config, transport=httpx.MockTransport(api.handler)) as client:
        await client.request("GET", "/api/v1/ping")
    assert str(api.last.url) == "http://prefactor.test/base/api/v1/ping"


async def test_request_sends_json_body_and_params(client: PrefactorHttpClient, api) -> None:
    """``request()`` sends ``json_data`` as the JSON body and ``params`` as the query."""
    api.reply(200, {"ok": True})
    result = await client.request(
        "POST", "/api/v1/thing", params={"a": "1", "n": 2}, json_data={"x": [1, None]}
    )
    assert result == {"ok": True}
    assert api.last.url.params == httpx.QueryParams({"a": "1", "n": "2"})
    assert api.body() == {"x": [1, None]}


async def test_idempotency_key_header_only_from_request(client: PrefactorHttpClient, api) -> None:
    """``request(idempotency_key=...)`` adds the Idempotency-Key header."""
    api.reply()
    await client.request("POST", "/api/v1/x", json_data={}, idempotency_key="key-123")
    assert api.last.headers["idempotency-key"] == "key-123"


@pytest.mark.parametrize(("key", "message"), [("", "must not be empty"), ("k" * 65, "at most 64")])
async def test_request_rejects_bad_idempotency_key(
    client: PrefactorHttpClient, api, key: str, message: str
) -> None:
    """An empty or over-long header key raises ValueError before sending."""
    with pytest.raises(ValueError, match=message):
        await client.request("POST", "/api/v1/x", idempotency_key=key)
    assert api.requests == []


async def test_request_rejects_relative_path(client: PrefactorHttpClient, api) -> None:
    """A path without a leading slash raises ValueError."""
    with pytest.raises(ValueError, match="path must start with '/'"):
        await client.request("GET", "api/v1/ping")
    assert api.requests == []


async def test_resource_groups_are_attributes(client: PrefactorHttpClient) -> None:
    """The four resource groups are reachable as attributes."""
    from prefactor_http.endpoints import (
        AgentClient,
        AgentInstanceClient,
        AgentSpanClient,
        BulkClient,
    )

    assert isinstance(client.agent_instances, AgentInstanceClient)
    assert isinstance(client.agent_spans, AgentSpanClient)
    assert isinstance(client.agents, AgentClient)
    assert isinstance(client.bulk, BulkClient)


async def test_works_over_asgi_transport() -> None:
    """The client talks to an in-process ASGI app through ``httpx.ASGITransport``."""

    async def app(scope, receive, send) -> None:  # a minimal ASGI app answering ping
        assert scope["path"] == "/api/v1/ping"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"status":"success"}'})

    config = HttpClientConfig(api_url="http://local", api_token="t")
    async with PrefactorHttpClient(config, transport=httpx.ASGITransport(app=app)) as client:
        assert await client.validate_token() == {"status": "success"}


async def test_request_sends_raw_content_and_extra_headers(
    client: PrefactorHttpClient, api
) -> None:
    """``content`` is sent byte for byte; extra headers are added but never replace ours."""
    api.reply(200, {"status": "success"})
    await client.request(
        "POST",
        "/api/v1/bulk",
        content=b'{"items":[]}',
        headers={"Prefer": "return=minimal", "Authorization": "Bearer stolen"},
    )
    assert api.last.content == b'{"items":[]}'
    assert api.last.headers["prefer"] == "return=minimal"
    assert api.last.headers["authorization"] != "Bearer stolen"


async def test_request_refuses_both_json_and_content(client: PrefactorHttpClient, api) -> None:
    """Passing a JSON body and raw content at once is a ValueError, and nothing is sent."""
    with pytest.raises(ValueError, match="not both"):
        await client.request("POST", "/api/v1/bulk", json_data={}, content=b"{}")
    assert api.requests == []


async def _pieces(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_request_streams_content_given_in_pieces(client: PrefactorHttpClient, api) -> None:
    """An async iterable body goes out as one body of its declared length, not chunked."""
    api.reply(200, {"status": "success"})
    answer = await client.request(
        "POST",
        "/api/v1/bulk",
        content=_pieces(b'{"items":', b"[]}"),
        retry=False,
        headers={"Content-Length": "12"},
    )
    assert answer == {"status": "success"}
    assert api.last.content == b'{"items":[]}'
    assert api.last.headers["content-length"] == "12"
    assert "transfer-encoding" not in api.last.headers


async def test_request_refuses_a_streamed_body_it_would_retry(
    client: PrefactorHttpClient, api
) -> None:
    """A streamed body can be sent once: asking for retries is a ValueError, nothing sent."""
    with pytest.raises(ValueError, match="retry=False"):
        await client.request("POST", "/api/v1/bulk", content=_pieces(b"{}"))
    assert api.requests == []
