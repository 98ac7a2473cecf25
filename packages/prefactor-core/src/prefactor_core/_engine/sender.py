"""The dispatcher's view of the HTTP client."""

from __future__ import annotations

from typing import Any

from prefactor_http import PrefactorHttpClient

__all__ = ["HttpSender"]


class HttpSender:
    """Sends pre-rendered JSON bodies, one attempt each: the dispatcher owns retries."""

    __slots__ = ("_http",)

    def __init__(self, http: PrefactorHttpClient) -> None:
        self._http = http

    async def post(self, path: str, body: bytes) -> dict[str, Any]:
        """POST ``body`` to ``path``; return the JSON object answered."""
        return await self._http.request("POST", path, content=body, retry=False)
