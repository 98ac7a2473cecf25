"""The retry policy: which delay comes before each retry (wire protocol 1.8)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

from prefactor_http._types import JitterFunc
from prefactor_http.config import HttpClientConfig


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with ±25 % jitter, capped, honouring ``Retry-After``.

    The delay before retry ``n`` (0-based) is
    ``min(initial_delay * multiplier**n * U(0.75, 1.25), max_delay)``. When the failed
    response carried ``Retry-After``, that value (capped at ``max_delay``) is used instead.
    """

    max_retries: int
    initial_delay: float
    max_delay: float
    multiplier: float
    jitter: JitterFunc = field(default=random.random, compare=False)

    @classmethod
    def from_config(cls, config: HttpClientConfig, jitter: JitterFunc | None = None) -> RetryPolicy:
        """Build the policy from the client's config."""
        return cls(
            max_retries=config.max_retries,
            initial_delay=config.initial_retry_delay,
            max_delay=config.max_retry_delay,
            multiplier=config.retry_multiplier,
            jitter=random.random if jitter is None else jitter,
        )

    def delay(self, retry_index: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry_index`` (0 for the first retry)."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        try:
            base = self.initial_delay * self.multiplier**retry_index
        except OverflowError:
            return self.max_delay
        return min(base * (0.75 + 0.5 * self.jitter()), self.max_delay)


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
