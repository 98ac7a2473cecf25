"""The published prefactor-langchain 0.3.0, unchanged, on our core.

Each scenario (tests/adapters/scenarios.py) runs twice against the same real
``prefactor serve``: with our interpreter, where prefactor-langchain is installed with
``--no-deps`` over our packages, and with ``.venv-published``, where it runs on the
published core. Both runs are read back through the read API and must match span for
span: types, statuses, parents, payloads and summaries.
"""

from __future__ import annotations

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

pytestmark = [pytest.mark.published, pytest.mark.slow, pytest.mark.timeout(600)]

SCRIPT = Path(__file__).with_name("scenarios.py")
ANSWER = "(2 + 3) * 4 = 20"
# One agent span, three model calls, two tool calls.
AGENT_RUN = {
    ("langchain:agent", "complete"): 1,
    ("langchain:llm", "complete"): 3,
    ("langchain:tool", "complete"): 2,
}


def _both(served: str, scenario: str, mode: str) -> tuple[dict[str, Any], dict[str, Any]]:
    require_published()
    ours = run_scenario(SCRIPT, OUR_PYTHON, scenario, mode, served, TOKEN)
    published = run_scenario(SCRIPT, PUBLISHED_PYTHON, scenario, mode, served, TOKEN)
    return ours, published


@pytest.mark.parametrize("mode", ["async", "sync"])
@pytest.mark.parametrize(
    "scenario", ["middleware-client", "middleware-instance", "middleware-from-config"]
)
def test_middleware_run_matches_the_published_core(served: str, scenario: str, mode: str) -> None:
    """PrefactorMiddleware through client=, instance= and from_config, sync and async:
    the agent answers, the run is complete, and every span equals the published core's."""
    ours, published = _both(served, scenario, mode)
    assert ours["answer"] == published["answer"] == ANSWER
    our_instance, our_spans = read_run(served, ours["instance_id"])
    published_instance, published_spans = read_run(served, published["instance_id"])

    assert our_instance["status"] == "complete"
    assert counts(span_view(our_spans)) == AGENT_RUN
    assert instance_view(our_instance) == instance_view(published_instance)
    assert span_view(our_spans) == span_view(published_spans)


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_terminate_from_a_tool_stops_the_agent(served: str, mode: str) -> None:
    """The platform terminates the run while a tool runs: the middleware raises
    PrefactorTerminatedError at the next step, the model is not called again, and the
    server shows the run terminated with the reason."""
    ours, published = _both(served, "terminate-in-tool", mode)
    assert ours["terminated"] == published["terminated"] == "stopped from a tool"
    assert "answer" not in ours
    our_instance, our_spans = read_run(served, ours["instance_id"])
    published_instance, published_spans = read_run(served, published["instance_id"])

    for instance in (our_instance, published_instance):
        assert instance["status"] == "terminated"
        assert instance["termination_reason"] == "stopped from a tool"
    ours_seen = span_view(our_spans)
    published_seen = span_view(published_spans)
    # One model call (which asked for the tool), the tool, and the tool's own span.
    assert counts(ours_seen)[("langchain:llm", "complete")] == 1
    assert counts(ours_seen)[("langchain:tool", "complete")] == 2
    # The one deliberate difference: the published core leaves the agent span open
    # when the agent stops; ours closes it as failed when the client closes.
    assert _without_agent_span(ours_seen) == _without_agent_span(published_seen)
    assert counts(published_seen)[("langchain:agent", "active")] == 1
    assert counts(ours_seen)[("langchain:agent", "failed")] == 1


def test_callback_handler_on_a_langgraph_graph(served: str) -> None:
    """PrefactorCallbackHandler on a StateGraph: agent, node, model and tool spans.

    The published core records no tool spans here: LangChain runs tool callbacks
    outside an asyncio task, where the published HTTP client cannot send (its stderr
    says "Timeout context manager should be used inside a task"). Ours does not send
    on the caller's path, so it records them; every span the published core recorded
    is recorded identically by ours.
    """
    ours, published = _both(served, "callback-handler-graph", "async")
    assert ours["answer"] == published["answer"] == ANSWER
    our_instance, our_spans = read_run(served, ours["instance_id"])
    _, published_spans = read_run(served, published["instance_id"])

    assert our_instance["status"] == "complete"
    ours_seen = span_view(our_spans)
    assert counts(ours_seen) == {
        ("langchain:agent", "complete"): 1,
        ("langchain:node", "complete"): 5,  # think, act, think, act, think
        ("langchain:llm", "complete"): 3,
        ("langchain:tool", "complete"): 2,
    }
    assert "Timeout context manager should be used inside a task" in published["stderr"]
    missing_in_published = [v for v in ours_seen if v not in span_view(published_spans)]
    assert [v["type"] for v in missing_in_published] == ["langchain:tool", "langchain:tool"]
    assert [v for v in ours_seen if v not in missing_in_published] == span_view(published_spans)


def _without_agent_span(views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [view for view in views if view["type"] != "langchain:agent"]
