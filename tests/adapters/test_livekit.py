"""The published prefactor-livekit 0.1.5, unchanged, on our core.

livekit-agents' own ``AgentSession`` (tests/adapters/livekit_scenario.py) runs one turn
with a tool call, without a LiveKit server or room: text in, a scripted LLM. The run is
made once with our core and once with the published core against the same ``prefactor
serve``; both are read back and must match span for span, times and LiveKit's random
ids aside.

LiveKit's function call has ``group_id=None``, which the adapter's ``livekit:tool`` schema
refuses. Our core re-sends that one span with a marker in place of the refused payload
(its result kept) and the run completes; the published core records it empty.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .support import (
    OUR_PYTHON,
    PUBLISHED_PYTHON,
    TOKEN,
    counts,
    instance_view,
    read_run,
    require_published,
    run_scenario,
    span_view,
)

pytestmark = [pytest.mark.published, pytest.mark.slow, pytest.mark.timeout(300)]

SCRIPT = Path(__file__).with_name("livekit_scenario.py")
CONVERSATION = {
    ("livekit:session", "complete"): 1,
    ("livekit:assistant_turn", "complete"): 1,
    ("livekit:llm", "complete"): 2,  # the request that calls the tool, and the answer
    ("livekit:tool", "complete"): 1,
}
REFUSED_TOOL_PAYLOAD = {
    "_prefactor": {
        "replaced": "rejected",
        "code": "validation_error",
        "message": "payload.group_id: None is not of type 'string'",
    }
}
_LIVEKIT_ID = re.compile(r"(item|speech)_[0-9a-f]{12}")


def _timeless(value: Any) -> Any:
    """``value`` with what differs between two runs masked: times and durations (every
    float LiveKit reports is one) and LiveKit's random item and speech ids."""
    if isinstance(value, dict):
        return {key: _timeless(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_timeless(item) for item in value]
    if isinstance(value, float):
        return "<float>"
    if isinstance(value, str):
        return _LIVEKIT_ID.sub(r"<\1>", value)
    return value


def _comparable(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    views = [_timeless(view) for view in span_view(spans)]
    return sorted(views, key=lambda view: json.dumps(view, sort_keys=True))


@pytest.mark.parametrize("mode", ["attach", "start", "terminate"])
def test_session_run_matches_the_published_core(served: str, mode: str) -> None:
    """``attach(session)`` and ``start(session, agent)``: the session, assistant turn,
    LLM and tool spans, nested under the session, as the published core records them,
    except the tool span with LiveKit's ``group_id=None``: ours keeps it with a marker
    for the refused payload (and its result), the published core keeps it empty. With
    ``terminate``, the platform stops the instance after the turn: the monitor reports
    the reason (this adapter does not stop the session on it, on either core) and the
    run reads back as terminated."""
    require_published()
    ours = run_scenario(SCRIPT, OUR_PYTHON, mode, served, TOKEN)
    published = run_scenario(SCRIPT, PUBLISHED_PYTHON, mode, served, TOKEN)
    # LiveKit's record of the run: the tool call, its output, the answer.
    assert ours["events"] == published["events"]
    assert ours["events"] == ["function_call", "function_call_output", "message"]
    our_instance, our_spans = read_run(served, ours["instance_id"])
    published_instance, published_spans = read_run(served, published["instance_id"])

    expected = dict(CONVERSATION)
    if mode == "terminate":
        assert ours["termination_reason"] == published["termination_reason"] == "call ended by ops"
        assert our_instance["status"] == "terminated"
        expected[("livekit:tool", "complete")] += 1  # the probe span sent after terminate
    else:
        assert our_instance["status"] == "complete"
    ours_seen = _comparable(our_spans)
    assert counts(ours_seen) == expected
    parents = {(v["type"], v["parent"]) for v in ours_seen}
    assert parents == {
        ("livekit:session", None),
        ("livekit:assistant_turn", "livekit:session"),
        ("livekit:llm", "livekit:assistant_turn"),
        ("livekit:tool", "livekit:assistant_turn"),
    } | ({("livekit:tool", "livekit:session")} if mode == "terminate" else set())  # the probe
    (refused,) = [v for v in ours_seen if v["payload"] == REFUSED_TOOL_PAYLOAD]
    assert refused["type"] == "livekit:tool"
    assert refused["parent"] == "livekit:assistant_turn"
    assert refused["result"]["outputs"] == {"output": "sunny, 21C in Paris", "name": "get_weather"}
    assert "group_id: None is not of type 'string'" in ours["stderr"]

    # The published core keeps that span empty (no payload, no result), and the adapter,
    # seeing its create fail there, leaves the call out of the session's story; ours has it.
    published_seen = _comparable(published_spans)
    (empty,) = [v for v in published_seen if v["payload"] == {}]
    assert empty == {**refused, "payload": {}, "result": None}
    (session,) = [v for v in ours_seen if v["type"] == "livekit:session"]
    (turn,) = session["result"]["conversation"]["turns"]
    assert turn.pop("tool_calls") == [
        {
            "call_id": "call-1",
            "created_at": "<float>",
            "inputs": {"city": "Paris"},
            "is_error": False,
            "tool_name": "get_weather",
        }
    ]
    assert [v for v in ours_seen if v is not refused] == [
        v for v in published_seen if v is not empty
    ]
    assert instance_view(our_instance) == instance_view(published_instance)
