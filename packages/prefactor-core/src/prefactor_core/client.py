"""PrefactorCoreClient: the SDK's entry point."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import threading
from collections.abc import Callable, Coroutine, Generator
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, cast

import httpx

from prefactor_core._engine.dispatcher import DeliveryStatistics, Dispatcher
from prefactor_core._engine.entry import EngineEntry
from prefactor_core._engine.ids import IdFactory, check_client_id
from prefactor_core._engine.rejection import is_fatal
from prefactor_core._engine.retry import Backoff, Sleep
from prefactor_core._engine.sender import HttpSender
from prefactor_core._payload import PayloadEncoder
from prefactor_core._traced_types import declared as declared_span_types
from prefactor_core._traced_types import register_declared, span_type_names
from prefactor_core._version import __version__
from prefactor_core.config import PrefactorCoreConfig
from prefactor_core.context_stack import SpanContextStack as SpanContextStack
from prefactor_core.exceptions import (
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    PrefactorTelemetryFailureError,
)
from prefactor_core.managers.agent_instance import AgentInstanceHandle, AgentInstanceManager
from prefactor_core.managers.span import SpanManager
from prefactor_core.monitoring.termination_monitor import TerminationMonitor
from prefactor_core.monitoring.tracker import TerminationTracker
from prefactor_core.operations import Operation
from prefactor_core.operations import OperationType as OperationType
from prefactor_core.queue.base import Queue, QueueClosedError, QueueFullError
from prefactor_core.queue.executor import TaskExecutor as TaskExecutor
from prefactor_core.queue.memory import InMemoryQueue
from prefactor_core.queue.spool import SpoolQueue
from prefactor_core.runtime import build_runtime_environment
from prefactor_core.schema_registry import SchemaRegistry
from prefactor_core.span_context import SpanContext
from prefactor_core.utils import generate_idempotency_key
from prefactor_http import PrefactorHttpClient
from prefactor_http.exceptions import PrefactorApiError as PrefactorApiError
from prefactor_http.exceptions import is_permanent_http_error
from prefactor_http.exceptions import (
    is_transient_http_error as is_transient_http_error,
)
from prefactor_http.pfid import MAX_PARTITION, is_pfid, parse_pfid

__all__ = ["InstanceCreation", "PrefactorCoreClient"]
# (The names imported ``as`` themselves above are importable from this module in the
# published SDK too, so they stay importable from here.)

logger = logging.getLogger("prefactor_core")

InstancePurpose = Literal["live", "smoke_test", "eval"]
_CORE_SDK_ENTRY = f"prefactor-core@{__version__}"
# Worded as published: user code may match on it.
_NOT_INITIALIZED = "Client is not initialized. Call initialize() or use as context manager."

# Bumped in a forked child: a client made before the fork must not be used after it,
# since its queue, tasks and connections belong to the parent.
_fork_generation = [0]
os.register_at_fork(after_in_child=lambda: _fork_generation.__setitem__(0, _fork_generation[0] + 1))
_CLOSED_SPAN_ERROR = {
    "type": "PrefactorClientClosed",
    "message": "the client was closed before the span finished",
}


def _discard(_op: Operation) -> None:
    """The queue of a disabled client."""


async def _discard_async(_op: Operation) -> None:
    """The awaited queue of a disabled client."""


_get_ident = threading.get_ident


def _forked() -> ClientNotInitializedError:
    return ClientNotInitializedError(
        "this client was created before os.fork(); create a new client in the child process"
    )


def _is_strict(registry: object) -> bool:
    return registry is not None and bool(getattr(registry, "strict", False))


class InstanceCreation(Coroutine[Any, Any, AgentInstanceHandle]):
    """What ``create_agent_instance`` returns: a coroutine that also works with ``async with``.

    ``await client.create_agent_instance(...)`` gives the ``AgentInstanceHandle``, and
    like any coroutine the result can be given to ``asyncio.create_task`` or
    ``asyncio.gather`` (as with the published SDK, whose method is a coroutine
    function). ``async with client.create_agent_instance(...) as instance`` gives the
    handle too, and finishes the instance on exit if the block did not.
    """

    __slots__ = ("_client", "_coroutine", "_handle", "_kwargs")

    def __init__(self, client: PrefactorCoreClient, kwargs: dict[str, Any]) -> None:
        self._client = client
        self._kwargs = kwargs
        self._handle: AgentInstanceHandle | None = None
        self._coroutine: Coroutine[Any, Any, AgentInstanceHandle] | None = None

    def _run(self) -> Coroutine[Any, Any, AgentInstanceHandle]:
        if self._coroutine is None:
            self._coroutine = self._client._create_instance(**self._kwargs)
        return self._coroutine

    def __await__(self) -> Generator[Any, None, AgentInstanceHandle]:
        return self._run().__await__()

    def send(self, value: Any) -> Any:
        return self._run().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if val is None and tb is None:
            return self._run().throw(typ)
        return self._run().throw(typ, val, tb)

    def close(self) -> None:
        if self._coroutine is not None:
            self._coroutine.close()

    async def __aenter__(self) -> AgentInstanceHandle:
        self._handle = await self._run()
        return await self._handle.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            await self._handle.__aexit__(exc_type, exc, tb)


class PrefactorCoreClient:
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
        if not isinstance(config, PrefactorCoreConfig):
            raise TypeError(f"config must be a PrefactorCoreConfig, got {type(config).__name__}")
        self._config = config
        self._custom_queue = queue
        self._sdk_header_entry = sdk_header_entry
        self._transport = transport
        self._state: Literal["new", "open", "closed"] = "new"
        self._generation = _fork_generation[0]
        self._put_nowait: Callable[[Operation], None] | None = None
        # The thread-safe way in for callers off the engine loop's thread (set when open).
        self._entry: EngineEntry | None = None
        self._loop_thread = -1
        self._traced_registry: SchemaRegistry | None = None

        self._ids = IdFactory()
        self._queue: Queue[Operation] | None = None
        self._http: PrefactorHttpClient | None = None
        self._dispatcher: Dispatcher | None = None
        self._instance_manager: AgentInstanceManager | None = None
        self._span_manager: SpanManager | None = None
        self._discovery: asyncio.Task[None] | None = None
        self._learn_partition = False
        self._sleep = sleep
        qc = config.queue_config
        # The start-up probe's waits are capped low: an API that comes back is used
        # within a few seconds, and flush()/close() cut a wait short (issue 10).
        self._probe_backoff = Backoff(
            qc.retry_delay_base, min(qc.max_probe_delay, qc.max_retry_delay), sleep=sleep
        )
        self._payloads = PayloadEncoder(
            mask=config.mask,
            max_field_bytes=config.max_field_bytes,
            max_span_bytes=config.max_span_bytes,
        )

        self._failure: PrefactorTelemetryFailureError | None = None
        self._failure_seen = False
        self._dropped_before_failure = 0
        self._warned_full = False
        self._open_instances: dict[str, AgentInstanceHandle] = {}
        self._termination = TerminationTracker()
        self._termination.refuse_new_spans = sdk_header_entry is None

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
        qc = config.queue_config
        self._queue = self._custom_queue or self._default_queue()
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
        self._state = "open"
        self._termination.open(self._fetch_instance, config.termination_poll_interval)
        self._loop_thread = _get_ident()
        if not config.enabled:
            self._put_nowait = _discard
            self._entry = EngineEntry(
                asyncio.get_running_loop(), _discard, _discard_async, lambda _n: None, 0
            )
            return
        if isinstance(self._queue, InMemoryQueue):
            self._put_nowait = self._queue.put_nowait
        self._entry = EngineEntry(
            asyncio.get_running_loop(),
            self._put_nowait,
            self._put,
            self._count_dropped,
            qc.max_queue_size,
        )
        self._http = PrefactorHttpClient(
            config.http_config, sdk_header=self._sdk_header(), transport=self._transport
        )
        await self._http.open()
        self._instance_manager._http = self._http
        self._span_manager._http = self._http
        self._dispatcher = Dispatcher(
            self._queue,
            HttpSender(self._http),
            qc,
            on_permanent_failure=self._latch,
            on_control=self._on_control,
            on_delivered=self._acknowledge if isinstance(self._queue, SpoolQueue) else None,
            sleep=self._sleep,
        )
        self._dispatcher.start()
        self._discovery = asyncio.create_task(self._discover(), name="prefactor-discovery")
        try:
            async with asyncio.timeout(config.startup_timeout):
                await asyncio.shield(self._discovery)
        except TimeoutError:
            logger.warning(
                "the Prefactor API did not answer within %.1fs; the agent carries on and "
                "operations are delivered when it answers",
                config.startup_timeout,
            )

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
        if self._entry is not None:
            await self._entry.close()  # what other threads emitted goes before the end
        self._state = "closed"
        self._termination.close()
        self._put_nowait = None
        queue = self._queue
        assert queue is not None
        if not queue.closed:
            await queue.close(num_waiters=self._config.queue_config.num_workers)
        # One deadline for all of it; every backoff wait ends now and retries come at
        # short intervals until the deadline (an outage may have just ended).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.close_timeout
        self._begin_urgent()
        if self._discovery is not None and not self._discovery.done():
            # Discovery gets the deadline too: without it nothing can be sent.
            try:
                async with asyncio.timeout_at(deadline):
                    await asyncio.shield(self._discovery)
            except TimeoutError:
                self._discovery.cancel()
        spool = self._queue if isinstance(self._queue, SpoolQueue) else None
        if self._dispatcher is not None:
            left = await self._dispatcher.drain(
                max(0.0, deadline - loop.time()), count_as_dropped=spool is None
            )
            if left and spool is not None:
                logger.warning(
                    "closed with %d operation(s) undelivered after %.1fs; they stay in the "
                    "spool %s and are sent by the next client that opens it",
                    spool.pending(),
                    self._config.close_timeout,
                    spool.path,
                )
            elif left:
                logger.warning(
                    "closed with %d operation(s) undelivered after %.1fs",
                    left,
                    self._config.close_timeout,
                )
        if self._http is not None:
            await self._http.aclose()
        if spool is not None and self._custom_queue is None:
            spool.dispose()
        if self._failure is not None and not self._failure_seen:
            self._failure_seen = True
            raise self._refresh_failure()

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been delivered (or dropped).

        Args:
            timeout: The most seconds to wait; no limit when None.

        Returns:
            True when everything was delivered in time, False on timeout.
        """
        if self._dispatcher is None:
            return True
        # A backoff wait in progress ends now, and retries come at short intervals
        # while this waits: the API may have come back in the middle of the wait.
        self._begin_urgent()
        try:
            async with asyncio.timeout(timeout):
                if self._entry is not None:
                    await self._entry.settle()
                await self._dispatcher.wait_idle()
        except TimeoutError:
            return False
        finally:
            self._end_urgent()
        return True

    def statistics(self) -> DeliveryStatistics:
        """Return delivery counters: queued, in flight, sent, retried, dropped, refused
        by the API, and payload changes (truncated, unencodable values, mask errors)."""
        payloads = self._payloads.statistics()
        if self._dispatcher is None:
            size = self._queue.size() if self._queue is not None else 0
            delivery = DeliveryStatistics(size, 0, 0, 0, 0, 0, 0)
        else:
            delivery = self._dispatcher.statistics()
        return delivery._replace(
            truncated=payloads.truncated,
            unencodable=payloads.unencodable,
            mask_errors=payloads.mask_errors,
        )

    def _begin_urgent(self) -> None:
        self._probe_backoff.begin_urgent()
        if self._dispatcher is not None:
            self._dispatcher.begin_urgent()

    def _end_urgent(self) -> None:
        self._probe_backoff.end_urgent()
        if self._dispatcher is not None:
            self._dispatcher.end_urgent()

    @property
    def _initialized(self) -> bool:
        # Read by the published adapters: True between initialize() and close().
        return self._state == "open"

    @property
    def _termination_monitor(self) -> TerminationMonitor | None:
        # Watched by the published adapters (None before initialize() and after close()).
        return self._termination.monitor

    async def _fetch_instance(self, instance_id: str) -> Any:
        if self._http is None:
            raise ClientNotInitializedError(_NOT_INITIALIZED)
        return await self._http.agent_instances.get(instance_id, retry=False)

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
        first: object = agent_id
        if isinstance(first, dict):
            # Called in the published 0.5.x order: (agent_version, agent_schema_version,
            # agent_id, ...). The documented order has agent_id first; a dict there can
            # only mean the other order, so accept it.
            agent_id, agent_version, agent_schema_version = (
                cast("str | None", agent_schema_version),
                first,
                agent_version,
            )
        return InstanceCreation(
            self,
            {
                "agent_id": agent_id,
                "agent_version": agent_version,
                "agent_schema_version": agent_schema_version,
                "instance_id": instance_id,
                "external_schema_version_id": external_schema_version_id,
                "environment_id": environment_id,
                "purpose": purpose,
                "external_identifier": external_identifier,
            },
        )

    if hasattr(inspect, "markcoroutinefunction"):  # Python 3.12+
        # inspect.iscoroutinefunction() says True, as for the published SDK.
        create_agent_instance = inspect.markcoroutinefunction(create_agent_instance)

    async def _create_instance(
        self,
        *,
        agent_id: str | None,
        agent_version: dict[str, Any] | None,
        agent_schema_version: dict[str, Any] | None,
        instance_id: str | None,
        external_schema_version_id: str | None,
        environment_id: str | None,
        purpose: InstancePurpose | None,
        external_identifier: str | None,
    ) -> AgentInstanceHandle:
        manager = self._require_open()
        self._raise_if_failed()
        if agent_version is None:
            raise ValueError("agent_version is required (e.g. {'name': 'My Agent'})")
        if not isinstance(agent_version, dict):
            raise TypeError(f"agent_version must be a dict, got {type(agent_version).__name__}")
        if instance_id is not None:
            check_client_id(instance_id, "instance_id")
        schema_version = self._schema_version(
            agent_id, agent_schema_version, external_schema_version_id
        )
        version = dict(agent_version)
        version.setdefault("runtime_environment", build_runtime_environment(self._sdk_header_entry))
        if instance_id is None and self._learn_partition:
            instance_id = await self._register_for_partition(
                agent_id, version, schema_version, environment_id, purpose, external_identifier
            )
            if instance_id is not None:
                return self._track(AgentInstanceHandle(instance_id, self), schema_version)
        new_id = await manager.register(
            version,
            schema_version,
            agent_id=agent_id,
            instance_id=instance_id,
            environment_id=environment_id,
            purpose=purpose,
            external_identifier=external_identifier,
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

    def _schema_version(
        self,
        agent_id: str | None,
        given: dict[str, Any] | None,
        external_id: str | None,
    ) -> dict[str, Any]:
        if given is not None:
            if not isinstance(given, dict):
                raise TypeError(f"agent_schema_version must be a dict, got {type(given).__name__}")
            return given
        registry = self._config.schema_registry
        if registry is None and declared_span_types():
            # Only @trace span types: a registry of their permissive schemas.
            registry = self._traced_registry = self._traced_registry or SchemaRegistry()
        if registry is None:
            raise ValueError(
                "no agent_schema_version was given and no schema_registry is configured"
            )
        register_declared(registry)
        identifier = external_id or f"auto-{agent_id or 'deployment'}-{registry.fingerprint()}"
        version: dict[str, Any] = registry.to_agent_schema_version(identifier)
        return version

    async def _register_for_partition(
        self,
        agent_id: str | None,
        version: dict[str, Any],
        schema_version: dict[str, Any],
        environment_id: str | None,
        purpose: InstancePurpose | None,
        external_identifier: str | None,
    ) -> str | None:
        """Register once, awaited, to learn the id partition of an API that does not
        announce it. Returns the instance id, or None to fall back to a queued register.
        """
        self._learn_partition = False
        assert self._http is not None
        try:
            async with asyncio.timeout(self._config.startup_timeout or None):
                instance = await self._http.agent_instances.register(
                    agent_version=version,
                    agent_schema_version=schema_version,
                    agent_id=agent_id,
                    environment_id=environment_id,
                    purpose=purpose,
                    external_identifier=external_identifier,
                    idempotency_key=generate_idempotency_key(),
                    retry=False,
                )
        except Exception as error:
            if is_fatal(error):
                self._latch(error, None)
                self._raise_if_failed()
            logger.info("could not learn the id partition (%s); using partition 0", error)
            return None
        if is_pfid(instance.id):
            self._ids.set_partition(parse_pfid(instance.id).partition)
        return instance.id

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
            raise ClientNotInitializedError(_NOT_INITIALIZED)
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

    # -- the queue ----------------------------------------------------------------------

    def _default_queue(self) -> Queue[Operation]:
        qc = self._config.queue_config
        if self._config.spool_path is not None:
            return SpoolQueue(
                self._config.spool_path, qc.max_queue_size, put_timeout=qc.put_timeout
            )
        return InMemoryQueue(qc.max_queue_size, put_timeout=qc.put_timeout)

    async def _acknowledge(self, ops: list[Operation]) -> None:
        queue = self._queue
        if isinstance(queue, SpoolQueue):
            queue.ack(ops)

    def _offer(self, op: Operation) -> bool:
        """Queue ``op`` without awaiting if the queue has room; False: use ``_enqueue``."""
        if self._failure is not None:
            self._failure.dropped_operations += 1
            self._raise_if_failed()
        if self._generation != _fork_generation[0]:
            raise _forked()
        entry = self._entry
        if entry is not None and (entry.pending or _get_ident() != self._loop_thread):
            # Another thread (or what one emitted is still ahead of us): the safe way in.
            if self._state != "open":
                raise ClientNotInitializedError("the client is closed")
            entry.emit(op)
            return True
        put = self._put_nowait  # None for custom queues, and once the client closed
        if put is None:
            return False
        try:
            put(op)
        except QueueFullError:
            return False
        return True

    async def _enqueue(self, op: Operation) -> None:
        if self._failure is not None:
            self._failure.dropped_operations += 1
            self._raise_if_failed()
        if self._generation != _fork_generation[0]:
            raise _forked()
        queue = self._queue
        if queue is None or self._state == "new":
            raise ClientNotInitializedError(_NOT_INITIALIZED)
        if self._dispatcher is None:
            return  # disabled: a quiet no-op
        entry = self._entry
        if entry is not None and (entry.pending or _get_ident() != self._loop_thread):
            # Off the loop's thread this coroutine never suspends (the sync faces rely
            # on that), and on it nothing may overtake what other threads emitted.
            if self._state != "open":
                raise ClientNotInitializedError("the client is closed")
            entry.emit(op)
            return
        await self._put(op)

    def _emit_all(self, ops: list[Operation]) -> None:
        """Queue ``ops`` in order from any thread without waiting (the sync faces' way)."""
        self._check_can_queue()
        entry = self._entry
        if entry is None or self._state != "open":
            raise ClientNotInitializedError("the client is not initialized")
        if self._dispatcher is not None:
            entry.emit_all(ops)

    def _submit(self, ops: list[Operation]) -> int:
        """Queue ``ops`` in order from any thread, never waiting and never raising: the
        way in for bridges whose hooks must not fail (the OTel span processor).

        On the loop's own thread, with the entry idle, they go straight on the queue;
        otherwise (another thread, a full queue, something emitted still ahead) through
        the thread-safe entry, which keeps them in order behind what came first.

        Returns:
            How many were dropped: the client is not open, has failed or was forked, its
            loop is closed, or the entry's buffer is full (those are also counted in
            ``statistics().dropped``).
        """
        entry = self._entry
        if (
            entry is None
            or self._state != "open"
            or self._failure is not None
            or self._generation != _fork_generation[0]
        ):
            if self._failure is not None:
                self._failure.dropped_operations += len(ops)
            return len(ops)
        if self._dispatcher is None:
            return 0  # disabled: a quiet no-op
        put = self._put_nowait
        try:
            on_loop = put is not None and asyncio.get_running_loop() is entry.loop
        except RuntimeError:
            on_loop = False
        dropped = 0
        for op in ops:
            if on_loop and put is not None and not entry.pending:
                try:
                    put(op)
                    continue
                except QueueFullError:
                    pass  # the entry's pump waits for room, in order
            if not entry.emit(op):
                dropped += 1
        return dropped

    def _check_can_queue(self) -> None:
        if self._failure is not None:
            self._failure.dropped_operations += 1
            self._raise_if_failed()
        if self._generation != _fork_generation[0]:
            raise _forked()

    def _count_dropped(self, n: int) -> None:
        if self._dispatcher is not None:
            self._dispatcher.count_dropped(n)

    async def _put(self, op: Operation) -> None:
        """Put ``op`` on the queue, waiting up to ``put_timeout``; drop and count if full."""
        queue = self._queue
        assert queue is not None
        assert self._dispatcher is not None
        try:
            await queue.put(op)
        except QueueFullError:
            self._dispatcher.count_dropped()
            if not self._warned_full:
                self._warned_full = True
                logger.warning(
                    "the telemetry queue is full (%d operations); new operations are dropped "
                    "until there is room (this warning is logged once)",
                    self._config.queue_config.max_queue_size,
                )
        except QueueClosedError:
            raise ClientNotInitializedError("the client is closed") from None

    # -- failures and control -------------------------------------------------------------

    def _latch(self, error: Exception, op: Operation | None) -> None:
        if self._failure is None:
            operation_type = op.type.name if op is not None else None
            self._failure = PrefactorTelemetryFailureError(
                f"telemetry failed permanently: {error}",
                cause=error,
                operation_type=operation_type,
            )
            # Everything dropped from here on (including the failing request, which
            # the dispatcher counts right after this call) is the failure's toll.
            self._dropped_before_failure = self.statistics().dropped
        if self._dispatcher is not None:
            self._dispatcher.drop_everything()
        self._refresh_failure()

    def _refresh_failure(self) -> PrefactorTelemetryFailureError:
        failure = self._failure
        assert failure is not None
        if self._dispatcher is not None:
            dropped = self._dispatcher.statistics().dropped - self._dropped_before_failure
            failure.dropped_operations = max(failure.dropped_operations, dropped)
        return failure

    def _raise_if_failed(self) -> None:
        if self._failure is not None:
            self._failure_seen = True
            raise self._refresh_failure()

    def _mark_failure_seen(self) -> None:
        self._failure_seen = True

    def _on_control(self, instance_id: str, reason: str | None) -> None:
        self._termination.terminated(instance_id, reason)

    # -- discovery ------------------------------------------------------------------------

    async def _discover(self) -> None:
        """Ask the API what it supports; retry until it answers."""
        assert self._http is not None
        assert self._dispatcher is not None
        backoff = self._probe_backoff
        while True:
            try:
                info = await self._http.validate_token(retry=False)
            except Exception as error:
                if is_fatal(error):
                    logger.error("the Prefactor API rejected the client: %s", error)
                    self._latch(error, None)
                    self._dispatcher.configure(bulk=False)
                    return
                if is_permanent_http_error(error):
                    # An API without ping: send one request per operation.
                    logger.info("the Prefactor API has no ping (%s); not using bulk", error)
                    self._apply_capabilities({})
                    return
                delay = backoff.next_delay()
                logger.info(
                    "the Prefactor API is not answering yet (%s); retrying in %.1fs", error, delay
                )
                await backoff.wait(delay)
                continue
            self._apply_capabilities(info)
            return

    def _apply_capabilities(self, info: dict[str, Any]) -> None:
        assert self._dispatcher is not None
        caps = info.get("capabilities")
        if not isinstance(caps, dict):
            self._learn_partition = True
            self._dispatcher.configure(bulk=False)
            return
        actions = caps.get("bulk_actions")
        # Per action: what the server does not list goes in single requests.
        bulk = [a for a in actions if isinstance(a, str)] if isinstance(actions, list) else False
        partition = caps.get("pfid_partition")
        if isinstance(partition, int) and 0 <= partition <= MAX_PARTITION:
            self._ids.set_partition(partition)
        else:
            self._learn_partition = True
        max_items = caps.get("bulk_max_items")
        max_bytes = caps.get("bulk_max_bytes")
        self._dispatcher.configure(
            bulk=bulk,
            max_items=max_items if isinstance(max_items, int) else None,
            max_bytes=max_bytes if isinstance(max_bytes, int) else None,
        )

    # -- helpers --------------------------------------------------------------------------

    def _sdk_header(self) -> str:
        entry = (self._sdk_header_entry or "").strip()
        return f"{entry} {_CORE_SDK_ENTRY}" if entry else _CORE_SDK_ENTRY

    def _set_sdk_header_entry(self, sdk_header_entry: str | None) -> None:
        """Set the adapter's entry of the ``X-Prefactor-SDK`` header (replacing any)."""
        self._sdk_header_entry = sdk_header_entry
        self._termination.refuse_new_spans = sdk_header_entry is None
        if self._http is not None:
            self._http.sdk_header = self._sdk_header()

    def _require_open(self) -> AgentInstanceManager:
        if self._state != "open" or self._instance_manager is None:
            raise ClientNotInitializedError(_NOT_INITIALIZED)
        return self._instance_manager

    def _require_span_manager(self) -> SpanManager:
        if self._state != "open" or self._span_manager is None:
            raise ClientNotInitializedError(_NOT_INITIALIZED)
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

    @property
    def config(self) -> PrefactorCoreConfig:
        """The client's configuration."""
        return self._config

    def __repr__(self) -> str:
        url = self._config.http_config.api_url
        return f"<PrefactorCoreClient {self._state} api_url={url!r}>"
