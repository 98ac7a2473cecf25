"""Shared fixtures: a fake Prefactor API behind ``httpx.MockTransport`` and a client on it."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from prefactor_http import HttpClientConfig, PrefactorHttpClient

API_URL = "http://prefactor.test"
TOKEN = "pf_test_token"

Reply = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]

# The composed examples of the wire protocol (sections 2.2 and 2.8).
INSTANCE_DETAILS: dict[str, Any] = {
    "type": "agent_instance",
    "id": "ins_0001",
    "account_id": "acc_0001",
    "agent_id": "agt_0001",
    "agent_version_id": "ver_0001",
    "environment_id": "env_0001",
    "agent_deployment_id": "dep_0001",
    "status": "pending",
    "purpose": "live",
    "external_identifier": None,
    "inserted_at": "2026-08-10T09:00:00.000000Z",
    "updated_at": "2026-08-10T09:00:00.000000Z",
    "started_at": None,
    "finished_at": None,
    "termination_reason": None,
    "span_counts": {
        "total": 0,
        "pending": 0,
        "active": 0,
        "complete": 0,
        "failed": 0,
        "cancelled": 0,
        "finished": 0,
    },
    "quality_payloads": {},
    "quality_summaries": {},
}

SPAN_DETAILS: dict[str, Any] = {
    "type": "agent_span",
    "id": "spn_0002",
    "account_id": "acc_0001",
    "agent_id": "agt_0001",
    "agent_instance_id": "ins_0001",
    "parent_span_id": "spn_0001",
    "schema_name": "langchain:llm",
    "schema_title": "LLM Call",
    "status": "active",
    "payload": {"model_name": "claude-haiku-4-5", "inputs": {"messages": []}},
    "result_payload": None,
    "summary": None,
    "started_at": "2026-08-10T09:00:02Z",
    "inserted_at": "2026-08-10T09:00:02Z",
    "updated_at": "2026-08-10T09:00:02Z",
    "finished_at": None,
}

AGENT_DETAILS: dict[str, Any] = {
    "type": "agent",
    "id": "agt_0001",
    "name": "Support Concierge",
    "external_identifier": "support",
    "status": "pending",
    "available_actions": {"update": True, "retire": True, "reinstate": False, "delete": True},
    "inserted_at": "2026-08-10T09:00:00Z",
    "updated_at": "2026-08-10T09:00:00Z",
}


class FakeApi:
    """Answers each request with the next queued reply and records every request."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self._replies: list[Reply] = []

    def reply(
        self,
        status: int = 200,
        body: Any = None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Queue a response with a JSON ``body`` (or raw ``content``)."""
        if content is None:
            content = json.dumps({"status": "success"} if body is None else body).encode()
        self._replies.append(httpx.Response(status, content=content, headers=headers))

    def success(self, details: dict[str, Any], **extra: Any) -> None:
        """Queue a 200 success envelope around ``details``."""
        self.reply(200, {"status": "success", "details": details, **extra})

    def fail(self, error: Exception) -> None:
        """Queue a transport failure (the handler raises ``error``)."""
        self._replies.append(error)

    def handler(self, request: httpx.Request) -> httpx.Response:
        """The ``MockTransport`` handler."""
        self.requests.append(request)
        assert self._replies, f"unexpected request {request.method} {request.url}"
        reply = self._replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return reply(request)

    @property
    def last(self) -> httpx.Request:
        """The most recent request."""
        return self.requests[-1]

    def body(self, index: int = -1) -> Any:
        """The decoded JSON body of a recorded request."""
        return json.loads(self.requests[index].content)


@pytest.fixture(name="api")
def fixture_api() -> FakeApi:
    """A fresh fake API."""
    return FakeApi()


@pytest.fixture(name="sleeps")
def fixture_sleeps() -> list[float]:
    """The delays the client slept for, in order."""
    return []


@pytest.fixture(name="make_client")
def fixture_make_client(api: FakeApi, sleeps: list[float]) -> Callable[..., PrefactorHttpClient]:
    """Build clients on the fake API that record their sleeps; jitter factor is 1.0."""

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    def make(
        sdk_header: str | None = None, *, clock: Callable[[], float] | None = None, **config: Any
    ) -> PrefactorHttpClient:
        return PrefactorHttpClient(
            HttpClientConfig(api_url=API_URL, api_token=TOKEN, **config),
            sdk_header,
            transport=httpx.MockTransport(api.handler),
            sleep=sleep,
            clock=clock,
            jitter=lambda: 0.5,
        )

    return make


@pytest.fixture(name="client")
async def fixture_client(
    make_client: Callable[..., PrefactorHttpClient],
) -> AsyncIterator[PrefactorHttpClient]:
    """An open client on the fake API with the default config."""
    async with make_client() as client:
        yield client


@pytest.fixture(name="instance_details")
def fixture_instance_details() -> dict[str, Any]:
    """The register example's instance details (wire protocol 2.2)."""
    return copy.deepcopy(INSTANCE_DETAILS)


@pytest.fixture(name="span_details")
def fixture_span_details() -> dict[str, Any]:
    """The span-create example's details (wire protocol 2.8)."""
    return copy.deepcopy(SPAN_DETAILS)


@pytest.fixture(name="agent_details")
def fixture_agent_details() -> dict[str, Any]:
    """The agent-create example's details (wire protocol 2.10)."""
    return copy.deepcopy(AGENT_DETAILS)
