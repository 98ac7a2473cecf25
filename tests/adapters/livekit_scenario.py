"""One voice-agent conversation through the published prefactor-livekit, on either core.

``python livekit_scenario.py MODE API_URL TOKEN`` (MODE: ``attach``, ``start``,
``terminate``, or ``no-group``: ``attach`` with a function call whose ``group_id`` is
None, which the adapter sends as is and the tool span's schema refuses) prints one
JSON line with the instance id. The session is driven without a LiveKit server:
``ScriptedSession`` is an event emitter with the surface the adapter binds to (``on``,
``off``, ``start``) and emits, in order, the events an
``AgentSession`` emits during one user turn with a tool call: user state, final
transcript, speech created, LLM metrics, tool execution, the assistant's message, agent
state, usage, and close. Event objects carry the attribute names of livekit-agents'
event classes. Times are fixed, so both cores record the same payloads.

prefactor-livekit imports livekit-agents only for type checking, so it is not
installed here (its install brings a WebRTC build, PyAV and numpy).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from platform_control import terminate_and_wait
from prefactor_livekit import PrefactorLiveKitSession, register_livekit_schemas

from prefactor_core import PrefactorCoreConfig, PrefactorTerminatedError, SchemaRegistry
from prefactor_http.config import HttpClientConfig

AGENT_ID = "voice-agent"
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@dataclass
class Event:
    """An event object: its fields are the attributes livekit-agents' events have."""

    fields: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class Item:
    """A chat message of the conversation (livekit's ``ChatMessage`` attributes)."""

    id: str
    role: str
    content: list[str]
    type: str = "message"


@dataclass
class FunctionCall:
    name: str
    call_id: str
    arguments: str
    group_id: str | None = None
    created_at: float = T0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FunctionOutput:
    name: str
    call_id: str
    output: str
    is_error: bool = False


@dataclass
class LLMMetrics:
    """LLM metrics as livekit reports them (``type`` tells the kind)."""

    request_id: str
    timestamp: float
    ttft: float
    duration: float
    completion_tokens: int
    prompt_tokens: int
    total_tokens: int
    label: str = "scripted-llm"
    type: str = "llm_metrics"
    metadata: dict[str, Any] = field(
        default_factory=lambda: {"model_name": "scripted-llm", "model_provider": "test"}
    )


class ToolsExecuted(Event):
    def zipped(self) -> list[tuple[FunctionCall, FunctionOutput]]:
        calls, outputs = self.fields["function_calls"], self.fields["function_call_outputs"]
        return list(zip(calls, outputs, strict=True))


class ScriptedSession:
    """An AgentSession stand-in that plays one conversation when started."""

    def __init__(
        self, before_close: Callable[[], Any] | None = None, group_id: str | None = "group-1"
    ) -> None:
        self._handlers: dict[str, list[Callable[[Any], None]]] = {}
        self._before_close = before_close
        self._group_id = group_id

    def on(self, event: str, handler: Callable[[Any], None]) -> None:
        self._handlers.setdefault(event, []).append(handler)

    def off(self, event: str, handler: Callable[[Any], None]) -> None:
        self._handlers.get(event, []).remove(handler)

    def emit(self, event: str, payload: Any) -> None:
        for handler in list(self._handlers.get(event, [])):
            handler(payload)

    async def start(self, agent: Any, **kwargs: Any) -> None:
        await self.play()

    async def play(self) -> None:
        # Each emit is followed by a turn of the loop, as events arrive over time.
        call = FunctionCall("get_weather", "call-1", '{"city": "Paris"}', self._group_id)
        output = FunctionOutput("get_weather", "call-1", "sunny, 21C")
        question, answer = "What's the weather in Paris?", "It is sunny and 21C in Paris."
        steps: list[tuple[str, Any]] = [
            ("user_state_changed", _state("listening", "speaking", T0)),
            ("user_input_transcribed", _heard("what's the wea", False, T0 + 0.5)),
            ("user_input_transcribed", _heard(question, True, T0 + 1)),
            ("user_state_changed", _state("speaking", "listening", T0 + 1.1)),
            (
                "speech_created",
                Event(
                    {"source": "generate_reply", "user_initiated": False, "created_at": T0 + 1.2}
                ),
            ),
            (
                "metrics_collected",
                Event({"metrics": LLMMetrics("req-1", T0 + 1.3, 0.2, 0.5, 12, 40, 52)}),
            ),
            (
                "function_tools_executed",
                ToolsExecuted(
                    {
                        "function_calls": [call],
                        "function_call_outputs": [output],
                        "created_at": T0 + 1.5,
                    }
                ),
            ),
            ("conversation_item_added", _said("msg-1", "user", question, T0 + 1)),
            ("conversation_item_added", _said("msg-2", "assistant", answer, T0 + 2)),
            ("agent_state_changed", _state("speaking", "listening", T0 + 3)),
            ("session_usage_updated", Event({"usage": Event({"model_usage": [_USAGE]})})),
        ]
        for name, event in steps:
            self.emit(name, event)
            await asyncio.sleep(0)
        if self._before_close is not None:
            await self._before_close()
        self.emit("close", Event({"reason": "user_initiated", "error": None, "created_at": T0 + 4}))


_USAGE = {"model": "scripted-llm", "total_tokens": 52}


def _state(old: str, new: str, at: float) -> Event:
    return Event({"old_state": old, "new_state": new, "created_at": at})


def _heard(transcript: str, final: bool, at: float) -> Event:
    fields = {"transcript": transcript, "is_final": final, "created_at": at}
    if final:
        fields.update(language="en", speaker_id="user-1")
    return Event(fields)


def _said(item_id: str, role: str, text: str, at: float) -> Event:
    return Event({"item": Item(item_id, role, [text]), "created_at": at})


class VoiceAgent:
    """The agent object handed to ``start`` (the adapter records its class name)."""


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

    async def terminate() -> None:
        probe = (
            "livekit:tool",
            {"name": "probe", "tool_name": "probe", "inputs": {}},
            {"status": "completed", "outputs": {}, "is_error": False},
        )
        outcome["termination_reason"] = await terminate_and_wait(
            api_url, token, client, instance, "call ended by ops", probe
        )

    session = ScriptedSession(
        terminate if mode == "terminate" else None,
        group_id=None if mode == "no-group" else "group-1",
    )
    try:
        if mode in ("attach", "no-group"):
            await wrapper.attach(session)
            await session.play()
        else:
            await wrapper.start(session, VoiceAgent())
        await wrapper.close()
    except PrefactorTerminatedError as error:
        outcome["terminated"] = error.reason
    await client.close()
    return outcome


if __name__ == "__main__":
    result = asyncio.run(main(*sys.argv[1:4]))
    print(json.dumps(result), flush=True)
