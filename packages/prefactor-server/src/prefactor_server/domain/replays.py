"""What an idempotency row keeps of an answer, and the answer a replay gives back.

A replay answers exactly what the first request answered (wire spec 6.3). Most bulk
traffic is span creates that are terminal at once (our SDK merges start and finish):
such a span never changes again (finish needs an active or pending span), so where the
storage reads a span back exactly as it was written (``rebuilds_span_answers``) its row
keeps only a reference to the span, and a replay rebuilds the answer from it. That
keeps a few dozen bytes per span instead of a second copy of its payloads.

A full answer is a JSON object (``{``); a reference is ``@`` and the span id.
"""

from __future__ import annotations

from typing import Any

import orjson

from prefactor_server.domain.resources import span_resource
from prefactor_server.storage.base import WriteSession

__all__ = ["REFERENCE", "minimal_replay", "replayed", "span_reference"]

REFERENCE = b"@"
"""The first byte of a kept answer that is a reference to its span (then the span id)."""
_TERMINAL = ("complete", "failed", "cancelled")


def span_reference(session: WriteSession, status_code: int, body: dict[str, Any]) -> bytes | None:
    """The reference to keep instead of a span create's answer ``body``, or None when the
    full answer must be kept (a span that may still change, or whose answer carried
    something the span does not: ``control``, or ``orphaned`` that a parent can clear)."""
    if not session.rebuilds_span_answers or status_code != 201 or "control" in body:
        return None
    details = body["details"]
    if details["orphaned"] or details["status"] not in _TERMINAL:
        return None
    span_id: str = details["id"]
    return REFERENCE + span_id.encode()


def replayed(session: WriteSession, account_id: str, stored: bytes) -> bytes:
    """The answer a stored row gives back (a reference rebuilt from its span)."""
    if stored[:1] != REFERENCE:
        return stored
    record = session.get_span(account_id, stored[1:].decode())
    if record is None:  # pragma: no cover - spans are never deleted
        raise LookupError(f"span of a stored answer is gone: {stored[1:]!r}")
    return orjson.dumps({"status": "success", "details": span_resource(record)})


def minimal_replay(stored: bytes) -> dict[str, Any] | None:
    """The ``Prefer: return=minimal`` answer of a reference (no read needed), else None."""
    if stored[:1] != REFERENCE:
        return None
    return {"status": "success", "id": stored[1:].decode()}
