"""A fake sender, a held clock and operation builders for testing the dispatcher alone.

No HTTP and no server: the ``FakeSender`` records each request the dispatcher makes
(its path and the idempotency keys of its items, in order), answers it as a Prefactor API
would (every item a success) unless the test's ``plan`` says otherwise, and can hold
requests in flight until the test releases them. Idempotency keys name what they stand
for (``"A:create:s1"``: instance A, span s1's create), so a test reads the order of
delivery straight from ``sender.batches()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from prefactor_core import QueueConfig
from prefactor_core._engine.dispatcher import Dispatcher
from prefactor_core.operations import Operation, OperationType
from prefactor_core.queue import InMemoryQueue

BULK = "/api/v1/bulk"
DEADLINE = 10.0
"""Seconds a test waits for something the dispatcher must do before it fails."""

Answer = dict[str, Any] | Exception | None
"""What a plan answers: a JSON object, an error to raise, or None for all-success."""


@dataclass
class Request:
    """One request as the dispatcher sent it."""

    path: str
    items: list[dict[str, Any]]
    size: int
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def keys(self) -> list[str]:
        return [str(item.get("idempotency_key")) for item in self.items]


def success(request: Request) -> dict[str, Any]:
    """What the API answers when every item is stored."""
    if request.path != BULK:
        return {}
    return {"outputs": {key: {"status": "success"} for key in request.keys}}


def item_error(code: str, message: str = "refused") -> dict[str, Any]:
    """A bulk output for an item the API refused."""
    return {"status": "error", "code": code, "message": message}


class FakeSender:
    """The dispatcher's sender, played by the test (see the module docstring).

    Args:
        plan: Decides the answer to each request from (request, index): a JSON object,
            an exception to raise, or None (everything stored).
        hold: Decides which requests wait in flight until ``release()``; none by default.
    """

    def __init__(
        self,
        plan: Callable[[Request, int], Answer] | None = None,
        *,
        hold: Callable[[Request], bool] | None = None,
    ) -> None:
        self.plan = plan or (lambda _request, _index: None)
        self.hold = hold
        self.requests: list[Request] = []
        self.in_flight = 0
        self.peak = 0
        self._arrived = asyncio.Event()

    async def post(self, path: str, body: bytes) -> dict[str, Any]:
        data = orjson.loads(body)
        items = data["items"] if path == BULK else [data.get("details", data)]
        request = Request(path, items, len(body))
        index = len(self.requests)
        self.requests.append(request)
        self._arrived.set()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.hold is not None and self.hold(request):
                await request.released.wait()
            answer = self.plan(request, index)
        finally:
            self.in_flight -= 1
        if isinstance(answer, Exception):
            raise answer
        return success(request) if answer is None else answer

    def release(self) -> None:
        """Answer every held request now, and hold no more."""
        self.hold = None
        for request in self.requests:
            request.released.set()

    async def wait_for(self, count: int) -> None:
        """Wait until ``count`` requests have been made."""
        async with asyncio.timeout(DEADLINE):
            while len(self.requests) < count:
                self._arrived.clear()
                await self._arrived.wait()

    def batches(self) -> list[list[str]]:
        """The idempotency keys of each request's items, request by request."""
        return [request.keys for request in self.requests]

    def delivered(self) -> list[str]:
        """Every key the API received, in order (retries included)."""
        return [key for request in self.requests for key in request.keys]


