"""One voice-agent turn through the published prefactor-livekit, on either core.

``python livekit_scenario.py MODE API_URL TOKEN`` (MODE: ``attach``, ``start`` or
``terminate``) prints one JSON line with the instance id. The session is livekit-agents'
own ``AgentSession`` with an ``Agent`` that has a function tool, run without a LiveKit
server or room: text in (``session.run(user_input=...)``), no audio, and a scripted
``llm.LLM`` whose first reply calls the tool and whose second answers. LiveKit emits
its events (conversation items, speech, LLM metrics, usage, tools executed, agent
state, close) as it does in a room, and the adapter turns them into spans.

LiveKit gives a function call no ``group_id`` (None) unless a provider sets one; the
adapter's ``livekit:tool`` schema asks for a string, so the API refuses that span's
payload (on either core; see tests/adapters/test_livekit.py for what each records).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from livekit.agents import Agent, AgentSession, function_tool, llm
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, NOT_GIVEN, APIConnectOptions
from platform_control import terminate_and_wait
from prefactor_livekit import PrefactorLiveKitSession, register_livekit_schemas

from prefactor_core import PrefactorCoreConfig, PrefactorTerminatedError, SchemaRegistry
from prefactor_http.config import HttpClientConfig

AGENT_ID = "voice-agent"
QUESTION = "What's the weather in Paris?"
ANSWER = "It is sunny and 21C in Paris."


def _usage() -> llm.CompletionUsage:
    return llm.CompletionUsage(completion_tokens=12, prompt_tokens=40, total_tokens=52)


# What the model says: first a call of the tool, then (given its output) the answer.
REPLIES = [
    llm.ChatChunk(
        id="req-1",
        delta=llm.ChoiceDelta(
            role="assistant",
            tool_calls=[
                llm.FunctionToolCall(
                    name="get_weather", arguments='{"city": "Paris"}', call_id="call-1"
                )
            ],
        ),
        usage=_usage(),
    ),
    llm.ChatChunk(
        id="req-2",
        delta=llm.ChoiceDelta(role="assistant", content=ANSWER),
        usage=_usage(),
    ),
]


class ScriptedLLM(llm.LLM):
    """An ``llm.LLM`` that answers each request with the next scripted chunk."""

    def __init__(self, replies: list[llm.ChatChunk]) -> None:
        super().__init__()
        self._replies = list(replies)

    @property
    def model(self) -> str:
        return "scripted-llm"

    @property
    def provider(self) -> str:
        return "test"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: Any = NOT_GIVEN,
        tool_choice: Any = NOT_GIVEN,
        extra_kwargs: Any = NOT_GIVEN,
    ) -> llm.LLMStream:
        reply = self._replies.pop(0)
        return _ScriptedStream(
            self, reply, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )


class _ScriptedStream(llm.LLMStream):
    def __init__(self, owner: ScriptedLLM, reply: llm.ChatChunk, **kwargs: Any) -> None:
        super().__init__(owner, **kwargs)
        self._reply = reply

    async def _run(self) -> None:
        self._event_ch.send_nowait(self._reply)


class VoiceAgent(Agent):
    """The agent: instructions and one function tool."""

    def __init__(self) -> None:
        super().__init__(instructions="You tell people the weather.")

    @function_tool
    async def get_weather(self, city: str) -> str:
        """The weather in a city.

        Args:
            city: The city's name.
        """
        return f"sunny, 21C in {city}"


async def main(mode: str, api_url: str, token: str) -> dict[str, Any]:
    registry = SchemaRegistry()
    register_livekit_schemas(registry)
    client = PrefactorLiveKitSession.create_client(
        PrefactorCoreConfig(
            http_config=HttpClientConfig(api_url=api_url, api_token=token),
            schema_registry=registry,
        )
    )
    await client.initialize()
    wrapper = PrefactorLiveKitSession(client=client, agent_id=AGENT_ID, agent_name="Voice Agent")
    instance = await wrapper.ensure_initialized()
    outcome: dict[str, Any] = {"instance_id": instance.id}

    session: AgentSession[None] = AgentSession(llm=ScriptedLLM(REPLIES))
    try:
        if mode == "attach":
            await wrapper.attach(session)
            await session.start(VoiceAgent())
        else:
            await wrapper.start(session, VoiceAgent())
        result = await session.run(user_input=QUESTION)
        outcome["events"] = [event.type for event in result.events]
        if mode == "terminate":
            probe = (
                "livekit:tool",
                {"name": "probe", "tool_name": "probe", "inputs": {}},
                {"status": "completed", "outputs": {}, "is_error": False},
            )
            outcome["termination_reason"] = await terminate_and_wait(
                api_url, token, client, instance, "call ended by ops", probe
            )
        await session.aclose()
        await wrapper.close()
    except PrefactorTerminatedError as error:
        outcome["terminated"] = error.reason
    await client.close()
    return outcome


if __name__ == "__main__":
    outcome = asyncio.run(main(*sys.argv[1:4]))
    print(json.dumps(outcome), flush=True)
