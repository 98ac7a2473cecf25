"""@trace against the real server (in-process): every function kind, every boundary."""

from __future__ import annotations

import asyncio
import gc
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from prefactor_core import (
    ContextThreadPoolExecutor,
    current_instance,
    trace,
    with_current_context,
)
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import spans_of


@trace("agent:tool")
def add(a: int, b: int = 2) -> int:
    return a + b


@trace("agent:tool")
async def aadd(a: int, b: int = 2) -> int:
    await asyncio.sleep(0)
    return a + b


@trace("agent:retrieval")
def count(n: int) -> Iterator[int]:
    yield from range(n)


@trace("agent:retrieval", reduce=sum)
async def acount(n: int) -> AsyncIterator[int]:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


@trace("agent:step")
def boom(message: str) -> None:
    raise KeyError(message)


@trace
def plain_named(x: int) -> dict[str, int]:
    return {"doubled": x * 2}


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


def only(rows: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [row for row in rows if row["schema_name"] == name]


async def run(make_client: ClientFactory, server: LocalServer, body: Any) -> list[dict[str, Any]]:
    """Run ``body(instance)`` inside an instance; return the spans the server stored."""
    async with asyncio.timeout(30):
        async with (
            make_client() as client,
            client.create_agent_instance(
                agent_id="traced", agent_version=AGENT_VERSION
            ) as instance,
        ):
            await instance.start()
            await body(instance)
        return await spans_of(server, instance.id)


async def test_every_function_kind_records_params_and_results(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Sync, async, generator and async generator calls each store one complete span."""

    async def body(_instance: Any) -> None:
        assert add(1) == 3
        assert await aadd(1, b=5) == 6
        assert list(count(3)) == [0, 1, 2]
        assert [i async for i in acount(4)] == [0, 1, 2, 3]

    rows = await run(make_client, server, body)
    tools = sorted(only(rows, "agent:tool"), key=lambda r: r["result_payload"]["output"])
    assert [(r["payload"], r["result_payload"], r["status"]) for r in tools] == [
        ({"a": 1, "b": 2}, {"output": 3}, "complete"),
        ({"a": 1, "b": 5}, {"output": 6}, "complete"),
    ]
    streams = sorted(only(rows, "agent:retrieval"), key=lambda r: r["payload"]["n"])
    assert [(r["payload"], r["result_payload"]) for r in streams] == [
        ({"n": 3}, {"output": [0, 1, 2]}),
        ({"n": 4}, {"output": 6}),
    ]


async def test_default_span_type_is_registered_without_ceremony(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A bare @trace gets a ``module:qualname`` span type the server accepts."""

    async def body(_instance: Any) -> None:
        assert plain_named(4) == {"doubled": 8}

    [row] = await run(make_client, server, body)
    assert row["schema_name"] == f"{__name__}:plain_named"
    assert row["result_payload"] == {"doubled": 8}
    assert row["status"] == "complete"


async def test_nesting_mixes_with_hand_written_spans(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Decorated calls nest under hand-written spans and under each other."""

    @trace("agent:plan")
    async def plan(goal: str) -> str:
        add(2, 3)
        return goal.upper()

    async def body(instance: Any) -> None:
        async with instance.span("agent:step") as step:
            await step.start({"n": 1})
            assert await plan("go") == "GO"

    rows = await run(make_client, server, body)
    [step] = only(rows, "agent:step")
    [planned] = only(rows, "agent:plan")
    [tool] = only(rows, "agent:tool")
    assert step["parent_span_id"] is None
    assert planned["parent_span_id"] == step["id"]
    assert tool["parent_span_id"] == planned["id"]
    assert planned["payload"] == {"goal": "go"}
    assert planned["result_payload"] == {"output": "GO"}


async def test_methods_drop_self_and_cls(make_client: ClientFactory, server: LocalServer) -> None:
    """Methods, classmethods and staticmethods record their arguments without self/cls."""

    class Agent:
        @trace("agent:tool")
        def act(self, x: int) -> int:
            return x + 1

        @trace("agent:tool")
        @classmethod
        def build(cls, y: int) -> int:
            return y * 10

        @staticmethod
        @trace("agent:tool")
        def helper(z: int) -> int:
            return z

    async def body(_instance: Any) -> None:
        assert Agent().act(1) == 2
        assert Agent.build(2) == 20
        assert Agent.helper(7) == 7

    rows = await run(make_client, server, body)
    assert sorted(str(r["payload"]) for r in rows) == ["{'x': 1}", "{'y': 2}", "{'z': 7}"]


async def test_exceptions_fail_the_span_and_propagate_unchanged(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A raising call is stored as failed with type and message; the caller gets the same
    exception object."""
    caught: list[BaseException] = []

    async def body(_instance: Any) -> None:
        try:
            boom("missing")
        except KeyError as error:
            caught.append(error)

    [row] = await run(make_client, server, body)
    assert isinstance(caught[0], KeyError)
    assert caught[0].args == ("missing",)
    assert row["status"] == "failed"
    assert row["result_payload"] == {"error": {"type": "KeyError", "message": "'missing'"}}


async def test_cancellation_marks_the_span_cancelled(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A task cancelled inside a decorated coroutine stores a cancelled span."""
    entered = asyncio.Event()

    @trace("agent:llm")
    async def slow() -> None:
        entered.set()
        await asyncio.Event().wait()

    async def body(_instance: Any) -> None:
        task = asyncio.create_task(slow())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    [row] = await run(make_client, server, body)
    assert row["status"] == "cancelled"
    assert row["result_payload"]["error"]["type"] == "CancelledError"


async def test_generators_closed_early_finish_their_spans(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """break, close(), aclose() and garbage collection each finish the span with what was
    yielded so far; none stays active."""

    async def body(_instance: Any) -> None:
        for item in count(10):
            if item == 1:
                break
        stream = count(10)
        next(stream)
        stream.close()
        agen = acount(10)
        await agen.__anext__()
        await agen.aclose()
        abandoned = count(10)
        next(abandoned)
        del abandoned
        gc.collect()

    rows = await run(make_client, server, body)
    assert len(rows) == 4
    assert {row["status"] for row in rows} == {"complete"}
    outputs = sorted(str(row["result_payload"]["output"]) for row in rows)
    assert outputs == ["0", "[0, 1]", "[0]", "[0]"]


async def test_generator_errors_fail_the_span(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """An exception inside a generator fails its span and reaches the consumer."""

    @trace("agent:retrieval")
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("bad page")

    async def body(_instance: Any) -> None:
        with pytest.raises(ValueError, match="bad page"):
            list(broken())

    [row] = await run(make_client, server, body)
    assert row["status"] == "failed"
    assert row["result_payload"]["error"] == {"type": "ValueError", "message": "bad page"}


async def test_generator_consumed_in_another_task_and_thread_stays_in_its_tree(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A stream made in one span and consumed by another task or a thread nests where it
    was made, its children nest under it, and no contextvars error is raised."""

    @trace("agent:retrieval")
    def pages() -> Iterator[int]:
        for i in range(2):
            yield add(i, 0)

    @trace("agent:retrieval")
    async def apages() -> AsyncIterator[int]:
        for i in range(2):
            yield await aadd(i, 0)

    async def body(instance: Any) -> None:
        async with instance.span("agent:step") as step:
            await step.start({})
            sync_stream = pages()
            async_stream = apages()
        # Consumed after the span closed, elsewhere.
        assert await asyncio.to_thread(list, sync_stream) == [0, 1]

        async def consume() -> list[int]:
            return [i async for i in async_stream]

        assert await asyncio.create_task(consume()) == [0, 1]

    rows = await run(make_client, server, body)
    [step] = only(rows, "agent:step")
    streams = only(rows, "agent:retrieval")
    assert [s["parent_span_id"] for s in streams] == [step["id"], step["id"]]
    stream_ids = {s["id"] for s in streams}
    tools = only(rows, "agent:tool")
    assert len(tools) == 4
    assert {t["parent_span_id"] for t in tools} == stream_ids
    assert {r["status"] for r in rows} == {"complete"}


async def test_context_crosses_tasks_gather_to_thread_and_pools(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """create_task, gather, to_thread, ContextThreadPoolExecutor, with_current_context and
    run_in_executor all nest under the calling span."""

    @trace("agent:plan")
    async def fan_out() -> None:
        await asyncio.create_task(aadd(1))
        await asyncio.gather(aadd(2), aadd(3))
        await asyncio.to_thread(add, 4)
        with ContextThreadPoolExecutor(max_workers=2) as pool:
            assert list(pool.map(add, [5, 6])) == [7, 8]
            await asyncio.get_running_loop().run_in_executor(pool, add, 7)
        with ThreadPoolExecutor(max_workers=2) as plain:
            bound = with_current_context(add)
            assert list(plain.map(bound, [8, 9])) == [10, 11]
        thread = threading.Thread(target=with_current_context(add), args=(10,))
        thread.start()
        await asyncio.to_thread(thread.join)

    async def body(_instance: Any) -> None:
        await fan_out()

    rows = await run(make_client, server, body)
    [planned] = only(rows, "agent:plan")
    tools = only(rows, "agent:tool")
    assert sorted(t["payload"]["a"] for t in tools) == list(range(1, 11))
    assert {t["parent_span_id"] for t in tools} == {planned["id"]}
    assert {r["status"] for r in rows} == {"complete"}


async def test_outside_an_instance_functions_run_unchanged(
    make_client: ClientFactory, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """No instance: results, generators and errors are the function's own; nothing is
    recorded and nothing logged."""
    assert current_instance() is None
    assert add(1) == 3
    assert await aadd(2) == 4
    assert list(count(2)) == [0, 1]
    assert [i async for i in acount(2)] == [0, 1]
    with pytest.raises(KeyError):
        boom("x")
    assert caplog.records == []
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="idle", agent_version=AGENT_VERSION)
        # Created but neither started nor entered: not current.
        assert add(1) == 3
        await instance.finish()
    assert await spans_of(server, instance.id) == []


async def test_capture_options_and_hooks(make_client: ClientFactory, server: LocalServer) -> None:
    """capture_input/capture_output turn recording off; process_inputs/process_outputs
    reshape what is recorded."""

    @trace("agent:llm", capture_input=False, capture_output=False)
    def secret(password: str) -> str:
        return password[::-1]

    @trace(
        "agent:tool",
        process_inputs=lambda params: {"q": params["query"][:3]},
        process_outputs=lambda value: {"n": len(value)},
    )
    def search(query: str) -> list[str]:
        return [query, query]

    async def body(_instance: Any) -> None:
        assert secret("hunter2") == "2retnuh"
        assert search("longquery") == ["longquery", "longquery"]

    rows = await run(make_client, server, body)
    [llm] = only(rows, "agent:llm")
    [tool] = only(rows, "agent:tool")
    assert llm["payload"] == {}
    assert llm["result_payload"] in (None, {})
    assert tool["payload"] == {"q": "lon"}
    assert tool["result_payload"] == {"n": 2}


async def test_finished_instance_is_no_longer_current(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """After finish(), calls run unchanged and record nothing more."""
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="f", agent_version=AGENT_VERSION)
        await instance.start()
        assert current_instance() is instance
        add(1)
        await instance.finish()
        assert current_instance() is None
        add(2)
    rows = await spans_of(server, instance.id)
    assert [row["payload"] for row in rows] == [{"a": 1, "b": 2}]


def test_trace_refuses_what_is_not_a_function() -> None:
    """A non-callable or an empty span type is a clear error at decoration time."""
    with pytest.raises(TypeError, match="span type must be a string"):
        trace(42)  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="non-empty"):
        trace("")
    with pytest.raises(TypeError, match="needs a function"):
        trace("agent:tool")(42)  # type: ignore[type-var]


async def test_only_traced_types_need_no_registry(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A client without a schema registry builds one from the @trace span types."""
    async with (
        make_client(registry=None) as client,
        client.create_agent_instance(agent_id="bare", agent_version=AGENT_VERSION) as run,
    ):
        await run.start()
        add(5)
    [row] = await spans_of(server, run.id)
    assert row["schema_name"] == "agent:tool"
    assert row["result_payload"] == {"output": 7}


async def test_arguments_of_every_shape_are_bound_by_name(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """*args, **kwargs, keyword-only parameters and builtins without a signature."""

    @trace("agent:tool")
    def join(*items: str, sep: str = ",", **extra: int) -> str:
        return sep.join(items)

    @trace("agent:tool")
    def keyword_only(a: int, *, b: int = 1) -> int:
        return a + b

    traced_len = trace("agent:tool")(len)  # positional-only
    traced_max = trace("agent:tool")(max)  # no signature at all

    async def body(_instance: Any) -> None:
        assert join("x", "y", sep="-", n=1) == "x-y"
        assert keyword_only(1, b=5) == 6
        assert traced_len([1, 2]) == 2
        assert traced_max(1, 3) == 3

    rows = await run(make_client, server, body)
    payloads = sorted((r["payload"] for r in rows), key=str)
    assert {"items": ["x", "y"], "sep": "-", "extra": {"n": 1}} in payloads
    assert {"a": 1, "b": 5} in payloads
    assert {"obj": [1, 2]} in payloads
    assert {"args": [1, 3], "kwargs": {}} in payloads


async def test_a_registered_span_type_keeps_its_schema(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """@trace on a type the registry knows uses that registration (its title and summary
    template), not the permissive one."""

    @trace("agent:llm")
    def llm(model: str, prompt: str) -> dict[str, str]:
        return {"response": prompt.upper()}

    async def body(_instance: Any) -> None:
        llm("gpt-4", "hi")

    [row] = await run(make_client, server, body)
    assert row["schema_title"] == "LLM Call"
    assert row["summary"] == "gpt-4: hi → HI"


async def test_a_type_missing_from_the_schema_version_is_skipped_not_fatal(
    make_client: ClientFactory, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """An instance whose explicit schema version lacks the traced type: the call runs
    unchanged, a warning is logged once, and the run's other spans are still delivered."""
    schema = {
        "external_identifier": "only-plan",
        "span_type_schemas": [{"name": "agent:plan", "params_schema": {"type": "object"}}],
    }
    async with make_client() as client:
        async with client.create_agent_instance(
            agent_id="explicit", agent_version=AGENT_VERSION, agent_schema_version=schema
        ) as run:
            await run.start()
            assert add(1) == 3
            assert add(2) == 4
            async with run.span("agent:plan") as plan:
                await plan.start({})
        assert await client.flush(30)
    rows = await spans_of(server, run.id)
    assert [r["id"] for r in rows] == [plan.id]
    warnings = [r for r in caplog.records if "not in the instance's schema version" in r.message]
    assert len(warnings) == 1
