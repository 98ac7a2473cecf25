"""Agent instances: the manager that queues their lifecycle, and the handle users hold."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from prefactor_core._engine.ids import IdFactory, check_client_id
from prefactor_core._engine.optable import (
    finish_instance_op,
    quality_op,
    register_op,
    start_instance_op,
)
from prefactor_core._payload import PayloadEncoder
from prefactor_core.current import enter_instance, leave_instance
from prefactor_core.exceptions import PrefactorTelemetryFailureError
from prefactor_core.managers._arguments import (
    check_finish_status,
    check_quality_name,
    in_published_order,
    masked_version,
)
from prefactor_core.operations import Operation
from prefactor_core.operations import OperationType as OperationType
from prefactor_core.span_context import FinishStatus, SpanContext, to_timestamp
from prefactor_core.utils import generate_idempotency_key, validate_idempotency_key
from prefactor_http.models.types import (
    STATUS_CANCELLED,
    STATUS_COMPLETE,
    STATUS_FAILED,
    InstancePurpose,
)

if TYPE_CHECKING:
    from prefactor_http import PrefactorHttpClient

__all__ = ["AgentInstanceHandle", "AgentInstanceManager", "FinishStatus"]


class AgentInstanceManager:
    """Agent instance lifecycle operations, each of which only queues work.

    The instance id is made on the client (or given by you), so ``register`` returns
    it at once: the API accepts client-chosen ids, and the register request is queued
    ahead of everything else of that instance, so it always reaches the API first.

    Example::

        instance_id = await manager.register(
            agent_id="my-agent",
            agent_version={"name": "1.0.0"},
            agent_schema_version={"external_identifier": "schemas-1"},
        )
        await manager.start(instance_id)
        await manager.finish(instance_id)
    """

    def __init__(
        self,
        http_client: PrefactorHttpClient | None,
        enqueue: Callable[[Operation], Awaitable[None]],
        *,
        new_id: Callable[[], str] | None = None,
        encoder: PayloadEncoder | None = None,
    ) -> None:
        # http_client stays in the published signature but is not kept: the managers
        # only queue operations, and the dispatcher sends them.
        self._enqueue = enqueue
        self._new_id = new_id or IdFactory().new_id
        self._encoder = encoder or PayloadEncoder()

    async def register(
        self,
        agent_version: dict[str, Any],
        agent_schema_version: dict[str, Any],
        agent_id: str | None = None,
        instance_id: str | None = None,
        environment_id: str | None = None,
        purpose: InstancePurpose | None = None,
        external_identifier: str | None = None,
    ) -> str:
        """Queue the registration of a new agent instance and return its id.

        The parameters are in the published 0.5.3 order. A positional call in the
        older order ``register(agent_id, agent_version, agent_schema_version,
        instance_id)`` is recognised (its first argument is an id, not a dict) and
        works too.

        Args:
            agent_id: The agent; None lets a deployment-scoped token decide.
            agent_version: The agent version (``name``, ``external_identifier``, ...).
            agent_schema_version: The span types of this run.
            instance_id: An id of your own (1 to 64 letters, digits, ``_`` or ``-``);
                one is made when omitted.
            environment_id: The environment, for account-scoped tokens.
            purpose: ``live``, ``smoke_test`` or ``eval``.
            external_identifier: The run's id in another system.

        Raises:
            ValueError: For a malformed id; TypeError for non-dict versions.
        """
        agent_version, agent_schema_version, agent_id = in_published_order(
            agent_version, agent_schema_version, agent_id
        )
        if not isinstance(agent_version, dict):
            raise TypeError(f"agent_version must be a dict, got {type(agent_version).__name__}")
        if not isinstance(agent_schema_version, dict):
            raise TypeError(
                f"agent_schema_version must be a dict, got {type(agent_schema_version).__name__}"
            )
        if instance_id is None:
            instance_id = self._new_id()
        else:
            check_client_id(instance_id, "instance_id")
        encoder = self._encoder
        if encoder.mask is not None:
            agent_version = masked_version(encoder, agent_version)
        body: dict[str, Any] = {
            "agent_version": agent_version,
            "agent_schema_version": agent_schema_version,
            "update_current_version": True,
            "id": instance_id,
        }
        optional = {
            "agent_id": agent_id,
            "environment_id": environment_id,
            "purpose": purpose,
            "external_identifier": external_identifier,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        # Made JSON-compatible now: that snapshots it against later mutation, and the
        # background never meets a value it cannot encode.
        body = encoder.jsonable(body)
        await self._enqueue(register_op(instance_id, body, time.time(), generate_idempotency_key()))
        return instance_id

    async def start(self, instance_id: str, timestamp: datetime | None = None) -> None:
        """Queue the start of an instance (it becomes ``active``)."""
        await self.start_with_idempotency_key(instance_id, generate_idempotency_key(), timestamp)

    async def start_with_idempotency_key(
        self, instance_id: str, idempotency_key: str, timestamp: datetime | None = None
    ) -> None:
        """Queue the start of an instance with a key of your own.

        Raises:
            ValueError: If the key is empty or longer than 64 characters.
        """
        validate_idempotency_key(idempotency_key)
        at = to_timestamp(timestamp, "timestamp")
        now = time.time()
        await self._enqueue(
            start_instance_op(instance_id, now if at is None else at, now, idempotency_key)
        )

    async def finish(
        self,
        instance_id: str,
        status: FinishStatus = "complete",
        timestamp: datetime | None = None,
    ) -> None:
        """Queue the finish of an instance with a terminal status."""
        await self.finish_with_idempotency_key(
            instance_id, generate_idempotency_key(), status, timestamp
        )

    async def finish_with_idempotency_key(
        self,
        instance_id: str,
        idempotency_key: str,
        status: FinishStatus = "complete",
        timestamp: datetime | None = None,
    ) -> None:
        """Queue the finish of an instance with a key of your own.

        Raises:
            ValueError: For a bad status, or a key that is empty or too long.
        """
        check_finish_status(status)
        validate_idempotency_key(idempotency_key)
        at = to_timestamp(timestamp, "timestamp")
        now = time.time()
        await self._enqueue(
            finish_instance_op(instance_id, status, now if at is None else at, now, idempotency_key)
        )

    async def record_quality(
        self, instance_id: str, name: str, payload: dict[str, Any] | None = None
    ) -> None:
        """Queue a named quality record for the instance (None removes the entry)."""
        check_quality_name(name)
        encoded = None if payload is None else self._encoder.encode(payload, "quality payload")
        await self._enqueue(
            quality_op(instance_id, name, encoded, time.time(), generate_idempotency_key())
        )


class _InstanceOwner(Protocol):
    """What a handle needs from the client that made it."""

    @property
    def instance_manager(self) -> AgentInstanceManager | None: ...

    def span(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> SpanContext: ...

    async def create_span(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> str: ...

    async def finish_span(
        self,
        span_id: str,
        result_payload: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> None: ...

    async def record_quality(
        self, instance_id: str, name: str, payload: dict[str, Any] | None = None
    ) -> None: ...

    def _instance_closed(self, instance_id: str) -> None: ...

    def _termination_reason(self, instance_id: str) -> str | None: ...


class AgentInstanceHandle:
    """One run of an agent: start it, open spans in it, finish it.

    ``start()`` and ``finish()`` each use one idempotency key for the handle's whole
    life, and repeated calls do nothing, so a retried or duplicated call never records
    the run twice. As an async context manager the handle finishes the run on exit if
    you have not: ``complete``, or ``failed`` when the block raised (``cancelled`` when
    the task was cancelled).

    Example::

        async with client.create_agent_instance(agent_id="my-agent", agent_version=v) as run:
            await run.start()
            async with run.span("agent:llm") as span:
                await span.start({"model": "gpt-4"})
                await span.complete({"response": "hi"})
    """

    def __init__(self, instance_id: str, client: _InstanceOwner) -> None:
        self._id = instance_id
        self._client = client
        self._start_key = generate_idempotency_key()
        self._finish_key = generate_idempotency_key()
        self._started = False
        self._finished = False
        self._outer: AgentInstanceHandle | None = None  # the current instance it replaced
        # The span types of the run's schema version (None: unknown); @trace records only
        # these, since the API refuses others (any, when the version declares none).
        self._span_types: frozenset[str] | None = None

    @property
    def id(self) -> str:
        """The instance id."""
        return self._id

    @property
    def termination_reason(self) -> str | None:
        """Why the platform terminated this run, once a response said so; else None."""
        return self._client._termination_reason(self._id)

    def _manager(self) -> AgentInstanceManager:
        manager = self._client.instance_manager
        if manager is None:
            from prefactor_core.exceptions import ClientNotInitializedError

            raise ClientNotInitializedError(
                "Client is not initialized. Call initialize() or use as context manager."
            )
        return manager

    async def start(self, timestamp: datetime | None = None) -> None:
        """Queue the start of the run. Later calls do nothing.

        The run becomes the current instance of this context (what ``@trace`` records
        into) until it finishes.
        """
        if self._started:
            return
        await self._manager().start_with_idempotency_key(self._id, self._start_key, timestamp)
        self._started = True
        self._make_current()

    def _make_current(self) -> None:
        if not self._finished:
            outer = enter_instance(self)
            if outer is not self:
                self._outer = outer

    async def finish(
        self, status: FinishStatus = "complete", timestamp: datetime | None = None
    ) -> None:
        """Queue the finish of the run with a terminal status. Later calls do nothing.

        Args:
            status: ``complete`` (the default), ``failed`` or ``cancelled``.
            timestamp: When the run finished; now when omitted.
        """
        if self._finished:
            return
        check_finish_status(status)
        await self._manager().finish_with_idempotency_key(
            self._id, self._finish_key, status, timestamp
        )
        self._finished = True
        leave_instance(self, self._outer)
        self._client._instance_closed(self._id)

    async def record_quality(self, name: str, payload: dict[str, Any] | None = None) -> None:
        """Queue a named quality record for the run."""
        await self._client.record_quality(self._id, name, payload)

    def span(
        self,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> SpanContext:
        """Open a span in this run (use with ``async with``); see ``SpanContext``."""
        return self._client.span(self._id, schema_name, parent_span_id, payload)

    async def create_span(
        self,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Create and start a span that stays open until ``finish_span``; return its id."""
        return await self._client.create_span(
            self._id, schema_name, parent_span_id, payload, started_at
        )

    async def finish_span(
        self,
        span_id: str,
        result_payload: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Finish a span made with ``create_span``."""
        await self._client.finish_span(span_id, result_payload, timestamp)

    async def __aenter__(self) -> AgentInstanceHandle:
        self._make_current()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._finished:
            leave_instance(self, self._outer)
            return
        status: FinishStatus = STATUS_COMPLETE
        if exc is not None:
            status = STATUS_CANCELLED if isinstance(exc, asyncio.CancelledError) else STATUS_FAILED
        try:
            await self.finish(status)
        except PrefactorTelemetryFailureError:
            if exc is None:
                raise

    def __repr__(self) -> str:
        return f"<AgentInstanceHandle id={self._id!r}>"
