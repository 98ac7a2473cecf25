"""Configuration of the HTTP client (``HttpClientConfig``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["HttpClientConfig"]


def _require_positive(name: str, value: float) -> None:
    # `not value > 0` also rejects NaN, which `value <= 0` would let through.
    if not value > 0 or math.isinf(value):
        raise ValueError(f"{name} must be positive (and finite), got {value!r}")


@dataclass
class HttpClientConfig:
    """Connection, timeout and retry settings for ``PrefactorHttpClient``.

    All values are validated when the object is built; a bad value raises ``ValueError``
    naming the field. The token is left out of ``repr`` so configs can be logged.

    Example:
        >>> config = HttpClientConfig(api_url="http://localhost:8000", api_token="pf_dev")
        >>> config.max_retries
        3

    Attributes:
        api_url: Base URL of the API, ``http://`` or ``https://``; a trailing ``/`` is
            ignored. Example: ``https://app.prefactorai.com``.
        api_token: Bearer token sent as ``Authorization: Bearer <token>``.
        request_timeout: Timeout in seconds for reading, writing and waiting for a
            pooled connection.
        connect_timeout: Timeout in seconds for establishing a connection.
        max_retries: Retries after the first attempt for transient failures; ``0``
            disables retrying.
        initial_retry_delay: Delay in seconds before the first retry (before jitter).
        max_retry_delay: Upper bound in seconds for any retry delay, including one asked
            for by a ``Retry-After`` header.
        retry_multiplier: Factor by which the delay grows with each retry (at least 1).
        retry_on_status_codes: Kept for compatibility with the published 0.4 client,
            which declares but never reads it; the retry rule is fixed to 429 and 5xx.
        default_idempotency_key: Kept for compatibility; not read.
    """

    api_url: str
    api_token: str = field(repr=False)
    request_timeout: float = 30.0
    connect_timeout: float = 10.0
    max_retries: int = 3
    initial_retry_delay: float = 1.0
    max_retry_delay: float = 60.0
    retry_multiplier: float = 2.0
    retry_on_status_codes: tuple[int, ...] = (429, 500, 502, 503, 504)
    default_idempotency_key: str | None = None

    def __post_init__(self) -> None:
        """Validate every field.

        Raises:
            ValueError: If a field is missing or out of range; the message names it.
        """
        if not self.api_url:
            raise ValueError("api_url is required")
        parts = urlsplit(self.api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"api_url must be an http:// or https:// URL, got {self.api_url!r}")
        if not self.api_token:
            raise ValueError("api_token is required")
        _require_positive("request_timeout", self.request_timeout)
        _require_positive("connect_timeout", self.connect_timeout)
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, int):
            raise ValueError(f"max_retries must be an integer, got {self.max_retries!r}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be non-negative, got {self.max_retries}")
        _require_positive("initial_retry_delay", self.initial_retry_delay)
        _require_positive("max_retry_delay", self.max_retry_delay)
        if self.initial_retry_delay > self.max_retry_delay:
            raise ValueError(
                "initial_retry_delay must be <= max_retry_delay, got "
                f"{self.initial_retry_delay} > {self.max_retry_delay}"
            )
        if not self.retry_multiplier >= 1 or math.isinf(self.retry_multiplier):
            raise ValueError(f"retry_multiplier must be >= 1, got {self.retry_multiplier!r}")
