"""Checking a token with a brake on guessing (issue 10).

Every wrong token counts against the client's address; after :data:`FAILURE_LIMIT` wrong
tokens within :data:`WINDOW_SECONDS`, tokens from that address are not checked at all
until the window ends: the answer is 429 with ``Retry-After``, right or wrong, so an
attacker learns nothing more. A token that already worked from that address before
keeps working, so an agent or a signed-in viewer is not locked out by someone guessing
next to it; other addresses are not affected. The counts live in the storage (one small
table, see :meth:`WriteSession.record_auth_failure`), so they survive a restart.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from prefactor_server.domain.accounts import hash_token
from prefactor_server.errors import ApiError
from prefactor_server.storage.base import Account, ReadSession, Storage

__all__ = ["FAILURE_LIMIT", "WINDOW_SECONDS", "AuthGuard"]

FAILURE_LIMIT = 10
"""Wrong tokens one client address may send per window before it is made to wait."""
WINDOW_SECONDS = 60.0
"""Length of a client's failure window, from its first wrong token."""
_KNOWN_GOOD = 4096  # (address, token hash) pairs remembered as having worked


class AuthGuard:
    """Authenticates tokens for the API and the viewer.

    Args:
        storage: Where accounts, tokens and failure counts are.
        limit: Wrong tokens per window before the client waits.
        window: Seconds of a failure window.
        clock: Unix time (tests pass their own).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        limit: int = FAILURE_LIMIT,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._limit = limit
        self._window = window
        self._clock = clock
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()

    async def authenticate(self, token: str | None, client: str) -> Account:
        """Return the account of ``token`` sent from address ``client``.

        Raises:
            ApiError: 401 ``unauthorized`` for a missing, unknown or revoked token; 429
                ``rate_limited`` (with a ``Retry-After`` header) while the client waits.
        """
        if not token:
            raise ApiError(
                401, "unauthorized", "Missing bearer token: send 'Authorization: Bearer <token>'"
            )
        digest = hash_token(token)

        def look(session: ReadSession) -> tuple[tuple[int, float] | None, Account | None]:
            return session.auth_failures(client), session.account_for_token(digest)

        failures, account = await self._storage.read(look)
        now = self._clock()
        if failures is not None and failures[0] >= self._limit:
            until = failures[1] + self._window
            if now < until and (account is None or (client, digest) not in self._known):
                wait = max(1, math.ceil(until - now))
                raise ApiError(
                    429,
                    "rate_limited",
                    f"Too many wrong tokens from this address; try again in {wait} seconds",
                    headers={"Retry-After": str(wait)},
                )
        if account is None:
            await self._storage.write(
                lambda session: session.record_auth_failure(client, now, self._window)
            )
            raise ApiError(401, "unauthorized", "Invalid or revoked API token")
        self._remember(client, digest)
        return account

    def _remember(self, client: str, digest: str) -> None:
        key = (client, digest)
        if key in self._known:
            self._known.move_to_end(key)
            return
        self._known[key] = None
        if len(self._known) > _KNOWN_GOOD:
            self._known.popitem(last=False)
