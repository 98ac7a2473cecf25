"""A small read-only client for the server's read API, with errors meant for people.

Example::

    async with TraceReader("http://127.0.0.1:8000", token) as reader:
        instance = await reader.get_instance(instance_id)
        spans = await reader.list_spans(instance_id)

Errors (all :class:`TraceReaderError`, each with a one-line message)::

    TraceReaderError
    ├── ServerUnreachableError   nothing answers at the URL
    ├── UnauthorizedError        401: missing, unknown or revoked token
    └── NotFoundError            404: no such instance or span
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

__all__ = [
    "NotFoundError",
    "ServerUnreachableError",
    "TraceReader",
    "TraceReaderError",
    "UnauthorizedError",
]

_PAGE = 100  # the read API's largest page


class TraceReaderError(Exception):
    """Reading from the server failed; ``str(exc)`` is one line for the user."""


class ServerUnreachableError(TraceReaderError):
    """Nothing answered at the API URL (not running, wrong port, timeout)."""


class UnauthorizedError(TraceReaderError):
    """The server rejected the token."""


class NotFoundError(TraceReaderError):
    """The instance or span does not exist (for this token's account)."""


class TraceReader:
    """Reads agents, instances and spans through ``/api/v1``.

    Args:
        api_url: The server's base URL, e.g. ``http://127.0.0.1:8000``.
        token: An API token of the account.
        transport: An httpx transport (tests pass an in-process one).
        timeout: Seconds per request.
    """

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            transport=transport,
            timeout=timeout,
            trust_env=False,  # a local server: never route 127.0.0.1 through a proxy
        )

    async def __aenter__(self) -> TraceReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = await self._client.get(path, params=params)
        except httpx.TransportError as exc:
            raise ServerUnreachableError(
                f"cannot reach the Prefactor server at {self.api_url} ({type(exc).__name__}); "
                "is 'prefactor serve' running?"
            ) from None
        body: Any
        try:
            body = response.json()
        except ValueError:
            body = None
        message = body.get("message") if isinstance(body, dict) else None
        if response.status_code == 401:
            raise UnauthorizedError(
                f"the server at {self.api_url} rejected the API token ({message or '401'}); "
                "pass --token or set PREFACTOR_API_TOKEN"
            )
        if response.status_code == 404:
            raise NotFoundError(str(message or f"not found: {path}"))
        if response.status_code >= 400 or not isinstance(body, dict):
            detail = message or response.reason_phrase or "unexpected answer"
            raise TraceReaderError(
                f"GET {path} failed with HTTP {response.status_code}: {detail} "
                f"(is {self.api_url} a Prefactor server?)"
            )
        return body

    async def _all(self, path: str, params: dict[str, Any], limit: int | None) -> list[Any]:
        rows: list[Any] = []
        offset = 0
        while True:
            size = _PAGE if limit is None else min(_PAGE, limit - len(rows))
            body = await self._get(
                path, {**params, "pagination[offset]": offset, "pagination[page_size]": size}
            )
            page = body.get("summaries") or []
            rows.extend(page)
            following = (body.get("pagination") or {}).get("next_page_offset")
            if not page or following is None or (limit is not None and len(rows) >= limit):
                return rows
            offset = int(following)

    async def list_instances(
        self, *, agent_id: str | None = None, status: str | None = None, limit: int = 20
    ) -> list[dict[str, Any]]:
        """The most recent instances first, optionally only one agent's or one status."""
        rows, _ = await self.instances_page(offset=0, limit=limit, agent_id=agent_id, status=status)
        return rows

    async def instances_page(
        self,
        *,
        offset: int,
        limit: int,
        agent_id: str | None = None,
        status: str | None = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of instances, newest first, and how many match in all."""
        params: dict[str, Any] = {"sorting": "-inserted_at"}
        if agent_id:
            params["agent_id"] = agent_id
        if status:
            params["status"] = status
        rows: list[dict[str, Any]] = []
        total = 0
        while len(rows) < limit:
            size = min(_PAGE, limit - len(rows))
            body = await self._get(
                "/api/v1/agent_instance",
                {**params, "pagination[offset]": offset + len(rows), "pagination[page_size]": size},
            )
            page = body.get("summaries") or []
            rows.extend(page)
            total = int((body.get("pagination") or {}).get("item_count") or 0)
            if len(page) < size:
                break
        return rows, total

    async def get_instance(self, instance_id: str) -> dict[str, Any]:
        """One instance with its span counts.

        Raises:
            NotFoundError: No instance has that id.
        """
        try:
            body = await self._get(f"/api/v1/agent_instance/{instance_id}")
        except NotFoundError:
            raise NotFoundError(f"no agent instance with id {instance_id!r}") from None
        details: dict[str, Any] = body["details"]
        return details

    async def list_spans(self, instance_id: str) -> list[dict[str, Any]]:
        """Every span of one instance (all pages)."""
        return await self._all(
            "/api/v1/agent_spans", {"agent_instance_id": instance_id, "sorting": "id"}, None
        )

    async def list_agents(self) -> list[dict[str, Any]]:
        """The account's agents (first 500)."""
        return await self._all("/api/v1/agent", {}, 500)
