"""SyncPrefactorCoreClient: the SDK for synchronous code, over the same engine.

For Flask and Django handlers, scripts, notebooks and Celery tasks. The delivery engine
(queue, dispatcher, HTTP) runs on a background thread with its own event loop; every call
on the agent's path does its local work on the caller's thread and hands operations to
the engine's thread-safe entry (a buffer append): it never waits for the loop or the
network, from any thread, even inside another running event loop. Only ``open``,
``flush`` and ``close`` wait, each for a bounded time.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import weakref
from collections.abc import Coroutine
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx

from prefactor_core._client_base import BaseClient, InstancePurpose, fork_generation
from prefactor_core._engine.dispatcher import DeliveryStatistics
from prefactor_core.client import PrefactorCoreClient
from prefactor_core.config import PrefactorCoreConfig
from prefactor_core.current import leave_instance
from prefactor_core.exceptions import ClientNotInitializedError, PrefactorTelemetryFailureError
from prefactor_core.managers.agent_instance import AgentInstanceHandle
from prefactor_core.span_context import FinishStatus
from prefactor_core.sync_span import SyncSpanContext

__all__ = ["SyncAgentInstanceHandle", "SyncPrefactorCoreClient"]

logger = logging.getLogger("prefactor_core")

T = TypeVar("T")
_GRACE = 5.0  # seconds on top of a configured deadline before a wait gives up
_CLIENTS: weakref.WeakSet[SyncPrefactorCoreClient] = weakref.WeakSet()


def _reset_locks_in_child() -> None:
    # A client's lock held by another thread at fork time would stay held in the child.
    for client in list(_CLIENTS):
        client._lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_locks_in_child)


def _run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends off the engine's thread, on this thread."""
    try:
        coro.send(None)
    except StopIteration as stop:
        value: T = stop.value
        return value
    coro.close()
    raise RuntimeError("internal error: a call on the agent's path had to wait")


class _Engine:
    """A ``PrefactorCoreClient`` running on its own thread and event loop."""

    def __init__(self, client: PrefactorCoreClient) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="prefactor-engine", daemon=True
        )
        self.generation = fork_generation()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run ``coro`` on the engine's loop and wait at most ``timeout`` for it."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    def start(self, timeout: float) -> None:
        self.thread.start()
        self.call(self.client.initialize(), timeout)

    def stop(self, timeout: float) -> None:
        try:
            self.call(self._shutdown(), timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout)
            if not self.thread.is_alive():
                self.loop.close()

    async def _shutdown(self) -> None:
        try:
            await self.client.close()
        finally:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()


