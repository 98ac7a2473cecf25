"""Retrying: ``RetryPolicy``, the one backoff rule, and ``RetryHandler`` around any call.

The HTTP client retries its own requests with a ``RetryPolicy``; ``RetryHandler`` is for
code that wants the same backoff (exponential, ±25 % jitter, capped) around calls of its
own, and the core SDK's background loops use the policy too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from prefactor_http._retry import RetryPolicy
from prefactor_http.config import HttpClientConfig
from prefactor_http.exceptions import PrefactorRetryExhaustedError

__all__ = ["HttpClientConfig", "RetryHandler", "RetryPolicy"]


class RetryHandler:
    """Retries an async call with the backoff of an ``HttpClientConfig``.

    Example::

        handler = RetryHandler(HttpClientConfig(api_url=url, api_token=token))
        answer = await handler.execute(fetch, lambda e: isinstance(e, OSError), "x")

    Attributes:
        config: The configuration whose ``max_retries``, ``initial_retry_delay``,
            ``max_retry_delay`` and ``retry_multiplier`` are used.
    """

    def __init__(self, config: HttpClientConfig) -> None:
        self.config = config

    async def execute(
        self,
        operation: Callable[..., Awaitable[Any]],
        is_retryable: Callable[[Exception], bool],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """Await ``operation(*args, **kwargs)``, retrying while ``is_retryable(error)``.

        Returns:
            What the operation returned.

        Raises:
            Exception: The operation's error when it is not retryable, or when the
                config allows no retries.
            PrefactorRetryExhaustedError: When every retry failed too (the last error
                is its ``last_error``).
        """
        policy = RetryPolicy.from_config(self.config)
        attempt = 0
        while True:
            attempt += 1
            try:
                return await operation(*args, **kwargs)
            except Exception as error:
                if not is_retryable(error) or policy.max_retries == 0:
                    raise
                if not policy.allows(attempt - 1):
                    raise PrefactorRetryExhaustedError(
                        f"the operation failed {attempt} times", error, attempts=attempt
                    ) from error
                await policy.wait(attempt - 1)
