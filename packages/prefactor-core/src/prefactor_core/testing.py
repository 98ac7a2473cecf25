"""Helpers for testing code that is traced with prefactor-core.

``capture_spans()`` gives a real ``PrefactorCoreClient`` wired to an in-memory Prefactor
API, so a test can run instrumented code and then assert on the runs and spans it
recorded, with no server, no network and no mocks of the SDK::

    from prefactor_core.testing import capture_spans

    async def test_my_agent_records_its_llm_call() -> None:
        async with capture_spans() as captured:
            await my_agent(captured.client)
        [span] = captured.spans_named("agent:llm")
        assert span.status == "complete"
        assert span.payload["model"] == "gpt-4"

Everything the client queued is delivered when the block exits (the client is closed),
so the records are complete there; ``await captured.flush()`` gives the same inside it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from prefactor_core.client import PrefactorCoreClient
from prefactor_core.config import PrefactorCoreConfig, QueueConfig
from prefactor_core.schema_registry import SchemaRegistry
from prefactor_http import HttpClientConfig
from prefactor_http.models.types import (
    ACTION_CREATE_SPAN,
    ACTION_FINISH_INSTANCE,
    ACTION_FINISH_SPAN,
    ACTION_RECORD_QUALITY,
    ACTION_REGISTER_INSTANCE,
    ACTION_START_INSTANCE,
    BULK_ACTION_NAMES,
    STATUS_ACTIVE,
    STATUS_COMPLETE,
)

__all__ = ["Capture", "InMemoryApi", "RecordedInstance", "RecordedSpan", "capture_spans"]

_BULK_ACTIONS = list(BULK_ACTION_NAMES)


@dataclass
class RecordedInstance:
    """An agent instance as the in-memory API stored it."""

    id: str
    agent_id: str | None
    status: str = "pending"
    agent_version: dict[str, Any] = field(default_factory=dict)
    agent_schema_version: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None
    quality: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecordedSpan:
    """A span as the in-memory API stored it (create and finish combined)."""

    id: str
    instance_id: str
    schema_name: str
    status: str
    parent_span_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    result_payload: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None


class InMemoryApi:
    """A small Prefactor API that keeps what it receives in memory.

    Use ``transport`` as the ``transport=`` of a ``PrefactorCoreClient`` (or of a
    ``PrefactorHttpClient``). It answers ping (announcing bulk unless ``bulk=False``),
    register / start / finish / record_quality, span create and finish, and bulk;
    repeated idempotency keys are answered without being applied twice, as the real
    API does. It is a recorder, not a validator: it checks no schemas or transitions.

    Attributes:
        instances: Instances by id, in registration order.
        spans: Spans by id, in creation order.
        requests: ``(method, path)`` of every request received.
    """

    def __init__(self, *, bulk: bool = True) -> None:
        self.bulk = bulk
        self.instances: dict[str, RecordedInstance] = {}
        self.spans: dict[str, RecordedSpan] = {}
        self.requests: list[tuple[str, str]] = []
        self._seen: set[tuple[str, str]] = set()
        self.transport = httpx.MockTransport(self._handle)

    # -- HTTP ---------------------------------------------------------------------

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.requests.append((request.method, path))
        if request.method == "GET" and path == "/api/v1/ping":
            return _ok(self._ping())
        body: dict[str, Any] = json.loads(request.content) if request.content else {}
        if request.method != "POST":
            return _error(404, "not_found", f"no route {request.method} {path}")
        if path == "/api/v1/bulk":
            outputs = {}
            for item in body.get("items", []):
                action = item.get("_type", "")
                resource_id = self._apply(action, item, item.get("idempotency_key"))
                outputs[item.get("idempotency_key")] = {"status": "success", "id": resource_id}
            return _ok({"status": "success", "outputs": outputs})
        action, fields = _single(path, body)
        if action is None:
            return _error(404, "not_found", f"no route POST {path}")
        resource_id = self._apply(action, fields, fields.get("idempotency_key"))
        return _ok({"status": "success", "details": {"id": resource_id}})

    def _ping(self) -> dict[str, Any]:
        capabilities: dict[str, Any] = {"pfid_partition": 0, "client_ids": True}
        if self.bulk:
            capabilities.update(bulk_actions=_BULK_ACTIONS, bulk_max_items=1000)
        return {
            "status": "success",
            "details": {"type": "account", "id": "memory", "name": "in-memory"},
            "capabilities": capabilities,
        }

    # -- applying writes ------------------------------------------------------------

    def _apply(self, action: str, fields: dict[str, Any], key: str | None) -> str:
        if "details" in fields and isinstance(fields["details"], dict):
            fields = {**fields["details"], **{k: v for k, v in fields.items() if k != "details"}}
        target = str(
            fields.get("id") or fields.get("agent_instance_id") or fields.get("agent_span_id")
        )
        if key is not None:
            if (action, key) in self._seen:
                return str(fields.get("agent_span_id") or fields.get("id") or target)
            self._seen.add((action, key))
        if action == ACTION_REGISTER_INSTANCE:
            instance_id = str(fields.get("id") or f"instance-{len(self.instances) + 1}")
            self.instances[instance_id] = RecordedInstance(
                id=instance_id,
                agent_id=fields.get("agent_id"),
                agent_version=fields.get("agent_version") or {},
                agent_schema_version=fields.get("agent_schema_version") or {},
            )
            return instance_id
        if action.startswith("agent_instances/"):
            instance = self.instances.get(str(fields.get("agent_instance_id")))
            if instance is not None:
                if action == ACTION_START_INSTANCE:
                    instance.status, instance.started_at = STATUS_ACTIVE, fields.get("timestamp")
                elif action == ACTION_FINISH_INSTANCE:
                    instance.status = fields.get("status") or STATUS_COMPLETE
                    instance.finished_at = fields.get("timestamp")
                elif action == ACTION_RECORD_QUALITY:
                    instance.quality[str(fields.get("name"))] = fields.get("payload")
            return str(fields.get("agent_instance_id"))
        if action == ACTION_CREATE_SPAN:
            span = RecordedSpan(
                id=str(fields.get("id") or f"span-{len(self.spans) + 1}"),
                instance_id=str(fields.get("agent_instance_id")),
                schema_name=str(fields.get("schema_name")),
                status=str(fields.get("status") or STATUS_ACTIVE),
                parent_span_id=fields.get("parent_span_id"),
                payload=fields.get("payload") or {},
                result_payload=fields.get("result_payload"),
                started_at=fields.get("started_at"),
                finished_at=fields.get("finished_at"),
            )
            self.spans[span.id] = span
            return span.id
        if action == ACTION_FINISH_SPAN:
            span_id = str(fields.get("agent_span_id"))
            recorded = self.spans.get(span_id)
            if recorded is not None:
                recorded.status = fields.get("status") or STATUS_COMPLETE
                recorded.result_payload = fields.get("result_payload", recorded.result_payload)
                recorded.finished_at = fields.get("timestamp")
            return span_id
        return target


def _single(path: str, body: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """Map a single-endpoint request to its bulk action and fields."""
    parts = path.strip("/").split("/")  # api, v1, resource, [id], [verb]
    if parts[:2] != ["api", "v1"] or len(parts) < 3:
        return None, body
    resource, rest = parts[2], parts[3:]
    if resource == "agent_spans" and not rest:
        details = body.get("details")
        return ACTION_CREATE_SPAN, details if isinstance(details, dict) else body
    if resource == "agent_spans" and len(rest) == 2 and rest[1] == "finish":
        return ACTION_FINISH_SPAN, {**body, "agent_span_id": rest[0]}
    if resource == "agent_instance" and rest == ["register"]:
        return ACTION_REGISTER_INSTANCE, body
    if resource == "agent_instance" and len(rest) == 2:
        return f"agent_instances/{rest[1]}", {**body, "agent_instance_id": rest[0]}
    return None, body


def _ok(body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=body)


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"status": "error", "code": code, "message": message})


@dataclass
class Capture:
    """What ``capture_spans()`` yields: the client and what it recorded."""

    client: PrefactorCoreClient
    api: InMemoryApi

    @property
    def spans(self) -> list[RecordedSpan]:
        """Every span recorded, in creation order."""
        return list(self.api.spans.values())

    @property
    def instances(self) -> list[RecordedInstance]:
        """Every agent instance recorded, in registration order."""
        return list(self.api.instances.values())

    def spans_named(self, schema_name: str) -> list[RecordedSpan]:
        """The spans of one span type, in creation order."""
        return [span for span in self.api.spans.values() if span.schema_name == schema_name]

    def children(self, span_id: str) -> list[RecordedSpan]:
        """The spans whose parent is ``span_id``."""
        return [span for span in self.api.spans.values() if span.parent_span_id == span_id]

    async def flush(self, timeout: float | None = 10.0) -> bool:
        """Deliver everything queued so far (see ``PrefactorCoreClient.flush``)."""
        return await self.client.flush(timeout)


@asynccontextmanager
async def capture_spans(
    schema_registry: SchemaRegistry | None = None, *, bulk: bool = True, **config: Any
) -> AsyncIterator[Capture]:
    """Run a block with a client whose API is in memory, then read what it recorded.

    Args:
        schema_registry: The registry for the client (an empty one when omitted, so
            ``create_agent_instance`` needs no schema version).
        bulk: Whether the in-memory API announces bulk (False: one request per
            operation, as against an API without bulk).
        **config: Other ``PrefactorCoreConfig`` fields (``mask=...``, budgets, ...).

    Yields:
        A ``Capture`` with ``client`` (initialised) and the recorded ``spans`` and
        ``instances``; the client is closed, and so everything delivered, on exit.
    """
    api = InMemoryApi(bulk=bulk)
    settings = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url="http://prefactor.test", api_token="test-token"),
        schema_registry=schema_registry if schema_registry is not None else SchemaRegistry(),
        queue_config=QueueConfig(batch_linger=0.0),
        **config,
    )
    client = PrefactorCoreClient(settings, transport=api.transport)
    async with client:
        yield Capture(client, api)
