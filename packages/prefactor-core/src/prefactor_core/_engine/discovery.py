"""Discovery: what the API offers, asked once at start-up and retried until it answers.

``discover`` probes ``GET /api/v1/ping`` (one attempt per try; the waits between tries
come from the engine's ``Backoff``, which ``flush()``/``close()`` cut short) and returns
the answer's ``capabilities`` as a ``Capabilities`` value: whether to send in bulk, the
server's bulk limits, and the id partition the client's PFIDs carry. An API that does
not announce its partition is asked once more, by ``register_learning_partition``: the
first instance is registered awaited and the partition read from the id it was given.

Nothing here touches the client: the client applies the value (``configure`` on the
dispatcher, ``set_partition`` on the id factory) and latches a fatal error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from prefactor_core._engine.rejection import is_fatal
from prefactor_core._engine.retry import Backoff
from prefactor_core._engine.wire import BULK_ACTIONS
from prefactor_http import PrefactorHttpClient
from prefactor_http.exceptions import is_permanent_http_error
from prefactor_http.pfid import MAX_PARTITION, is_pfid, parse_pfid

__all__ = ["Capabilities", "discover", "register_learning_partition"]

logger = logging.getLogger("prefactor_core")


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the API said it offers, read from the ``capabilities`` of its ping answer.

    Attributes:
        bulk_actions: The actions the bulk endpoint accepts (empty: no bulk endpoint).
        bulk_max_items: The most items in one bulk request, when the server says.
        bulk_max_bytes: The largest bulk request body in bytes, when the server says.
        partition: The id partition for the client's PFIDs; None when the server did
            not announce one (the client then learns it from the first issued id).
    """

    bulk_actions: frozenset[str] = frozenset()
    bulk_max_items: int | None = None
    bulk_max_bytes: int | None = None
    partition: int | None = None

    @property
    def bulk(self) -> bool:
        """True when the bulk endpoint takes every action the SDK sends (the SDK still
        uses bulk for the actions it takes when this is False: see ``bulk_actions``)."""
        return self.bulk_actions >= _SDK_BULK_ACTIONS

    @classmethod
    def parse(cls, ping: Mapping[str, Any]) -> Capabilities:
        """Read a ping answer; what is missing or malformed counts as not offered.

        Only a list of strings counts as bulk actions, a whole number from 0 to
        ``MAX_PARTITION`` as the partition, and a positive whole number as a bulk limit.
        """
        caps = ping.get("capabilities")
        if not isinstance(caps, Mapping):
            return cls()
        actions = caps.get("bulk_actions")
        partition = caps.get("pfid_partition")
        return cls(
            bulk_actions=frozenset(a for a in actions if isinstance(a, str))
            if isinstance(actions, list)
            else frozenset(),
            bulk_max_items=_positive(caps.get("bulk_max_items")),
            bulk_max_bytes=_positive(caps.get("bulk_max_bytes")),
            partition=partition if _whole(partition) and 0 <= partition <= MAX_PARTITION else None,
        )


_SDK_BULK_ACTIONS = frozenset(BULK_ACTIONS.values())


def _whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(value: object) -> int | None:
    return value if _whole(value) and value > 0 else None


async def discover(http: PrefactorHttpClient, backoff: Backoff) -> Capabilities:
    """Ask the API what it supports, retrying until it answers.

    An API without a ping (a permanent error such as 404) offers nothing: one request
    per operation. Transient failures are retried after ``backoff``'s waits, which
    ``hurry()`` cuts short.

    Raises:
        Exception: A fatal error (the token was rejected: 401 or 403), for the client
            to latch.
    """
    while True:
        try:
            info = await http.validate_token(retry=False)
        except Exception as error:
            if is_fatal(error):
                raise
            if is_permanent_http_error(error):
                logger.info("the Prefactor API has no ping (%s); not using bulk", error)
                return Capabilities()
            delay = backoff.delay_after(error)
            logger.info(
                "the Prefactor API is not answering yet (%s); retrying in %.1fs", error, delay
            )
            await backoff.wait(delay)
            continue
        return Capabilities.parse(info)


async def register_learning_partition(
    http: PrefactorHttpClient, **register: Any
) -> tuple[str, int | None]:
    """Register one agent instance, awaited, to learn the server's id partition.

    Args:
        http: The open HTTP client.
        register: The arguments of ``agent_instances.register`` (one attempt is made).

    Returns:
        The instance id the server issued, and its partition (None when the id is not
        a PFID).

    Raises:
        Exception: What the request raised.
    """
    instance = await http.agent_instances.register(**register, retry=False)
    partition = parse_pfid(instance.id).partition if is_pfid(instance.id) else None
    return instance.id, partition