class SyncAgentInstanceHandle:
    """One run of an agent, for synchronous code.

    ``start()`` and ``finish()`` each record once, whatever the number of calls. As a
    context manager the run is the current instance of the block (``@trace`` records into
    it) and finishes on exit if it has not: ``complete``, or ``failed`` when the block
    raised. ``start()`` also makes it the current instance, until ``finish()``.

    Example::

        with client.create_agent_instance(agent_id="my-agent", agent_version=v) as run:
            run.start()
            with run.span("agent:llm") as span:
                span.start({"model": "gpt-4"})
                span.complete({"response": "hi"})
    """

    __slots__ = ("_client", "_handle")

    def __init__(self, handle: AgentInstanceHandle, client: PrefactorCoreClient) -> None:
        self._handle = handle
        self._client = client

    @property
    def id(self) -> str:
        """The instance id."""
        return self._handle.id

    @property
    def termination_reason(self) -> str | None:
        """Why the platform terminated this run, once a response said so; else None."""
        return self._handle.termination_reason

    def start(self, timestamp: datetime | None = None) -> None:
        """Queue the start of the run and make it current. Later calls do nothing."""
        _run_now(self._handle.start(timestamp))

    def finish(self, status: FinishStatus = "complete", timestamp: datetime | None = None) -> None:
        """Queue the finish of the run with a terminal status. Later calls do nothing."""
        _run_now(self._handle.finish(status, timestamp))

    def record_quality(self, name: str, payload: dict[str, Any] | None = None) -> None:
        """Queue a named quality record for the run."""
        _run_now(self._handle.record_quality(name, payload))

    def span(
        self,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> SyncSpanContext:
        """Open a span in this run; use it with ``with`` (see ``SyncSpanContext``)."""
        ctx = self._client.span(self._handle.id, schema_name, parent_span_id, payload)
        return SyncSpanContext(ctx, self._client._emit_all, self._handle)

    def __enter__(self) -> SyncAgentInstanceHandle:
        self._handle._make_current()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        handle = self._handle
        if handle._finished:
            leave_instance(handle, handle._outer)
            return
        status: FinishStatus = "complete"
        if exc is not None:
            status = "cancelled" if isinstance(exc, asyncio.CancelledError) else "failed"
        try:
            self.finish(status)
        except PrefactorTelemetryFailureError:
            if exc is None:
                raise

    def __repr__(self) -> str:
        return f"<SyncAgentInstanceHandle id={self._handle.id!r}>"


class SyncPrefactorCoreClient(BaseClient):
    """Records agent runs and their spans from synchronous code.

    The same engine as ``PrefactorCoreClient`` (ordered, batched, retried, bounded
    delivery), run on a background thread. Calls on the agent's path only queue work,
    from any thread. At interpreter exit the client is closed (delivery bounded by
    ``close_timeout``); ``flush(timeout)`` delivers on demand (for serverless handlers).
    After ``os.fork()`` the child gets a fresh engine on its first call (instances opened
    before the fork belong to the parent and refuse with ``ClientNotInitializedError``);
    a client with a spool refuses in the child, since the spool belongs to the parent.

    Example::

        with SyncPrefactorCoreClient(config) as client:
            with client.create_agent_instance(agent_id="my-agent", agent_version=v) as run:
                run.start()
                answer = my_traced_agent("question")  # @trace functions record here

    Args:
        config: The client's configuration.
        sdk_header_entry: An adapter's ``name@version`` for the ``X-Prefactor-SDK`` header.
        transport: An httpx transport for the API (used on the engine's thread).
    """

    def __init__(
        self,
        config: PrefactorCoreConfig,
        sdk_header_entry: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(config, sdk_header_entry, transport)
        self._engine: _Engine | None = None
        self._lock = threading.Lock()
        _CLIENTS.add(self)

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> SyncPrefactorCoreClient:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except PrefactorTelemetryFailureError:
            if exc is None:
                raise

    def open(self) -> None:
        """Start the engine's thread and find out about the API.

        Waits at most ``config.startup_timeout`` for the API's first answer (an API that
        is down does not stop the agent).

        Raises:
            ClientNotInitializedError: If the client was closed.
        """
        with self._lock:
            if self._state == "closed":
                raise ClientNotInitializedError("the client was closed; make a new one")
            if self._state == "open":
                return
            self._start_engine()
            self._state = "open"
            atexit.register(self._at_exit)

    initialize = open

    def _start_engine(self) -> _Engine:
        client = PrefactorCoreClient(
            self._config, sdk_header_entry=self._sdk_header_entry, transport=self._transport
        )
        engine = _Engine(client)
        engine.start(self._config.startup_timeout + _GRACE)
        self._engine = engine
        return engine

    def close(self) -> None:
        """Finish what is open, deliver what is queued (bounded by ``close_timeout``),
        and stop the engine's thread. Closing twice does nothing.

        Raises:
            PrefactorTelemetryFailureError: If telemetry failed permanently and the error
                was not raised to the caller before.
        """
        # An API that never answered gets close_timeout for discovery and again for
        # delivery (see PrefactorCoreClient.close); the grace covers the rest.
        self._close(2 * self._config.close_timeout + _GRACE)

    def _close(self, wait: float) -> None:
        with self._lock:
            if self._state != "open":
                self._state = "closed"
                return
            self._state = "closed"
            atexit.unregister(self._at_exit)
            engine, self._engine = self._engine, None
        if engine is None or engine.generation != fork_generation():
            return  # a parent's engine, seen from a forked child: nothing of it runs here
        try:
            engine.stop(wait)
        except TimeoutError:
            logger.warning("the Prefactor engine did not stop in time; giving up on it")

    def _at_exit(self) -> None:
        # Exit is held up by at most about close_timeout, whatever state the API is in;
        # what is not delivered by then is lost (or stays in the spool).
        try:
            self._close(self._config.close_timeout + 1.0)
        except Exception as error:  # at exit there is nobody left to raise to
            logger.warning("closing the Prefactor client at exit: %s", error)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has been delivered (or dropped).

        Args:
            timeout: The most seconds to wait; no limit when None.

        Returns:
            True when everything was delivered in time, False on timeout.
        """
        engine = self._require_engine()
        wait = None if timeout is None else timeout + _GRACE
        try:
            return engine.call(engine.client.flush(timeout), wait)
        except TimeoutError:
            return False

    def statistics(self) -> DeliveryStatistics:
        """Return delivery counters: queued, in flight, sent, retried, dropped, ..."""
        engine = self._engine
        if engine is None:
            return DeliveryStatistics(0, 0, 0, 0, 0, 0, 0)
        return engine.client.statistics()

    # -- instances --------------------------------------------------------------------------

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
    ) -> SyncAgentInstanceHandle:
        """Register a new agent instance (one run) and return its handle at once.

        The arguments are those of ``PrefactorCoreClient.create_agent_instance``.

        Raises:
            ClientNotInitializedError: If the client is not open.
            TypeError, ValueError: For malformed arguments.
            PrefactorTelemetryFailureError: If telemetry failed permanently.
        """
        engine = self._require_engine()
        client = engine.client
        coro = client._create_instance(
            self._instance_request(
                agent_id,
                agent_version,
                agent_schema_version,
                instance_id=instance_id,
                external_schema_version_id=external_schema_version_id,
                environment_id=environment_id,
                purpose=purpose,
                external_identifier=external_identifier,
            )
        )
        if client._learn_partition:
            # An API that does not announce its id partition: the one awaited register.
            handle = engine.call(coro, self._config.startup_timeout + _GRACE)
        else:
            handle = _run_now(coro)
        return SyncAgentInstanceHandle(handle, client)

    def _require_engine(self) -> _Engine:
        engine = self._engine
        if self._state != "open" or engine is None:
            raise ClientNotInitializedError("the client is not open")
        if engine.generation != fork_generation():
            engine = self._restart_after_fork()
        return engine

    def _restart_after_fork(self) -> _Engine:
        """Give a forked child its own engine (the parent's thread does not exist here)."""
        with self._lock:
            engine = self._engine
            if engine is not None and engine.generation == fork_generation():
                return engine
            if self._config.spool_path is not None:
                raise ClientNotInitializedError(
                    "this client was created before os.fork() and its spool belongs to the "
                    "parent; create a new client (with its own spool_path) in the child"
                )
            self._engine = None
            return self._start_engine()