class HeldSleep:
    """The dispatcher's sleep, held by the test: waits are recorded; a held wait lasts
    until the dispatcher cuts it short (``begin_urgent``) or is stopped."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.delays: list[float] = []
        self.requested = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        self.requested.set()
        if self.hold:
            await asyncio.Event().wait()
        await asyncio.sleep(0)


async def quiesce() -> None:
    """Let the dispatcher's tasks run until they block (no time passes): for checking
    that something did *not* happen."""
    for _ in range(50):
        await asyncio.sleep(0)


class Harness:
    """A dispatcher on an in-memory queue with a fake sender and a held sleep.

    Queue options default to no lingering and slow backoff (the sleep is the test's, so
    no time passes); ``bulk`` is passed to ``configure`` at start, ``None`` to leave the
    dispatcher unconfigured.
    """

    def __init__(
        self,
        sender: FakeSender,
        *,
        bulk: bool | None = True,
        sleep: HeldSleep | None = None,
        queue: InMemoryQueue[Operation] | None = None,
        **options: Any,
    ) -> None:
        self.sender = sender
        self.sleep = sleep or HeldSleep()
        self.queue: InMemoryQueue[Operation] = InMemoryQueue() if queue is None else queue
        self.failures: list[tuple[Exception, Operation]] = []
        self.terminated: list[tuple[str, str | None]] = []
        config = {"batch_linger": 0.0, "retry_delay_base": 1.0, "max_retry_delay": 30.0}
        config.update(options)
        self.dispatcher = Dispatcher(
            self.queue,
            sender,
            QueueConfig(**config),
            on_permanent_failure=lambda error, op: self.failures.append((error, op)),
            on_control=lambda instance, reason: self.terminated.append((instance, reason)),
            sleep=self.sleep,
        )
        self.dispatcher.start()
        if bulk is not None:
            self.dispatcher.configure(bulk=bulk)

    def put(self, *ops: Operation) -> None:
        for op in ops:
            self.queue.put_nowait(op)

    async def read_all(self) -> None:
        """Let the reader move everything queued into the lanes (a piece per turn of the
        loop), then let the tasks run until they block."""
        for _ in range(100_000):
            if not self.queue.size():
                break
            await asyncio.sleep(0)
        await quiesce()

    async def put_behind(self, first: Operation, then: Operation) -> None:
        """Queue ``first``, wait until its request is sent (the sender holds it), queue
        ``then`` behind it, and let the sender answer."""
        self.put(first)
        await self.sender.wait_for(1)
        self.put(then)
        await quiesce()
        self.sender.release()

    async def finish(self) -> int:
        """Close the queue and drain; return how many operations were not delivered."""
        await self.queue.close()
        return await self.dispatcher.drain(DEADLINE)


# -- operations, keyed by what they are ---------------------------------------------------


def register(instance: str) -> Operation:
    body = {"agent_id": "agent", "agent_version": {"name": "v", "external_identifier": "1"}}
    return _op(OperationType.REGISTER_AGENT_INSTANCE, instance, "register", body=body)


def start(instance: str) -> Operation:
    return _op(OperationType.START_AGENT_INSTANCE, instance, "start", timestamp=1.0)


def finish_instance(instance: str) -> Operation:
    return _op(OperationType.FINISH_AGENT_INSTANCE, instance, "finish", status="complete")


def quality(instance: str, name: str = "score") -> Operation:
    return _op(OperationType.RECORD_QUALITY, instance, f"quality:{name}", name=name)


def create(instance: str, span: str, parent: str | None = None, **metadata: Any) -> Operation:
    return _op(
        OperationType.CREATE_SPAN,
        instance,
        f"create:{span}",
        metadata,
        span_id=span,
        parent_span_id=parent,
        schema_name="agent:step",
        status="active",
        payload_json='{"n":1}',
        started_at=1.0,
    )


def finish(instance: str, span: str) -> Operation:
    return _op(
        OperationType.FINISH_SPAN,
        instance,
        f"finish:{span}",
        span_id=span,
        status="complete",
        result_json='{"ok":true}',
        timestamp=2.0,
    )


def _op(
    kind: OperationType,
    instance: str,
    what: str,
    metadata: dict[str, Any] | None = None,
    **payload: Any,
) -> Operation:
    return Operation(
        kind, {"instance_id": instance, **payload}, 0.0, f"{instance}:{what}", metadata
    )
