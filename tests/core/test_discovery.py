"""Tests for discovery on its own: reading ``Capabilities`` from a ping answer, and the
probe loop against a scripted API (a real ``PrefactorHttpClient`` over a mock transport)
on a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from prefactor_core._engine.discovery import (
    Capabilities,
    discover,
    register_learning_partition,
)
from prefactor_core._engine.retry import Backoff
from prefactor_core._engine.wire import BULK_ACTIONS
from prefactor_http import HttpClientConfig, PrefactorAuthError, PrefactorHttpClient
from prefactor_http.pfid import MAX_PARTITION, is_pfid
from prefactor_server.testing import LocalServer

DEADLINE = 5.0
ALL_ACTIONS = sorted(BULK_ACTIONS.values())


# -- Capabilities.parse ----------------------------------------------------------------


def test_a_full_answer_offers_bulk_limits_and_partition() -> None:
    """Every field the SDK reads is taken from ``capabilities``."""
    caps = Capabilities.parse(
        {
            "status": "success",
            "capabilities": {
                "bulk_actions": [*ALL_ACTIONS, "something/new"],
                "bulk_max_items": 250,
                "bulk_max_bytes": 1_000_000,
                "pfid_partition": 42,
            },
        }
    )
    assert caps.bulk
    assert "something/new" in caps.bulk_actions
    assert (caps.bulk_max_items, caps.bulk_max_bytes, caps.partition) == (250, 1_000_000, 42)


@pytest.mark.parametrize("ping", [{}, {"status": "success"}, {"capabilities": "yes"}])
def test_no_capabilities_offers_nothing(ping: dict[str, Any]) -> None:
    """A ping without a capabilities object: no bulk, no limits, partition to learn."""
    assert Capabilities.parse(ping) == Capabilities()
    assert not Capabilities.parse(ping).bulk


def test_bulk_needs_every_action_the_sdk_sends() -> None:
    """One action missing from the server's list turns bulk off (the rest is kept)."""
    caps = Capabilities.parse({"capabilities": {"bulk_actions": ALL_ACTIONS[1:]}})
    assert not caps.bulk
    assert caps.bulk_actions == frozenset(ALL_ACTIONS[1:])


@pytest.mark.parametrize("actions", ["agent_spans/create", None, 3, {"agent_spans/create": True}])
def test_bulk_actions_that_are_not_a_list_offer_no_bulk(actions: object) -> None:
    """Only a JSON array counts as the list of bulk actions."""
    caps = Capabilities.parse({"capabilities": {"bulk_actions": actions}})
    assert caps.bulk_actions == frozenset()
    assert not caps.bulk


def test_non_string_actions_are_ignored_without_failing() -> None:
    """Objects or numbers in the list are skipped; the strings still count."""
    caps = Capabilities.parse({"capabilities": {"bulk_actions": [*ALL_ACTIONS, {"x": 1}, 7]}})
    assert caps.bulk
    assert caps.bulk_actions == frozenset(ALL_ACTIONS)


@pytest.mark.parametrize(
    ("partition", "expected"),
    [
        (0, 0),
        (MAX_PARTITION, MAX_PARTITION),
        (MAX_PARTITION + 1, None),
        (-1, None),
        ("7", None),
        (7.0, None),
        (True, None),
        (None, None),
    ],
)
def test_only_a_whole_number_in_range_is_a_partition(
    partition: object, expected: int | None
) -> None:
    """A partition out of range or of another type is learned instead."""
    caps = Capabilities.parse({"capabilities": {"pfid_partition": partition}})
    assert caps.partition == expected


@pytest.mark.parametrize("limit", [0, -5, True, 2.5, "100", None])
def test_a_limit_that_is_not_a_positive_whole_number_is_ignored(limit: object) -> None:
    """Bulk limits of 0, negative, bool, float or string count as not given."""
    caps = Capabilities.parse({"capabilities": {"bulk_max_items": limit, "bulk_max_bytes": limit}})
    assert (caps.bulk_max_items, caps.bulk_max_bytes) == (None, None)


# -- discover ----------------------------------------------------------------------------


class ScriptedApi:
    """Answers each request with the next scripted response (an exception is raised)."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


class FakeClock:
    """Sleeps that return at once and record what was asked."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"status": "error", "code": code, "message": code}
    return httpx.Response(status, json=body, headers=headers)


async def _discover(api: ScriptedApi, clock: FakeClock) -> Capabilities:
    config = HttpClientConfig(api_url="http://127.0.0.1:9", api_token="t")
    async with PrefactorHttpClient(config, transport=httpx.MockTransport(api)) as http:
        async with asyncio.timeout(DEADLINE):
            return await discover(http, Backoff(1.0, 2.0, sleep=clock, jitter=lambda: 0.5))


async def test_discover_retries_until_the_api_answers() -> None:
    """Connection errors and 503s are retried with growing, capped waits."""
    api = ScriptedApi(
        httpx.ConnectError("refused"),
        _error(503, "unavailable"),
        httpx.ConnectError("refused"),
        httpx.Response(200, json={"capabilities": {"bulk_actions": ALL_ACTIONS}}),
    )
    clock = FakeClock()
    caps = await _discover(api, clock)
    assert caps.bulk
    assert len(api.requests) == 4
    assert all(r.url.path == "/api/v1/ping" for r in api.requests)
    assert clock.sleeps == [1.0, 2.0, 2.0]


async def test_discover_honours_retry_after_within_the_cap() -> None:
    """A 429's Retry-After sets the wait, capped at the probe's cap."""
    api = ScriptedApi(
        _error(429, "rate_limited", {"Retry-After": "1.5"}),
        _error(429, "rate_limited", {"Retry-After": "60"}),
        httpx.Response(200, json={"status": "success"}),
    )
    clock = FakeClock()
    assert await _discover(api, clock) == Capabilities()
    assert clock.sleeps == [1.5, 2.0]


async def test_an_api_without_ping_offers_nothing_at_once() -> None:
    """A 404 on ping is permanent: no retry, no bulk, the partition to learn."""
    api = ScriptedApi(_error(404, "not_found"))
    clock = FakeClock()
    assert await _discover(api, clock) == Capabilities()
    assert clock.sleeps == []


async def test_a_rejected_token_is_raised_for_the_client_to_latch() -> None:
    """401 is fatal: discover raises it instead of retrying."""
    api = ScriptedApi(_error(401, "unauthorized"))
    clock = FakeClock()
    with pytest.raises(PrefactorAuthError):
        await _discover(api, clock)
    assert len(api.requests) == 1
    assert clock.sleeps == []


async def test_the_real_server_offers_bulk_and_its_ids_carry_its_partition(
    server: LocalServer,
) -> None:
    """Against the real server: bulk with every SDK action, a partition, and an id the
    server issues to an awaited register carries that same partition."""
    config = HttpClientConfig(api_url=server.api_url, api_token=server.token)
    async with PrefactorHttpClient(config, transport=server.transport) as http:
        async with asyncio.timeout(DEADLINE):
            caps = await discover(http, Backoff(1.0, 2.0, sleep=FakeClock()))
            instance_id, partition = await register_learning_partition(
                http,
                agent_version={"name": "bot"},
                agent_schema_version={"external_identifier": "s1", "span_type_schemas": []},
                agent_id="discovery-agent",
            )
    assert caps.bulk
    assert caps.partition is not None
    assert partition == caps.partition
    assert is_pfid(instance_id)
