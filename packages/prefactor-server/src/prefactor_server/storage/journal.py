"""The OTLP journal: raw exports kept durably until their spans are stored.

A backend that keeps one lets ``POST /v1/traces`` answer as soon as the export is
committed here (durable: a crash afterwards loses nothing, the next start stores it),
while its spans are mapped and stored right after, off the exporter's wait
(``api/otlp_journal.py``). Storing an export twice stores nothing twice (span ids are
derived from the OTel ids), so an entry is applied at least once: its removal is part of
the transaction that stores its spans, and anything left at a start is applied again.

SQLite keeps one (``SqliteStorage.keeps_otlp_journal``). PostgreSQL does not: several
server processes share its data, and a read on one must see what another answered.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

__all__ = ["JournalSession", "Journaled"]


class Journaled(NamedTuple):
    """One journaled export: its id (in arrival order), account, media type and body
    (decompressed)."""

    id: int
    account_id: str
    media: str
    body: bytes


class JournalSession(Protocol):
    """The write session of a backend that keeps the OTLP journal."""

    def journal_export(self, account_id: str, media: str, body: bytes, received_at: str) -> int:
        """Keep an export (committed with the transaction); returns its journal id."""
        ...

    def drop_journaled(self, journal_id: int) -> None:
        """Forget an export whose spans this transaction stores (no-op when gone)."""
        ...

    def journaled(self, after: int, limit: int) -> list[Journaled]:
        """Up to ``limit`` kept exports with an id above ``after``, oldest first."""
        ...
