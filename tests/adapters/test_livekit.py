"""The published prefactor-livekit 0.1.5, unchanged, on our core.

A scripted session (tests/adapters/livekit_scenario.py) plays one voice conversation
with a tool call, without a LiveKit server. The run is made once with our core and once
with the published core against the same ``prefactor serve``; both are read back and
must match span for span.
"""

from __future__ import annotations

from pathlib import Path

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
    ("livekit:user_turn", "complete"): 1,
    ("livekit:assistant_turn", "complete"): 1,
    ("livekit:llm", "complete"): 1,
    ("livekit:tool", "complete"): 1,
}


@pytest.mark.parametrize("mode", ["attach", "start", "terminate"])
def test_session_run_matches_the_published_core(served: str, mode: str) -> None:
    """``attach(session)`` and ``start(session, agent)``: the session, user turn,
    assistant turn, LLM and tool spans, nested under the session, as the published core
    records them. With ``terminate``, the platform stops the instance mid-call: the
    monitor reports the reason (this adapter does not stop the session on it, on either
    core) and the run reads back as terminated."""
    require_published()
    ours = run_scenario(SCRIPT, OUR_PYTHON, mode, served, TOKEN)
    published = run_scenario(SCRIPT, PUBLISHED_PYTHON, mode, served, TOKEN)
    our_instance, our_spans = read_run(served, ours["instance_id"])
    published_instance, published_spans = read_run(served, published["instance_id"])

    expected = dict(CONVERSATION)
    if mode == "terminate":
        assert ours["termination_reason"] == published["termination_reason"] == "call ended by ops"
        assert our_instance["status"] == "terminated"
        expected[("livekit:tool", "complete")] += 1  # the probe span sent after terminate
    else:
        assert our_instance["status"] == "complete"
    ours_seen = span_view(our_spans)
    assert counts(ours_seen) == expected
    parents = {(v["type"], v["parent"]) for v in ours_seen}
    assert parents >= {
        ("livekit:session", None),
        ("livekit:user_turn", "livekit:session"),
        ("livekit:assistant_turn", "livekit:session"),
        ("livekit:llm", "livekit:assistant_turn"),
        ("livekit:tool", "livekit:assistant_turn"),
    }
    assert instance_view(our_instance) == instance_view(published_instance)
    assert ours_seen == span_view(published_spans)


def test_a_tool_call_the_schema_refuses_costs_only_its_params(served: str) -> None:
    """prefactor-livekit sends a function call's ``group_id`` as is; None fails the
    ``livekit:tool`` schema (a string), so the server refuses that one span create (422).
    That used to latch a telemetry failure for the whole client and lose the rest of the
    session; now only that span's params are replaced by a marker naming the refusal, and
    the run completes with every other span stored as in a run without the refusal.
    (The published core, which creates spans directly, loses just that span.)"""
    refused_run = run_scenario(SCRIPT, OUR_PYTHON, "no-group", served, TOKEN)
    normal_run = run_scenario(SCRIPT, OUR_PYTHON, "attach", served, TOKEN)
    instance, spans = read_run(served, refused_run["instance_id"])
    normal_instance, normal_spans = read_run(served, normal_run["instance_id"])
    assert instance["status"] == "complete"
    assert instance_view(instance) == instance_view(normal_instance)
    views, normal = span_view(spans), span_view(normal_spans)
    assert counts(views) == CONVERSATION
    [tool] = [view for view in views if view["type"] == "livekit:tool"]
    [normal_tool] = [view for view in normal if view["type"] == "livekit:tool"]
    assert tool["payload"] == {
        "_prefactor": {
            "replaced": "rejected",
            "code": "validation_error",
            "message": "payload.group_id: None is not of type 'string'",
        }
    }
    assert normal_tool["payload"]["group_id"] == "group-1"
    assert {**tool, "payload": None} == {**normal_tool, "payload": None}  # result, parent, ...
    assert [v for v in views if v is not tool] == [v for v in normal if v is not normal_tool]
    stderr = refused_run["stderr"]
    assert stderr.count("refused a span create (422 validation_error") == 1
    assert "PrefactorTelemetryFailureError" not in stderr
