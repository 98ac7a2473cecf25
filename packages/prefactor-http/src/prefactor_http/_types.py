"""Type aliases for the flexible inputs of the public signatures (as httpx's ``_types``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeAlias

JSONObject: TypeAlias = dict[str, Any]
"""A decoded JSON object: what every Prefactor response body is."""

QueryParams: TypeAlias = Mapping[str, str | int | float | bool]
"""Query-string parameters; values are converted with ``str()`` by httpx."""

SleepFunc: TypeAlias = Callable[[float], Awaitable[object]]
"""An ``asyncio.sleep``-like coroutine function, injectable so retry tests run instantly."""

ClockFunc: TypeAlias = Callable[[], float]
"""A ``time.time``-like function returning Unix seconds; used to read HTTP-date headers."""

JitterFunc: TypeAlias = Callable[[], float]
"""A ``random.random``-like function returning a float in ``[0, 1)``."""

ControlSignalCallback: TypeAlias = Callable[[str | None], None]
"""Called with ``control.reason`` when a span response asks the agent to terminate."""


class Requester(Protocol):
    """What a resource client needs from the HTTP client: one request method.

    Resource modules depend on this protocol instead of importing the client, so imports
    run one way (client → resources).
    """

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        json_data: JSONObject | None = None,
        idempotency_key: str | None = None,
        retry: bool = True,
    ) -> JSONObject:
        """Send one API request and return the decoded JSON object."""
        ...
