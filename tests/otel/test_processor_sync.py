"""PrefactorSpanProcessor on the sync client: a plain (non-async) agent whose OTel spans
and ``@trace`` calls land in one run on a real ``prefactor serve``."""

from __future__ import annotations

from tests.otel.conftest import Served
from tests.otel.support import make_provider

from prefactor_core import PrefactorCoreConfig, SyncPrefactorCoreClient, trace
from prefactor_core.otel import PrefactorSpanProcessor
from prefactor_http import HttpClientConfig


@trace("agent:lookup")
def lookup(city: str) -> str:
    return f"sunny in {city}"


def test_sync_client_with_the_processor_keeps_one_tree(served: Served) -> None:
    """The processor takes a SyncPrefactorCoreClient (no event loop in the caller's
    thread); an OTel LLM span in the run nests a decorated call; both are stored."""
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=served.url, api_token=served.token)
    )
    with SyncPrefactorCoreClient(config) as client:
        provider = make_provider()
        processor = PrefactorSpanProcessor(client)
        provider.add_span_processor(processor)
        tracer = provider.get_tracer("openinference.instrumentation.test")
        with (
            client.create_agent_instance(
                agent_id="sync-otel-agent", agent_version={"name": "Sync OTel"}
            ) as instance,
            tracer.start_as_current_span("chat", attributes={"openinference.span.kind": "LLM"}),
        ):
            assert lookup("Oslo") == "sunny in Oslo"
        assert processor.force_flush()
        assert client.flush(timeout=10)
        assert processor.dropped == 0
        processor.shutdown()
        instance_id = instance.id

    spans = {span["schema_name"]: span for span in served.spans(agent_instance_id=instance_id)}
    assert set(spans) == {"llm", "agent:lookup"}
    assert spans["llm"]["parent_span_id"] is None
    assert spans["agent:lookup"]["parent_span_id"] == spans["llm"]["id"]
    assert spans["agent:lookup"]["result_payload"] == {"output": "sunny in Oslo"}
    assert served.instance(instance_id)["status"] == "complete"
