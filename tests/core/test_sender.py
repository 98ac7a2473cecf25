"""The engine's HTTP sender: a long bulk body is written in pieces, a turn of the engine
on the agent's loop between two pieces, and arrives whole, as one ordinary body."""

from __future__ import annotations

import json

import httpx
import pytest

from prefactor_core._engine.pacing import Pacer
from prefactor_core._engine.sender import PIECE_BYTES, HttpSender
from prefactor_http import HttpClientConfig, PrefactorHttpClient

pytestmark = pytest.mark.timeout(30)


class CountingPacer(Pacer):
    """A pacer that counts the turns taken."""

    def __init__(self) -> None:
        super().__init__(budget=0.0, longest=0.0)
        self.turns = 0

    async def turn(self) -> None:
        self.turns += 1
        await super().turn()


def bulk_body(length: int) -> bytes:
    """A bulk body of exactly ``length`` bytes."""
    head, tail = b'{"items":[{"_type":"x","pad":"', b'"}]}'
    return head + b"a" * (length - len(head) - len(tail)) + tail


async def post(body: bytes, pacer: Pacer | None, path: str = "/api/v1/bulk") -> httpx.Request:
    """POST ``body`` through an ``HttpSender``; return the request the API received."""
    received: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200, json={"status": "success", "outputs": {}})

    config = HttpClientConfig(api_url="http://api.test", api_token="t")
    async with PrefactorHttpClient(config, transport=httpx.MockTransport(handle)) as http:
        answer = await HttpSender(http, pacer).post(path, body)
    assert answer == {"status": "success", "outputs": {}}
    (request,) = received
    return request


async def test_a_long_bulk_body_is_written_in_pieces_and_arrives_whole() -> None:
    body = bulk_body(3 * PIECE_BYTES + 10)
    pacer = CountingPacer()
    request = await post(body, pacer)
    assert request.content == body
    assert json.loads(request.content)["items"][0]["_type"] == "x"
    assert request.headers["content-length"] == str(len(body))
    assert "transfer-encoding" not in request.headers
    assert request.headers["prefer"] == "return=minimal, omit=success"
    assert request.headers["accept-encoding"] == "identity"
    # One before each piece but the first, one before the answer is decoded.
    assert pacer.turns == 4


@pytest.mark.parametrize("length", [100, PIECE_BYTES])
async def test_a_short_bulk_body_is_written_at_once(length: int) -> None:
    pacer = CountingPacer()
    request = await post(bulk_body(length), pacer)
    assert request.content == bulk_body(length)
    assert pacer.turns == 1  # before the answer is decoded


async def test_without_a_pacer_every_body_is_written_at_once() -> None:
    body = bulk_body(2 * PIECE_BYTES)
    request = await post(body, None)
    assert request.content == body
    assert request.headers["accept-encoding"] == "identity"


async def test_a_single_request_is_sent_as_it_is() -> None:
    pacer = CountingPacer()
    body = b'{"details":{"id":"s1"}}' + b" " * (2 * PIECE_BYTES)
    request = await post(body, pacer, path="/api/v1/agent_spans")
    assert request.content == body
    assert "prefer" not in request.headers
    assert pacer.turns == 0
