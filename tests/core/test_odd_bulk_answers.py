"""Bulk answers of a server that says it ran none of the items and names no error (no
outputs, or our ``omitted`` form with ``processed`` 0, negative, missing or a bool, or
without its outputs object): a broken answer, retried with a backoff ``max_retries``
times, not sent again at once."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from prefactor_core import DeliveryStatistics
from prefactor_core._engine.settlement import read_bulk_answer
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .dispatcher_fakes import create
from .support import TestTransport, spans_of

ODD_ANSWERS: list[dict[str, Any]] = [
    {"status": "success", "outputs": {}},
    {"status": "success", "outputs": {}, "omitted": "success", "processed": 0},
    {"status": "success", "outputs": {}, "omitted": "success", "processed": -3},
    {"status": "success", "outputs": {}, "omitted": "success", "processed": True},
    {"status": "success", "outputs": {}, "omitted": "success"},
    {"status": "success", "outputs": {"not-an-item": {"status": "success"}}},
    {"status": "success", "outputs": [], "omitted": "success", "processed": 3},
    {"status": "success", "omitted": "success", "processed": 3},
]


BUSY = {"status": "error", "code": "unavailable", "message": "busy"}


class OddBulk(TestTransport):
    """Answers the first ``odd`` bulk requests with ``answer`` (the server never sees
    them; ``BUSY`` answers the first item as busy); every other request goes to the
    real server."""

    def __init__(self, inner: httpx.AsyncBaseTransport, answer: dict[str, Any], odd: int):
        super().__init__(inner)
        self.answer, self.odd, self.bulks = answer, odd, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/bulk":
            self.bulks += 1
            if self.bulks <= self.odd:
                answer = self.answer
                if answer is BUSY:
                    first = json.loads(await request.aread())["items"][0]
                    answer = {"status": "success", "outputs": {first["idempotency_key"]: BUSY}}
                return httpx.Response(200, json=answer, request=request)
        return await super().handle_async_request(request)


async def _one_span(
    make_client: ClientFactory, transport: OddBulk, max_retries: int
) -> tuple[DeliveryStatistics, str, str]:
    """An instance with one span, flushed; the statistics, the instance and span ids."""
    async with make_client(transport=transport, max_retries=max_retries) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:step") as span:
            await span.start({})
        assert await client.flush(10)
        return client.statistics(), instance.id, span.id


@pytest.mark.parametrize("answer", ODD_ANSWERS)
async def test_an_answer_that_ran_nothing_is_retried_with_a_backoff_then_dropped(
    make_client: ClientFactory, server: LocalServer, answer: dict[str, Any]
) -> None:
    transport = OddBulk(server.transport, answer, odd=10**6)
    stats, _, _ = await _one_span(make_client, transport, max_retries=2)
    # Each batch is tried again after a backoff, max_retries times in all, then dropped:
    # the register, and the span's create and finish (sent merged).
    assert (stats.dropped, stats.sent) == (3, 0)
    assert stats.retried > 0
    assert transport.bulks <= 2 * 3


async def test_after_a_broken_answer_the_items_arrive_once_the_server_answers(
    make_client: ClientFactory, server: LocalServer
) -> None:
    transport = OddBulk(server.transport, ODD_ANSWERS[1], odd=2)
    stats, instance_id, span_id = await _one_span(make_client, transport, max_retries=3)
    assert (stats.dropped, stats.sent) == (0, 3)
    assert stats.retried > 0
    assert [row["id"] for row in await spans_of(server, instance_id)] == [span_id]


async def test_a_busy_first_item_is_a_passing_error_not_a_broken_answer(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """The first item answered "unavailable" ran nothing either, but the answer blames
    it: a transient error, retried without end (never dropped as broken)."""
    transport = OddBulk(server.transport, BUSY, odd=3)
    stats, instance_id, span_id = await _one_span(make_client, transport, max_retries=0)
    assert (stats.dropped, stats.sent, stats.failed_requests) == (0, 3, 0)
    assert [row["id"] for row in await spans_of(server, instance_id)] == [span_id]


def test_an_item_listed_as_no_object_did_not_run_in_either_form() -> None:
    """An output listed as null (or any non-object) is no success, also in an answer
    that omits the plain successes: the item goes again, as in the full form."""
    ops = [create("A", f"s{n}") for n in range(3)]
    keys = [str(op.idempotency_key) for op in ops]
    for marker in ({}, {"omitted": "success", "processed": 3}):
        outputs = {keys[0]: {"status": "success"}, keys[1]: None, keys[2]: "success"}
        answer = read_bulk_answer(ops, ["A"] * 3, {"outputs": outputs, **marker})
        assert answer.delivered == ops[:1], marker
        assert [op for _, op in answer.unprocessed] == ops[1:], marker
