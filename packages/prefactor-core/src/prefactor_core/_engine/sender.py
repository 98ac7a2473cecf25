"""The dispatcher's view of the HTTP client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from prefactor_core._engine.pacing import Pacer
from prefactor_http import PrefactorHttpClient

__all__ = ["PIECE_BYTES", "HttpSender"]

PIECE_BYTES = 64 * 1024
"""A bulk body longer than this is handed to the socket this many bytes per turn of the
engine on the agent's loop (``pacing``): writing a body of several hundred kilobytes in
one go holds the loop for a millisecond or more (the kernel copies it in the call)."""


class HttpSender:
    """Sends pre-rendered JSON bodies, one attempt each: the dispatcher owns retries.

    Args:
        http: The open HTTP client.
        pacer: The engine's turns on the loop; a long bulk body is written in pieces
            of ``PIECE_BYTES``, a turn each. None writes every body at once.
    """

    __slots__ = ("_http", "_pacer")

    def __init__(self, http: PrefactorHttpClient, pacer: Pacer | None = None) -> None:
        self._http = http
        self._pacer = pacer

    async def post(self, path: str, body: bytes) -> dict[str, Any]:
        """POST ``body`` to ``path``; return the JSON object answered.

        Bulk requests ask for minimal outputs (RFC 7240 ``Prefer: return=minimal``):
        the engine only needs each item's status, and a server that does not know the
        preference answers in full, which works just as well. They ask our server to
        leave the plain successes out, too (``omit=success``; ``settlement`` reads both
        forms of the answer), and for the answer as it is (``Accept-Encoding:
        identity``): it is a fraction of the request's size, and compressing it costs
        both sides CPU. With a pacer, the engine takes a turn between the answer's
        arrival and its decoding.
        """
        http, pacer = self._http, self._pacer
        if path != "/api/v1/bulk":
            return await http.request("POST", path, content=body, retry=False)
        if pacer is None:
            return await http.request("POST", path, content=body, retry=False, headers=_BULK)
        if len(body) <= PIECE_BYTES:
            return await http.request(
                "POST", path, content=body, retry=False, headers=_BULK, pause=pacer.turn
            )
        # Streamed with its length given, so it goes out as one ordinary body.
        headers = {**_BULK, "Content-Length": str(len(body))}
        return await http.request(
            "POST",
            path,
            content=_pieces(body, pacer),
            retry=False,
            headers=headers,
            pause=pacer.turn,
        )


async def _pieces(body: bytes, pacer: Pacer) -> AsyncIterator[bytes]:
    """``body`` in pieces of ``PIECE_BYTES``, a turn of the engine before each but the
    first."""
    for start in range(0, len(body), PIECE_BYTES):
        if start:
            await pacer.turn()
        yield body[start : start + PIECE_BYTES]


_BULK = {"Prefer": "return=minimal, omit=success", "Accept-Encoding": "identity"}
