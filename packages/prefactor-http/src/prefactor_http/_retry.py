"""The retry policy of both packages: which delay comes before each retry (wire protocol 1.8).

One rule for every loop that retries: the HTTP client's own retries, ``RetryHandler``,
and in the core SDK the delivery engine, the start-up probe of the API and
``TaskExecutor``. Its randomness (``jitter``) and its clock (``sleep``) are injected, so
tests run it on a fake clock with a fixed random source instead of waiting.
"""

from __future__ import annotations

import asyncio
import math
import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from prefactor_http._types import JitterFunc, SleepFunc
from prefactor_http.config import HttpClientConfig

__all__ = ["RetryPolicy", "parse_retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with ±25 % jitter, capped, honouring ``Retry-After``.

    The delay before retry ``n`` (0-based) is
    ``min(initial_delay * multiplier**n * U(0.75, 1.25), max_delay)``. When the failed
    response carried ``Retry-After``, that value (capped at ``max_delay``) is used instead.

    Example::

        policy = RetryPolicy(max_retries=3, initial_delay=1.0, max_delay=60.0)
        for retry in range(policy.max_retries + 1):
            try:
                return await call()
            except TransientError as error:
                if not policy.allows(retry):
                    raise
                await policy.wait(retry, error.retry_after)

    Attributes:
        max_retries: Retries after the first attempt; None for a loop that retries until
            it succeeds or is stopped (the SDK's delivery engine and start-up probe).
        initial_delay: The delay before the first retry, in seconds, before jitter.
        max_delay: The longest delay, including one asked for by ``Retry-After``.
        multiplier: The factor by which the delay grows with each retry.
        jitter: Returns a float in ``[0, 1)`` (``random.random``); tests fix it.
        sleep: Waits the given seconds; ``asyncio.sleep`` (looked up at each wait) when
            None. Tests pass a fake clock's.
    """

    max_retries: int | None
    initial_delay: float
    max_delay: float = math.inf
    multiplier: float = 2.0
    jitter: JitterFunc = field(default=random.random, compare=False)
    sleep: SleepFunc | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_config(
        cls,
        config: HttpClientConfig,
        jitter: JitterFunc | None = None,
        sleep: SleepFunc | None = None,
    ) -> RetryPolicy:
        """Build the policy from an ``HttpClientConfig``'s retry fields."""
        return cls(
            max_retries=config.max_retries,
            initial_delay=config.initial_retry_delay,
            max_delay=config.max_retry_delay,
            multiplier=config.retry_multiplier,
            jitter=random.random if jitter is None else jitter,
            sleep=sleep,
        )

    def allows(self, retry_index: int) -> bool:
        """Whether retry number ``retry_index`` (0 for the first retry) may happen."""
        return self.max_retries is None or retry_index < self.max_retries

    def delay(self, retry_index: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry_index`` (0 for the first retry).

        Args:
            retry_index: How many retries came before this one.
            retry_after: The failed response's ``Retry-After`` in seconds, if any; it
                replaces the computed delay (negative counts as 0), capped.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        try:
            base = self.initial_delay * self.multiplier**retry_index
        except OverflowError:
            return self.max_delay if self.initial_delay > 0 else 0.0
        return min(base * (0.75 + 0.5 * self.jitter()), self.max_delay)

    async def wait(self, retry_index: int, retry_after: float | None = None) -> float:
        """Wait the delay before retry number ``retry_index`` on the policy's clock.

        Returns:
            The seconds waited.
        """
        delay = self.delay(retry_index, retry_after)
        await (self.sleep or asyncio.sleep)(delay)
        return delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Read a ``Retry-After`` header as seconds from ``now``.

    Args:
        value: The header value: delay seconds (``"120"``) or an HTTP date.
        now: The current Unix time, used for the HTTP-date form.

    Returns:
        Non-negative seconds, or None when the header is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; the parser leaves "-0000" naive.
        return None
    return max(when.timestamp() - now, 0.0)
