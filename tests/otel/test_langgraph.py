"""openinference-instrumentation-langchain on a LangGraph graph with a fake chat model:
the tree across graph nodes is kept (one instance, every node under the graph, the model
call under its node)."""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph
from openinference.instrumentation.langchain import LangChainInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from tests.otel.conftest import Served
from tests.otel.support import make_provider

from prefactor_core.otel._mapping import instance_id_for_trace


class State(TypedDict):
    question: str
    plan: str
    answer: str


def _graph() -> Any:
    model = FakeListChatModel(responses=["Check the forecast.", "Rain, 12°C."])

    def plan(state: State) -> dict[str, str]:
        return {"plan": str(model.invoke([HumanMessage(state["question"])]).content)}

    def answer(state: State) -> dict[str, str]:
        return {"answer": str(model.invoke([HumanMessage(state["plan"])]).content)}

    graph = StateGraph(State)
    graph.add_node("plan", plan)
    graph.add_node("answer", answer)
    graph.add_edge(START, "plan")
    graph.add_edge("plan", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


def test_langgraph_tree_is_kept_across_nodes(served: Served) -> None:
    """Graph → nodes → model calls, in one instance, with every parent link intact."""
    provider = make_provider()
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(endpoint=f"{served.url}/v1/traces", headers=served.headers)
        )
    )
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        tracer = provider.get_tracer("openinference.instrumentation.test")
        with tracer.start_as_current_span("run") as run:
            result = _graph().invoke({"question": "Weather in Paris?", "plan": "", "answer": ""})
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    assert result["answer"] == "Rain, 12°C."

    instance_id = instance_id_for_trace(format(run.get_span_context().trace_id, "032x"))
    spans = served.spans(agent_instance_id=instance_id)
    by_id = {span["id"]: span for span in spans}
    assert not any(span["orphaned"] for span in spans)
    assert [span for span in spans if span["parent_span_id"] is None] == [
        next(span for span in spans if span["payload"]["name"] == "run")
    ]
    graph = next(span for span in spans if span["payload"]["name"] == "LangGraph")
    nodes = {
        span["payload"]["name"]: span for span in spans if span["parent_span_id"] == graph["id"]
    }
    assert {"plan", "answer"} <= set(nodes)
    llm_calls = [span for span in spans if span["schema_name"] == "llm"]
    assert len(llm_calls) == 2

    def node_of(span: dict[str, Any]) -> str:
        while span["parent_span_id"] != graph["id"]:
            span = by_id[span["parent_span_id"]]
        return str(span["payload"]["name"])

    answers = {
        node_of(span): span["result_payload"]["messages"][0]["content"] for span in llm_calls
    }
    assert answers == {"plan": "Check the forecast.", "answer": "Rain, 12°C."}
    assert served.instance(instance_id)["status"] == "complete"
