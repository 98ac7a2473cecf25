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
        """POST ``body`` to ``path``; return the JSON object answered.

        Bulk requests ask for minimal outputs (RFC 7240 ``Prefer: return=minimal``):
        the engine only needs each item's status, and a server that does not know the
        preference answers in full, which works just as well. They also ask for the
        answer uncompressed: a minimal answer is a few dozen bytes per item, less than
        the request carried, and compressing and inflating it cost both ends CPU per
        request.
        """
        headers = _MINIMAL if path == "/api/v1/bulk" else None
        return await self._http.request("POST", path, content=body, retry=False, headers=headers)


_MINIMAL = {"Prefer": "return=minimal", "Accept-Encoding": "identity"}
