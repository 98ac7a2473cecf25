"""Configuration of the prefactor-core client."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
        max_queue_size: The most operations held in memory. When the queue is full a
            new operation waits up to ``put_timeout`` seconds for room, then is dropped
            and counted, and a warning is logged once.
        put_timeout: How long an enqueue may wait for room in a full queue.
        batch_size: The most operations sent in one bulk request.
        batch_linger: How long the sender waits for more operations before sending a
            batch that is not full, in seconds.
    """

    # Mutable as published; an assigned value is validated like a given one.
    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    num_workers: int = Field(default=3, ge=1, le=20)
    max_retries: int = Field(default=3, ge=0)
    retry_delay_base: float = Field(default=1.0, gt=0)
    max_retry_delay: float = Field(default=30.0, gt=0)
    max_queue_size: int = Field(default=200_000, ge=1)
    put_timeout: float = Field(default=0.05, ge=0)
    batch_size: int = Field(default=500, ge=1, le=1000)
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
    termination_poll_interval: float = Field(default=30.0, gt=0)
