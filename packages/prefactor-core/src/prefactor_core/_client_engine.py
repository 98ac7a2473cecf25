"""The async client's engine lifecycle: start it, discover the API, flush, stop it.

``EngineClient`` is the third layer of ``PrefactorCoreClient`` (over ``QueueingClient``
and ``BaseClient``): it owns the HTTP client, the dispatcher and its entry, the id
factory and the start-up probe. ``_start_engine`` opens them and waits (at most
``startup_timeout``) for discovery (``_engine/discovery.py``), whose ``Capabilities``
it applies; ``_stop_engine`` drains within ``close_timeout`` and releases them. The
public methods that make instances and spans are ``PrefactorCoreClient``'s.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx

from prefactor_core._client_base import InstanceRequest
from prefactor_core._client_queue import NOT_INITIALIZED, QueueingClient, _get_ident
from prefactor_core._engine.discovery import Capabilities, discover, register_learning_partition
from prefactor_core._engine.dispatcher import DeliveryStatistics, Dispatcher
from prefactor_core._engine.entry import EngineEntry
from prefactor_core._engine.ids import IdFactory
from prefactor_core._engine.pacing import Pacer
from prefactor_core._engine.rejection import is_fatal
from prefactor_core._engine.retry import Backoff, Sleep
from prefactor_core._engine.sender import HttpSender
from prefactor_core._engine.taps import Taps
from prefactor_core._payload import PayloadEncoder
from prefactor_core.config import PrefactorCoreConfig
from prefactor_core.exceptions import ClientNotInitializedError
from prefactor_core.monitoring.termination_monitor import TerminationMonitor
from prefactor_core.monitoring.tracker import TerminationTracker
from prefactor_core.operations import Operation
from prefactor_core.queue._spans import span_putter
from prefactor_core.queue.base import Queue
from prefactor_core.queue.memory import InMemoryQueue
from prefactor_core.queue.spool import SpoolQueue
from prefactor_core.utils import generate_idempotency_key
from prefactor_http import PrefactorHttpClient

__all__ = ["EngineClient"]

logger = logging.getLogger("prefactor_core")


def _discard(_op: Operation) -> None:
    """The queue of a disabled client."""


async def _discard_async(_op: Operation) -> None:
    """The awaited queue of a disabled client."""


class EngineClient(QueueingClient):
    """The delivery engine of ``PrefactorCoreClient``: HTTP, dispatcher, discovery.

    Its arguments are ``PrefactorCoreClient``'s.
    """

    def __init__(
        self,
        config: PrefactorCoreConfig,
        queue: Queue[Operation] | None,
        sdk_header_entry: str | None,
        transport: httpx.AsyncBaseTransport | None,
        sleep: Sleep | None,
    ) -> None:
        super().__init__(config, queue, sdk_header_entry, transport)
        self._ids = IdFactory()
        self._http: PrefactorHttpClient | None = None
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
        self._termination = TerminationTracker()
        self._termination.refuse_new_spans = sdk_header_entry is None
        # Observers of the operations the engine takes in (the OpenTelemetry mirror).
        self._taps = Taps()

    async def _start_engine(self) -> None:
        """Open the HTTP client, start the dispatcher, and wait for discovery (bounded)."""
        config = self._config
        qc = config.queue_config
        self._loop_thread = _get_ident()
        if not config.enabled:
            self._put_nowait = _discard
            self._entry = EngineEntry(
                asyncio.get_running_loop(), _discard, _discard_async, lambda _n: None, 0
            )
            return
        if isinstance(self._queue, InMemoryQueue):
            self._put_nowait = self._queue.put_nowait
            self._put_span = span_putter(self._queue)
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
        assert self._queue is not None
        pacer = Pacer()  # the engine's turns on this loop, sending included
        self._dispatcher = Dispatcher(
            self._queue,
            HttpSender(self._http, pacer),
            qc,
            on_permanent_failure=self._latch,
            on_control=self._on_control,
            on_delivered=self._acknowledge if isinstance(self._queue, SpoolQueue) else None,
            sleep=self._sleep,
            taps=self._taps,
            pacer=pacer,
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

    async def _stop_engine(self) -> None:
        """Deliver what is left within ``close_timeout``, then release the engine."""
        if self._entry is not None:
            await self._entry.close()  # what other threads emitted goes before the end
        self._state = "closed"
        self._termination.close()
        self._put_nowait = None
        self._put_span = None
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
            raise ClientNotInitializedError(NOT_INITIALIZED)
        return await self._http.agent_instances.get(instance_id, retry=False)

    def _on_control(self, instance_id: str, reason: str | None) -> None:
        self._termination.terminated(instance_id, reason)

    async def _discover(self) -> None:
        """Ask the API what it supports (retrying until it answers) and apply it."""
        assert self._http is not None
        assert self._dispatcher is not None
        try:
            capabilities = await discover(self._http, self._probe_backoff)
        except Exception as error:  # only a fatal one: discover retries the others
            logger.error("the Prefactor API rejected the client: %s", error)
            self._latch(error, None)
            self._dispatcher.configure(bulk=False)
            return
        self._apply_capabilities(capabilities)

    def _apply_capabilities(self, capabilities: Capabilities) -> None:
        assert self._dispatcher is not None
        if capabilities.partition is None:
            self._learn_partition = True
        else:
            self._ids.set_partition(capabilities.partition)
        self._dispatcher.configure(
            bulk=capabilities.bulk_actions,  # per action: the rest go in single requests
            max_items=capabilities.bulk_max_items,
            max_bytes=capabilities.bulk_max_bytes,
        )

    async def _register_for_partition(
        self, request: InstanceRequest, version: dict[str, Any], schema_version: dict[str, Any]
    ) -> str | None:
        """Register once, awaited, to learn the id partition of an API that does not
        announce it. Returns the instance id, or None to fall back to a queued register.
        """
        self._learn_partition = False
        assert self._http is not None
        try:
            async with asyncio.timeout(self._config.startup_timeout or None):
                instance_id, partition = await register_learning_partition(
                    self._http,
                    agent_version=version,
                    agent_schema_version=schema_version,
                    agent_id=request.agent_id,
                    environment_id=request.environment_id,
                    purpose=request.purpose,
                    external_identifier=request.external_identifier,
                    idempotency_key=generate_idempotency_key(),
                )
        except Exception as error:
            if is_fatal(error):
                self._latch(error, None)
                self._raise_if_failed()
            logger.info("could not learn the id partition (%s); using partition 0", error)
            return None
        if partition is not None:
            self._ids.set_partition(partition)
        return instance_id

    def _set_sdk_header_entry(self, sdk_header_entry: str | None) -> None:
        """Set the adapter's entry of the ``X-Prefactor-SDK`` header (replacing any)."""
        self._sdk_header_entry = sdk_header_entry
        self._termination.refuse_new_spans = sdk_header_entry is None
        if self._http is not None:
            self._http.sdk_header = self._sdk_header()
