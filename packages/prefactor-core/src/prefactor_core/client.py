"""PrefactorCoreClient: the SDK's entry point, for async code.

The client is layered (as httpx layers ``BaseClient`` under ``Client`` and
``AsyncClient``): ``_client_base.BaseClient`` holds the I/O-free logic it shares with
``SyncPrefactorCoreClient``; ``_client_queue.QueueingClient`` the ways onto the queue and
the failure latch; this module the lifecycle (start the engine, discover the API, flush,
close) and the public methods. Discovery itself is ``_engine/discovery.py``.
"""

from __future__ import annotations

import inspect
import logging
from datetime import datetime
from types import TracebackType
from typing import Any

import httpx

from prefactor_core._client_base import InstancePurpose, InstanceRequest
from prefactor_core._client_engine import EngineClient
from prefactor_core._client_queue import NOT_INITIALIZED
from prefactor_core._engine.retry import Sleep
from prefactor_core._instance_creation import InstanceCreation
from prefactor_core._traced_types import span_type_names
from prefactor_core.config import PrefactorCoreConfig
from prefactor_core.context_stack import SpanContextStack as SpanContextStack
from prefactor_core.exceptions import (
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    PrefactorTelemetryFailureError,
)
from prefactor_core.managers.agent_instance import AgentInstanceHandle, AgentInstanceManager
from prefactor_core.managers.span import SpanManager
from prefactor_core.monitoring.termination_monitor import TerminationMonitor as TerminationMonitor
from prefactor_core.operations import Operation
from prefactor_core.operations import OperationType as OperationType
from prefactor_core.queue.base import Queue
from prefactor_core.queue.executor import TaskExecutor as TaskExecutor
from prefactor_core.queue.memory import InMemoryQueue as InMemoryQueue
from prefactor_core.runtime import build_runtime_environment as build_runtime_environment
from prefactor_core.span_context import SpanContext
from prefactor_http import PrefactorHttpClient as PrefactorHttpClient
from prefactor_http.exceptions import PrefactorApiError as PrefactorApiError
from prefactor_http.exceptions import is_permanent_http_error as is_permanent_http_error
from prefactor_http.exceptions import (
    is_transient_http_error as is_transient_http_error,
)

__all__ = ["InstanceCreation", "PrefactorCoreClient"]
# (The names imported ``as`` themselves above are importable from this module in the
# published SDK too, so they stay importable from here.)

logger = logging.getLogger("prefactor_core")

_CLOSED_SPAN_ERROR = {
    "type": "PrefactorClientClosed",
    "message": "the client was closed before the span finished",
}


def _is_strict(registry: object) -> bool:
    return registry is not None and bool(getattr(registry, "strict", False))


