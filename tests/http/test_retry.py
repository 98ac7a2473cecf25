"""Tests for retries: the backoff schedule, Retry-After, and what is never retried."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from prefactor_http import (
    HttpClientConfig,
    PrefactorApiError,
    PrefactorClientError,
    PrefactorHttpClient,
    PrefactorNotFoundError,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
    PrefactorTransportError,
)
from prefactor_http._retry import RetryPolicy, parse_retry_after

BUSY = {"status": "error", "code": "unavailable", "message": "try later"}
NOW = 1_786_000_000.0


async def test_transient_failures_are_retried_until_success(client, api, sleeps) -> None:
    """503, 429 and a connect error are retried; delays are 1, 2, 4 s with jitter 1.0."""
    api.reply(503, BUSY)
    api.reply(429, BUSY)
    api.fail(httpx.ConnectError("refused"))
    api.reply(200, {"status": "success"})
    assert await client.validate_token() == {"status": "success"}
    assert len(api.requests) == 4
    assert sleeps == [1.0, 2.0, 4.0]


async def test_exhaustion_raises_retry_exhausted_with_last_error(client, api, sleeps) -> None:
    """After max_retries + 1 failures the last error is wrapped in RetryExhaustedError."""
    for _ in range(3):
        api.reply(500, BUSY)
    api.reply(502, {"code": "bad_gateway", "message": "last"})
    with pytest.raises(PrefactorRetryExhaustedError) as info:
        await client.validate_token()
    error = info.value
    assert isinstance(error.last_error, PrefactorApiError)
    assert error.last_error.status_code == 502
    assert error.__cause__ is error.last_error
    assert error.attempts == 4
    assert (error.method, error.path) == ("GET", "/api/v1/ping")
    assert len(api.requests) == 4
    assert sleeps == [1.0, 2.0, 4.0]


async def test_same_body_and_key_on_every_attempt(make_client, api) -> None:
    """Every attempt sends identical bytes and the same Idempotency-Key header."""
    api.reply(503, BUSY)
    api.reply(503, BUSY)
    api.reply(200, {"ok": 1})
    async with make_client() as client:
        await client.request(
            "POST", "/api/v1/x", json_data={"idempotency_key": "k-0001"}, idempotency_key="h-1"
        )
    bodies = {request.content for request in api.requests}
    keys = {request.headers["idempotency-key"] for request in api.requests}
    assert len(api.requests) == 3
    assert bodies == {b'{"idempotency_key":"k-0001"}'}
    assert keys == {"h-1"}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 418])
async def test_other_4xx_are_never_retried(client, api, sleeps, status: int) -> None:
    """A 4xx other than 429 is raised after one attempt, unwrapped."""
    api.reply(status, {"code": "nope", "message": "no"})
    with pytest.raises(PrefactorApiError) as info:
        await client.validate_token()
    assert info.value.status_code == status
    assert len(api.requests) == 1
    assert sleeps == []


async def test_success_body_contract_error_is_not_retried(client, api, sleeps) -> None:
    """A 200 with a non-JSON body is permanent: one attempt."""
    api.reply(200, content=b"ok")
    with pytest.raises(PrefactorResponseContractError):
        await client.validate_token()
    assert len(api.requests) == 1
    assert sleeps == []


async def test_contract_error_with_5xx_status_is_retried(client, api, sleeps) -> None:
    """A 503 with an HTML body (a proxy page) is retried like any 503."""
    api.reply(503, content=b"<html>unavailable</html>")
    api.reply(200, {"status": "success"})
    await client.validate_token()
    assert len(api.requests) == 2
    assert sleeps == [1.0]


async def test_max_retries_zero_reraises_the_original_error(make_client, api, sleeps) -> None:
    """With ``max_retries=0`` the first error is raised as is, not wrapped."""
    api.reply(503, BUSY)
    async with make_client(max_retries=0) as client:
        with pytest.raises(PrefactorApiError) as info:
            await client.validate_token()
    assert not isinstance(info.value, PrefactorRetryExhaustedError)
    assert info.value.status_code == 503
    assert sleeps == []


async def test_retry_false_makes_exactly_one_attempt(client, api, sleeps) -> None:
    """``retry=False`` on an endpoint sends once and raises the original error."""
    api.fail(httpx.ConnectError("refused"))
    with pytest.raises(PrefactorTransportError):
        await client.agent_instances.get("ins_0001", retry=False)
    assert len(api.requests) == 1
    assert sleeps == []


async def test_retry_after_seconds_is_honoured_and_exposed(client, api, sleeps) -> None:
    """``Retry-After: 7`` replaces the backoff delay and is on the error as seconds."""
    api.reply(429, BUSY, headers={"Retry-After": "7"})
    api.reply(200, {"status": "success"})
    await client.validate_token()
    assert sleeps == [7.0]

    api.reply(429, BUSY, headers={"Retry-After": "3"})
    with pytest.raises(PrefactorApiError) as info:
        await client.validate_token(retry=False)
    assert info.value.retry_after == 3.0


async def test_retry_after_http_date_uses_the_clock(make_client, api, sleeps) -> None:
    """An HTTP-date ``Retry-After`` is turned into seconds from the injected clock."""
    when = datetime.fromtimestamp(NOW + 12, tz=UTC)
    api.reply(503, BUSY, headers={"Retry-After": format_datetime(when, usegmt=True)})
    api.reply(200, {"status": "success"})
    async with make_client(clock=lambda: NOW) as client:
        await client.validate_token()
    assert sleeps == [12.0]


async def test_retry_after_is_capped_at_max_retry_delay(make_client, api, sleeps) -> None:
    """A Retry-After above ``max_retry_delay`` waits only ``max_retry_delay``."""
    api.reply(503, BUSY, headers={"Retry-After": "3600"})
    api.reply(200, {"status": "success"})
    async with make_client(max_retry_delay=30.0) as client:
        await client.validate_token()
    assert sleeps == [30.0]


async def test_backoff_is_capped_at_max_retry_delay(make_client, api, sleeps) -> None:
    """Exponential delays stop growing at ``max_retry_delay``."""
    for _ in range(5):
        api.reply(500, BUSY)
    async with make_client(max_retries=4, initial_retry_delay=1.0, max_retry_delay=5.0) as client:
        with pytest.raises(PrefactorRetryExhaustedError):
            await client.validate_token()
    assert sleeps == [1.0, 2.0, 4.0, 5.0]


async def test_closing_during_backoff_stops_retrying(make_client, api) -> None:
    """If the client is closed while waiting to retry, the next attempt raises ClientError."""
    holder: list[PrefactorHttpClient] = []

    async def closing_sleep(seconds: float) -> None:
        await holder[0].close()

    api.reply(503, BUSY)
    config = HttpClientConfig(api_url="http://prefactor.test", api_token="t")
    client = PrefactorHttpClient(
        config, transport=httpx.MockTransport(api.handler), sleep=closing_sleep
    )
    holder.append(client)
    await client.open()
    with pytest.raises(PrefactorClientError, match="closed"):
        await client.validate_token()
    assert len(api.requests) == 1


async def test_not_found_inside_retry_is_not_wrapped(client, api) -> None:
    """A permanent error after a transient one is raised as itself."""
    api.reply(503, BUSY)
    api.reply(404, {"code": "not_found", "message": "Agent instance not found"})
    with pytest.raises(PrefactorNotFoundError):
        await client.agent_instances.get("ins_0001")
    assert len(api.requests) == 2


def test_policy_delay_formula_and_jitter_bounds() -> None:
    """Delays follow ``initial * multiplier**n * U(0.75, 1.25)``, capped."""
    low = RetryPolicy(3, 1.0, 60.0, 2.0, jitter=lambda: 0.0)
    high = RetryPolicy(3, 1.0, 60.0, 2.0, jitter=lambda: 0.999999)
    assert [low.delay(n) for n in range(3)] == [0.75, 1.5, 3.0]
    assert high.delay(2) == pytest.approx(5.0, rel=1e-5)
    rng = random.Random(4)
    policy = RetryPolicy(3, 1.0, 60.0, 2.0, jitter=rng.random)
    for n in range(5):
        assert 0.75 * 2**n <= policy.delay(n) <= 1.25 * 2**n
    assert RetryPolicy(3, 1.0, 10.0, 2.0).delay(10_000) == 10.0


def test_policy_from_config() -> None:
    """The policy copies the config's retry fields."""
    config = HttpClientConfig(
        api_url="http://x",
        api_token="t",
        max_retries=5,
        initial_retry_delay=0.5,
        max_retry_delay=9.0,
        retry_multiplier=3.0,
    )
    policy = RetryPolicy.from_config(config, lambda: 0.5)
    assert (policy.max_retries, policy.initial_delay, policy.max_delay, policy.multiplier) == (
        5,
        0.5,
        9.0,
        3.0,
    )
    assert [policy.delay(n) for n in range(3)] == [0.5, 1.5, 4.5]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("nan", None),
        ("soon", None),
        ("Wed, 21 Oct 2026 07:28:00", None),
    ],
)
def test_parse_retry_after_values(value: str | None, expected: float | None) -> None:
    """Delay-seconds parse as floats; junk, zoneless dates and missing values give None."""
    assert parse_retry_after(value, NOW) == expected


def test_parse_retry_after_http_dates() -> None:
    """HTTP dates become seconds from now; dates in the past give 0."""
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    instant = datetime(2026, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert parse_retry_after(date, instant - 30) == 30.0
    assert parse_retry_after(date, instant + 30) == 0.0
