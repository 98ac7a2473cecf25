"""Configuration of the prefactor-core client."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from prefactor_core._payload import DEFAULT_MAX_FIELD_BYTES, DEFAULT_MAX_SPAN_BYTES
from prefactor_http import HttpClientConfig

__all__ = ["PrefactorCoreConfig", "QueueConfig"]

logger = logging.getLogger("prefactor_core")


class _LenientModel(BaseModel):
    """Accepts unknown keys as the published models do (code written for another
    version keeps running), but says which ones it ignored."""

    @model_validator(mode="before")
    @classmethod
    def _warn_about_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in cls.model_fields)
            if unknown:
                logger.warning("%s ignores unknown option(s): %s", cls.__name__, ", ".join(unknown))
        return data


class QueueConfig(_LenientModel):
    """How queued operations are held and delivered.

    Example::

        QueueConfig(num_workers=3, max_queue_size=50_000)

    Attributes:
        num_workers: How many requests may be in flight at once (1 to 20).
        max_retries: How often an operation that fails with an unexpected (non-HTTP)
            error is retried before it is dropped. Transient API failures (connection
            errors, timeouts, 429, 5xx) are retried until delivered or until the close
            deadline, whatever this says, so an outage loses nothing.
        retry_delay_base: The first retry delay in seconds; it doubles per attempt,
            with jitter, up to ``max_retry_delay``. A ``Retry-After`` header wins.
        max_retry_delay: The longest delay between two retries, in seconds.
            ``flush()`` and ``close()`` cut any such wait short and retry at once, then
            at short intervals until their deadline.
        max_probe_delay: The longest delay between two probes of an API that has not
            answered since start-up, in seconds; short, so that an API that comes back
            is used within a few seconds.
        max_queue_size: The most operations held in memory. When the queue is full a
            new operation waits up to ``put_timeout`` seconds for room, then is dropped
            and counted, and a warning is logged once.
        put_timeout: How long an enqueue may wait for room in a full queue.
        batch_size: The most items sent in one bulk request (a span create that
            carries its finish is one item); the server's own cap
            (``capabilities.bulk_max_items``) applies when it is lower. Fuller requests
            cost the agent's event loop less per span.
        batch_linger: How long the sender waits for more operations before sending a
            batch that is not full, in seconds.
    """

    # Mutable as published; an assigned value is validated like a given one.
    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    num_workers: int = Field(default=3, ge=1, le=20)
    max_retries: int = Field(default=3, ge=0)
    retry_delay_base: float = Field(default=1.0, gt=0)
    max_retry_delay: float = Field(default=30.0, gt=0)
    max_probe_delay: float = Field(default=2.0, gt=0)
    max_queue_size: int = Field(default=200_000, ge=1)
    put_timeout: float = Field(default=0.05, ge=0)
    batch_size: int = Field(default=1000, ge=1, le=1000)
    batch_linger: float = Field(default=0.005, ge=0)


class PrefactorCoreConfig(_LenientModel):
    """Everything ``PrefactorCoreClient`` needs.

    Example::

        config = PrefactorCoreConfig(
            http_config=HttpClientConfig(api_url="http://127.0.0.1:8000", api_token="..."),
            schema_registry=registry,
        )

    Attributes:
        http_config: Where the API is and how to talk to it.
        queue_config: How operations are queued and delivered.
        schema_registry: A ``SchemaRegistry`` whose span types are registered with each
            new agent instance when no schema version is given.
        close_timeout: How long ``close()`` keeps delivering what is queued, in seconds.
        startup_timeout: How long ``initialize()`` waits for the API's first answer
            before carrying on without it (delivery then starts when the API answers).
        spool_path: A SQLite file that keeps queued operations on disk, so that what
            a crashed process had queued is delivered by the next process that opens
            the same spool. None keeps the queue in memory.
        enabled: False turns the client into a quiet no-op: ids are made and calls
            succeed, but nothing is sent.
        mask: A function called with every payload (span params and results, quality
            payloads, the agent version) before it is queued; it returns the payload to
            send, e.g. with secrets and personal data removed. It runs on the agent's
            path, so keep it quick. A hook that raises is logged and counted
            (``statistics().mask_errors``) and the payload is replaced by a marker.
        max_field_bytes: The most bytes of UTF-8 one string value of a payload may take;
            a longer one is cut and ends with a marker saying how much was cut.
        max_span_bytes: The most bytes of JSON a span's params and result may take
            together (a quality payload on its own); a larger payload has its longest
            strings cut further, or is replaced by a marker. Keep it below the API's
            request limit (10 MiB for the local server).
        termination_poll_interval: How often the termination monitor asks the API
            whether the current instance was terminated, in seconds (responses to
            span writes tell it sooner).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="ignore")

    http_config: HttpClientConfig
    queue_config: QueueConfig = Field(default_factory=QueueConfig)
    schema_registry: Any = Field(default=None)
    close_timeout: float = Field(default=10.0, ge=0)
    startup_timeout: float = Field(default=2.0, ge=0)
    spool_path: Path | None = None
    enabled: bool = True
    mask: Callable[[Any], Any] | None = None
    max_field_bytes: int = Field(default=DEFAULT_MAX_FIELD_BYTES, ge=256)
    max_span_bytes: int = Field(default=DEFAULT_MAX_SPAN_BYTES, ge=4096, le=64 * 1024 * 1024)

    @model_validator(mode="after")
    def _check_budgets(self) -> PrefactorCoreConfig:
        if self.max_field_bytes > self.max_span_bytes:
            raise ValueError(
                f"max_field_bytes ({self.max_field_bytes}) must not exceed "
                f"max_span_bytes ({self.max_span_bytes})"
            )
        return self

    termination_poll_interval: float = Field(default=30.0, gt=0)
