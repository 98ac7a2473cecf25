"""Agent runs through the published adapters, the same code for both cores.

``python scenarios.py NAME API_URL TOKEN`` runs one scenario against a Prefactor API and
prints one JSON line: the instance id and what the run returned. tests/adapters runs it
with our interpreter (the published adapters installed over our core) and with
``.venv-published`` (the same adapters on the published core), then reads both runs back
through the read API and compares them.

Everything is deterministic: a scripted chat model that asks for two tool calls and then
answers, and two tools that compute.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypedDict

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import BaseTool, StructuredTool, tool
from langgraph.graph import END, START, StateGraph
from platform_control import terminate_and_wait
from prefactor_langchain import (
    PrefactorCallbackHandler,
    PrefactorMiddleware,
    register_langchain_schemas,
)

from prefactor_core import (
    PrefactorCoreClient,
    PrefactorCoreConfig,
    PrefactorTerminatedError,
    SchemaRegistry,
)
from prefactor_http.config import HttpClientConfig

AGENT_ID = "adapter-agent"
QUESTION = "What is (2 + 3) * 4?"


class ScriptedChatModel(GenericFakeChatModel):
    """A chat model that plays back fixed replies; tools bound to it change nothing."""

    model_name: str = "scripted-model"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self


def _replies() -> Iterator[BaseMessage]:
    yield AIMessage(
        content="",
        id="reply-1",
        tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "call-add"}],
    )
    yield AIMessage(
        content="",
        id="reply-2",
        tool_calls=[{"name": "multiply", "args": {"a": 5, "b": 4}, "id": "call-multiply"}],
    )
    yield AIMessage(content="(2 + 3) * 4 = 20", id="reply-3")


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


def _agent(middleware: PrefactorMiddleware, tools: Sequence[BaseTool] = (add, multiply)) -> Any:
    return create_agent(
        model=ScriptedChatModel(messages=_replies()),
        tools=list(tools),
        middleware=[middleware],
    )


def _final_answer(state: dict[str, Any]) -> str:
    return str(state["messages"][-1].content)


async def _invoke(agent: Any, sync: bool, middleware: PrefactorMiddleware) -> str:
    question = {"messages": [HumanMessage(content=QUESTION, id="question")]}
    if not sync:
        return _final_answer(await agent.ainvoke(question))
    # The sync hooks hand their spans to the client's event loop, so the sync agent
    # runs in a worker thread while that loop runs (as the adapter documents).
    await middleware.ensure_initialized()
    state = await asyncio.get_running_loop().run_in_executor(None, agent.invoke, question)
    return _final_answer(state)


def _core_config(api_url: str, token: str, registry: SchemaRegistry) -> PrefactorCoreConfig:
    return PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=api_url, api_token=token), schema_registry=registry
    )


async def _middleware_client(api_url: str, token: str) -> PrefactorCoreClient:
    registry = SchemaRegistry()
    register_langchain_schemas(registry)
    client = PrefactorMiddleware.create_client(_core_config(api_url, token, registry))
    await client.initialize()
    return client


async def middleware_client(api_url: str, token: str, sync: bool) -> dict[str, Any]:
    """``PrefactorMiddleware(client=...)``: the middleware makes its own instance."""
    client = await _middleware_client(api_url, token)
    middleware = PrefactorMiddleware(client=client, agent_id=AGENT_ID, agent_name="Adapter Agent")
    answer = await _invoke(_agent(middleware), sync, middleware)
    instance = await middleware.ensure_initialized()
    await middleware.close()
    await client.close()
    return {"instance_id": instance.id, "answer": answer}


async def middleware_instance(api_url: str, token: str, sync: bool) -> dict[str, Any]:
    """``PrefactorMiddleware(instance=...)``: the caller owns the instance."""
    client = await _middleware_client(api_url, token)
    instance = await client.create_agent_instance(
        agent_id=AGENT_ID,
        agent_version={"name": "Adapter Agent", "external_identifier": "adapter-v1"},
    )
    await instance.start()
    middleware = PrefactorMiddleware(instance=instance)
    if sync:
        # prefactor-langchain 0.3.0 learns the event loop its sync hooks hand spans to
        # only when it creates the instance itself; given one, it must be told.
        middleware._loop = asyncio.get_running_loop()
    answer = await _invoke(_agent(middleware), sync, middleware)
    await middleware.close()
    await instance.finish()
    await client.close()
    return {"instance_id": instance.id, "answer": answer}


async def middleware_from_config(api_url: str, token: str, sync: bool) -> dict[str, Any]:
    """``PrefactorMiddleware.from_config(...)``: the middleware owns client and instance."""
    middleware = PrefactorMiddleware.from_config(
        api_url=api_url, api_token=token, agent_id=AGENT_ID, agent_name="Adapter Agent"
    )
    answer = await _invoke(_agent(middleware), sync, middleware)
    instance = await middleware.ensure_initialized()
    await middleware.close()
    return {"instance_id": instance.id, "answer": answer}


async def terminate_in_tool(api_url: str, token: str, sync: bool) -> dict[str, Any]:
    """A tool has the platform terminate the run; the agent stops at its next step."""
    client = await _middleware_client(api_url, token)
    middleware = PrefactorMiddleware(client=client, agent_id=AGENT_ID, agent_name="Adapter Agent")
    instance = await middleware.ensure_initialized()

    loop = asyncio.get_running_loop()

    async def stop_the_run() -> None:
        probe = ("langchain:tool", {"note": "after terminate"}, {"ok": True})
        await terminate_and_wait(api_url, token, client, instance, "stopped from a tool", probe)

    def add_then_stop(a: int, b: int) -> int:
        """Add two integers (and have the platform stop the run)."""
        asyncio.run_coroutine_threadsafe(stop_the_run(), loop).result(60)
        return a + b

    async def add_then_stop_async(a: int, b: int) -> int:
        """Add two integers (and have the platform stop the run)."""
        await stop_the_run()
        return a + b

    stopping_add = StructuredTool.from_function(
        func=add_then_stop, coroutine=add_then_stop_async, name="add"
    )

    outcome: dict[str, Any] = {"instance_id": instance.id}
    try:
        outcome["answer"] = await _invoke(
            _agent(middleware, (stopping_add, multiply)), sync, middleware
        )
    except PrefactorTerminatedError as error:
        outcome["terminated"] = error.reason
    await middleware.close()
    await client.close()
    return outcome


class GraphState(TypedDict):
    messages: list[BaseMessage]


async def callback_handler_graph(api_url: str, token: str, sync: bool) -> dict[str, Any]:
    """``PrefactorCallbackHandler`` on a LangGraph graph: model node, tool node, answer."""
    registry = SchemaRegistry()
    tool_span_types = register_langchain_schemas(registry)
    client = PrefactorCallbackHandler.create_client(_core_config(api_url, token, registry))
    await client.initialize()
    instance = await client.create_agent_instance(
        agent_id=AGENT_ID,
        agent_version={"name": "Adapter Graph", "external_identifier": "graph-v1"},
    )
    await instance.start()
    model = ScriptedChatModel(messages=_replies())

    async def think(state: GraphState) -> GraphState:
        reply = await model.ainvoke(state["messages"])
        return {"messages": [*state["messages"], reply]}

    async def act(state: GraphState) -> GraphState:
        call = state["messages"][-1].tool_calls[0]  # type: ignore[attr-defined]
        result = await {"add": add, "multiply": multiply}[call["name"]].ainvoke(call["args"])
        return {"messages": [*state["messages"], HumanMessage(content=str(result))]}

    def route(state: GraphState) -> str:
        return "act" if state["messages"][-1].tool_calls else END  # type: ignore[attr-defined]

    graph = StateGraph(GraphState)
    graph.add_node("think", think)
    graph.add_node("act", act)
    graph.add_edge(START, "think")
    graph.add_conditional_edges("think", route, ["act", END])
    graph.add_edge("act", "think")
    compiled = graph.compile()
    handler = PrefactorCallbackHandler(instance=instance, tool_span_types=tool_span_types)
    state = await compiled.ainvoke(
        {"messages": [HumanMessage(content=QUESTION, id="question")]},
        config={"callbacks": [handler]},
    )
    await instance.finish()
    await client.close()
    return {"instance_id": instance.id, "answer": _final_answer(dict(state))}


SCENARIOS: dict[str, Callable[[str, str, bool], Awaitable[dict[str, Any]]]] = {
    "middleware-client": middleware_client,
    "middleware-instance": middleware_instance,
    "middleware-from-config": middleware_from_config,
    "terminate-in-tool": terminate_in_tool,
    "callback-handler-graph": callback_handler_graph,
}


def main() -> None:
    name, mode, api_url, token = sys.argv[1:5]
    result = asyncio.run(SCENARIOS[name](api_url, token, mode == "sync"))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