class PrefactorCoreClient(EngineClient):
    """Records agent runs and their spans, and ships them to the Prefactor API.

    Every call on the agent's path only does local work and queues an operation; a
    background engine delivers operations in causal order (batched through the bulk
    endpoint when the server offers it), retries transient failures without creating
    duplicates, and never raises into the agent. The one exception is a failure that
    makes all further delivery impossible (a rejected token: 401 or 403): it is latched as
    ``PrefactorTelemetryFailureError`` and raised at the next call that would queue work.
    An operation the API refuses is reported, counted and repaired or dropped instead.

    Example::

        config = PrefactorCoreConfig(
            http_config=HttpClientConfig(api_url="http://127.0.0.1:8000", api_token=token),
            schema_registry=registry,
        )
        async with PrefactorCoreClient(config) as client:
            instance = await client.create_agent_instance(
                agent_id="my-agent", agent_version={"name": "My Agent"}
            )
            await instance.start()
            async with instance.span("agent:llm") as span:
                await span.start({"model": "gpt-4", "prompt": "Hi"})
                await span.complete({"response": "Hello"})
            await instance.finish()

    Args:
        config: The client's configuration.
        queue: The queue between the agent and the delivery engine; a bounded
            ``InMemoryQueue`` (or the SQLite spool, with ``config.spool_path``) by default.
        sdk_header_entry: An adapter's ``name@version`` entry for the ``X-Prefactor-SDK``
            header (e.g. ``prefactor-langchain@0.3.0``). A client with an adapter entry
            leaves stopping a terminated run to the adapter (which watches
            ``_termination_monitor``); without one, a new span in a run the platform
            terminated raises ``PrefactorTerminatedError``.
        transport: An httpx transport for the API (tests pass an in-process one).
        sleep: The sleep used between retries (tests pass one they control).
    """

    def __init__(
        self,
        config: PrefactorCoreConfig,
        queue: Queue[Operation] | None = None,
        sdk_header_entry: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        super().__init__(config, queue, sdk_header_entry, transport, sleep)
        self._instance_manager: AgentInstanceManager | None = None
        self._span_manager: SpanManager | None = None
        self._open_instances: dict[str, AgentInstanceHandle] = {}

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> PrefactorCoreClient:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        try:
            await self.close()
        except PrefactorTelemetryFailureError:
            if exc_val is None:
                raise

    async def initialize(self) -> None:
        """Open the HTTP client, start the delivery engine, and find out about the API.

        Waits at most ``config.startup_timeout`` for the API's first answer; an API that
        is down or slow does not stop the agent (delivery starts when it answers). A
        rejected token is latched as a telemetry failure.

        Raises:
            ClientAlreadyInitializedError: If the client was initialised already.
            ClientNotInitializedError: If the client was closed.
        """
        if self._state == "open":
            raise ClientAlreadyInitializedError("Client is already initialized")
        if self._state == "closed":
            raise ClientNotInitializedError("the client was closed; make a new one")
        config = self._config
        custom = self._custom_queue  # an empty queue is falsy (len 0): test for None
        self._queue = custom if custom is not None else self._default_queue()
        self._instance_manager = AgentInstanceManager(
            None, self._enqueue, new_id=self._ids.new_id, encoder=self._payloads
        )
        self._span_manager = SpanManager(
            None,
            self._enqueue,
            new_id=self._ids.new_id,
            # Only a strict registry checks span types on the agent's path.
            check_schema=self._check_schema if _is_strict(config.schema_registry) else None,
            on_failure_seen=self._mark_failure_seen,
            offer=self._offer,
            encoder=self._payloads,
        )
        table = self._span_manager.table
        table.offer_span, table.fold_target = self._offer_span, self._fold_target
        self._state = "open"
        self._termination.open(self._fetch_instance, config.termination_poll_interval)
        await self._start_engine()

    async def close(self) -> None:
        """Finish what is open, deliver what is queued, and release resources.

        Spans and instances still open are finished as ``failed`` (spans with a reason
        in their result). Delivery goes on for at most ``config.close_timeout`` seconds;
        what could not be delivered by then is logged and counted as dropped. Closing
        twice does nothing.

        Raises:
            PrefactorTelemetryFailureError: If telemetry failed permanently and the
                error has not been raised to the caller before.
        """
        if self._state != "open":
            self._state = "closed"
            return
        await self._finish_open_work()
        await self._stop_engine()
        if self._failure is not None and not self._failure_seen:
            self._failure_seen = True
            raise self._refresh_failure()

    @property
    def instance_manager(self) -> AgentInstanceManager | None:
        """The agent instance manager (None before ``initialize()``)."""
        return self._instance_manager

    @property
    def span_manager(self) -> SpanManager | None:
        """The span manager (None before ``initialize()``)."""
        return self._span_manager

    # -- instances ------------------------------------------------------------------------

    def create_agent_instance(
        self,
        agent_id: str | None = None,
        agent_version: dict[str, Any] | None = None,
        agent_schema_version: dict[str, Any] | None = None,
        instance_id: str | None = None,
        external_schema_version_id: str | None = None,
        *,
        environment_id: str | None = None,
        purpose: InstancePurpose | None = None,
        external_identifier: str | None = None,
    ) -> InstanceCreation:
        """Register a new agent instance (one run of an agent) and return its handle.

        Returns at once: the id is made on the client and registration is queued.
        Await the result for the handle, or use it with ``async with``.

        Args:
            agent_id: The agent this is a run of.
            agent_version: The agent version (``name``, ``external_identifier``, ...);
                the SDK adds ``runtime_environment`` when it is missing.
            agent_schema_version: The run's span types. When None, the configured
                schema registry's span types are used.
            instance_id: An id of your own (1 to 64 letters, digits, ``_`` or ``-``).
            external_schema_version_id: The schema version's identifier when it comes
                from the registry; by default one derived from the registry's content,
                so an unchanged registry reuses the same stored schema version.
            environment_id: The environment, for account-scoped tokens.
            purpose: ``live``, ``smoke_test`` or ``eval``.
            external_identifier: The run's id in another system.

        Raises:
            ClientNotInitializedError: If the client is not initialised.
            ValueError: If no schema version is given and no registry is configured.
            PrefactorTelemetryFailureError: If telemetry failed permanently.
        """
        return InstanceCreation(
            self,
            self._instance_request(
                agent_id,
                agent_version,
                agent_schema_version,
                instance_id=instance_id,
                external_schema_version_id=external_schema_version_id,
                environment_id=environment_id,
                purpose=purpose,
                external_identifier=external_identifier,
            ),
        )

    if hasattr(inspect, "markcoroutinefunction"):  # Python 3.12+
        # inspect.iscoroutinefunction() says True, as for the published SDK.
        create_agent_instance = inspect.markcoroutinefunction(create_agent_instance)

    async def _create_instance(self, request: InstanceRequest) -> AgentInstanceHandle:
        manager = self._require_open()
        self._raise_if_failed()
        version = self._agent_version(request.agent_version, request.instance_id)
        schema_version = self._schema_version(
            request.agent_id, request.agent_schema_version, request.external_schema_version_id
        )
        if request.instance_id is None and self._learn_partition:
            learned_id = await self._register_for_partition(request, version, schema_version)
            if learned_id is not None:
                return self._track(AgentInstanceHandle(learned_id, self), schema_version)
        new_id = await manager.register(
            version,
            schema_version,
            agent_id=request.agent_id,
            instance_id=request.instance_id,
            environment_id=request.environment_id,
            purpose=request.purpose,
            external_identifier=request.external_identifier,
        )
        return self._track(AgentInstanceHandle(new_id, self), schema_version)

    def _track(
        self, handle: AgentInstanceHandle, schema_version: dict[str, Any]
    ) -> AgentInstanceHandle:
        handle._span_types = span_type_names(schema_version)
        self._open_instances[handle.id] = handle
        if self._dispatcher is not None:
            self._termination.watch(handle.id)
        return handle

    def _instance_closed(self, instance_id: str) -> None:
        self._open_instances.pop(instance_id, None)
        self._termination.finished(instance_id)

    async def record_quality(
        self, instance_id: str, name: str, payload: dict[str, Any] | None = None
    ) -> None:
        """Queue a named quality record for an instance."""
        await self._require_open().record_quality(instance_id, name, payload)

    def _termination_reason(self, instance_id: str) -> str | None:
        return self._termination.reason(instance_id)

    # -- spans --------------------------------------------------------------------------

    def span(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> SpanContext:
        """Open a span in an instance; use the result with ``async with``.

        The span's parent is ``parent_span_id``, or else the innermost span open in
        this task. See ``SpanContext`` for its lifecycle.

        Args:
            instance_id: The agent instance.
            schema_name: The span type, e.g. ``agent:llm``.
            parent_span_id: An explicit parent.
            payload: The params used if ``start()`` is never called.

        Raises:
            ClientNotInitializedError: If the client is not initialised.
            ValueError: If the registry is strict and does not know ``schema_name``.
            TypeError: If ``payload`` is not a dict (a JSON object).
            PrefactorTelemetryFailureError: If telemetry failed permanently.
            PrefactorTerminatedError: If the platform terminated the instance (not for
                a client driven by an adapter, which stops the agent itself).
        """
        manager = self._span_manager
        if manager is None or self._state != "open":
            raise ClientNotInitializedError(NOT_INITIALIZED)
        if self._failure is not None:
            self._raise_if_failed()
        self._termination.check(instance_id)
        return manager.context(instance_id, schema_name, parent_span_id, payload)

    async def create_span(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Create and start a span that stays open until ``finish_span``; return its id.

        Raises:
            PrefactorTerminatedError: If the platform terminated the instance (not for
                a client driven by an adapter).
        """
        manager = self._require_span_manager()
        self._raise_if_failed()
        self._termination.check(instance_id)
        return await manager.create(
            instance_id, schema_name, parent_span_id, payload, started_at=started_at
        )

    async def finish_span(
        self,
        span_id: str,
        result_payload: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Finish a span made with ``create_span`` as ``complete``.

        Raises:
            SpanNotFoundError: If no open span has this id.
        """
        await self._require_span_manager().finish(span_id, result_payload, timestamp=timestamp)

    def _check_schema(self, schema_name: str) -> None:
        if not self._config.schema_registry.knows(schema_name):
            raise ValueError(f"span type {schema_name!r} is not registered in the schema registry")

    # -- helpers --------------------------------------------------------------------------

    def _require_open(self) -> AgentInstanceManager:
        if self._state != "open" or self._instance_manager is None:
            raise ClientNotInitializedError(NOT_INITIALIZED)
        return self._instance_manager

    def _require_span_manager(self) -> SpanManager:
        if self._state != "open" or self._span_manager is None:
            raise ClientNotInitializedError(NOT_INITIALIZED)
        return self._span_manager

    async def _finish_open_work(self) -> None:
        """Finish spans and instances left open, so nothing dangles on the server."""
        if self._failure is not None:
            return  # nothing can be sent any more
        manager = self._span_manager
        for ctx in manager.open_spans() if manager is not None else []:
            try:
                await ctx.fail({"error": dict(_CLOSED_SPAN_ERROR)})
            except Exception as error:
                logger.debug("could not finish span %s at close: %s", ctx.id, error)
        for handle in list(self._open_instances.values()):
            try:
                logger.info("finishing agent instance %s left open at close as failed", handle.id)
                await handle.finish("failed")
            except Exception as error:
                logger.debug("could not finish instance %s at close: %s", handle.id, error)
