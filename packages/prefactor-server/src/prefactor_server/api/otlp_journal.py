"""OTLP exports answered once journaled, their spans stored right after.

On a backend that keeps the OTLP journal (``storage/journal.py``; SQLite),
``POST /v1/traces`` checks an export (a protobuf one is parsed and its ids checked, so
refused spans are still reported in the answer), commits its body to the journal, and
answers: the export is durable from then
on. The :class:`Applier` then maps and stores its spans, one export at a time in the
order they were answered, and removes the journal entry in the same transaction. The
exporter encodes its next export meanwhile instead of waiting for the store.

What a client sees stays as if the answer had waited for the store:

* **Reads wait for it.** A GET or HEAD request of an account, once authenticated, waits
  until every export of that account answered before it arrived is stored
  (:func:`read_after_exports`), so the API, the viewer and a test reading right after an
  export see its spans. A read waits only when its own account has exports not yet
  stored (which may be queued behind other accounts' exports: one queue, in order).
* **Nothing is lost.** A failed store is tried again a few times (``RETRY_DELAYS``);
  an entry left in the journal (the process stopped, or every attempt failed) is stored
  at the next start (:func:`replay`) before the server answers anyone. Storing an export
  twice stores nothing twice, so an entry is applied at least once. A row that can never
  be stored (its body does not decode, its account is gone) is logged and removed.
* **Back-pressure is unchanged.** Spans journaled but not yet stored count as pending
  (:class:`PendingSpans`); past ``otlp_max_pending_spans`` an export gets 503 and
  ``Retry-After``.

What the answer cannot carry any more: spans refused while storing (a trace whose
instance id belongs to a run that is not OTel's). Those are logged and counted
(:attr:`Applier.refused`); spans refused while decoding are still in the answer.

One lane: checking an export and applying one never run at the same time
(:attr:`Applier.lane`). Both are Python on threads of one interpreter; side by side, the
writer (which releases the GIL at each row it inserts) waits for the other thread at
every row, and storing 512 spans takes many times as long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import weakref
from collections import deque
from dataclasses import dataclass
from typing import cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from prefactor_server import _time
from prefactor_server.domain.context import WriteContext
from prefactor_server.domain.otlp_decode import Export, decode_json
from prefactor_server.domain.otlp_ingest import Outcome, PreparedTrace, prepare, store
from prefactor_server.domain.otlp_protobuf import Checked, convert_protobuf, decode_protobuf
from prefactor_server.domain.schemas import SchemaCache
from prefactor_server.errors import ApiError
from prefactor_server.storage.base import Account, Storage, WriteSession
from prefactor_server.storage.journal import Journaled, JournalSession

__all__ = ["Applier", "Entry", "PendingSpans", "read_after_exports", "replay"]

logger = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
"""The protobuf media type (any other journaled media is OTLP/JSON)."""


class PendingSpans:
    """Spans received and not yet stored, across requests: admitted on worker threads
    (right after decoding), released on the event loop."""

    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def admit(self, count: int, limit: int) -> bool:
        """Count ``count`` more spans as pending, unless that passes ``limit`` while others
        are pending (one export larger than the limit alone is still taken)."""
        with self._lock:
            if count and self.spans + count > limit and self.spans:
                return False
            self.spans += count
            return True

    def release(self, count: int) -> None:
        """Stop counting ``count`` spans (stored, or failed to store)."""
        with self._lock:
            self.spans -= count


@dataclass
class Entry:
    """A journaled export waiting to be stored: its journal id, account, spans (a
    protobuf export only checked, converted when stored), and how many count as
    pending."""

    journal_id: int
    account: Account
    export: Export | Checked
    counted: int


@dataclass
class _StoreJob:
    """One write transaction: an entry's spans stored, the entry removed."""

    journal_id: int
    account: Account
    traces: list[PreparedTrace]
    schemas: SchemaCache

    def __call__(self, session: WriteSession) -> Outcome:
        stamp = _time.now()
        ctx = WriteContext(account=self.account, schemas=self.schemas, clock=lambda: stamp)
        outcome = store(session, ctx, self.traces)
        cast(JournalSession, session).drop_journaled(self.journal_id)
        return outcome


def _report(journal_id: int, outcome: Outcome) -> None:
    if outcome.rejected:
        logger.warning(
            "OTLP export %d: %d span(s) refused while storing: %s",
            journal_id,
            outcome.rejected,
            "; ".join(outcome.errors)[:500],
        )


# Pauses before storing an export again after its store failed (a locked or full disk
# may clear); after the last, the export is left in the journal for the next start.
RETRY_DELAYS = (0.05, 0.2, 1.0, 3.0)


class Applier:
    """Stores journaled exports in the order they were answered (see the module
    docstring), on the event loop that answered them.

    Attributes:
        pending: The spans counted until stored (shared with the endpoint).
        retry_delays: Seconds to wait before each new attempt at a failed store.
        stored: Spans stored so far.
        refused: Spans refused while storing (logged).
        retries: Failed attempts at storing an export that were tried again (logged).
        failures: Exports given up (logged): left in the journal for the next start
            when storing failed every time, removed from it when they cannot be
            converted at all.
    """

    def __init__(self, backend: Storage, schemas: SchemaCache, pending: PendingSpans) -> None:
        self._backend = backend
        self._schemas = schemas
        self.pending = pending
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS
        self.stored = 0
        self.refused = 0
        self.retries = 0
        self.failures = 0
        self._queue: deque[Entry] = deque()
        # Per account: exports submitted, and those stored (or given up) since.
        self._received: dict[str, int] = {}
        self._applied: dict[str, int] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def lane(self) -> asyncio.Lock:
        """Held while an export is checked or applied (one at a time), on this event
        loop (an asyncio lock belongs to the loop that first waited on it)."""
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(loop)
        if lane is None:
            lane = self._lanes[loop] = asyncio.Lock()
        return lane

    @property
    def reads_waiting(self) -> int:
        """Reads waiting for exports to be stored (:func:`read_after_exports`)."""
        return len(self._waiters)

    def behind(self, account_id: str) -> bool:
        """Whether an answered export of the account is not stored yet."""
        return self._applied.get(account_id, 0) < self._received.get(account_id, 0)

    def submit(self, entry: Entry) -> None:
        """Store a journaled export after those submitted before it."""
        self._queue.append(entry)
        account_id = entry.account.id
        self._received[account_id] = self._received.get(account_id, 0) + 1
        self._ensure_running()

    def _ensure_running(self) -> None:
        """A task on this event loop stores the queue, unless one is at work on a live
        loop. A task cancelled mid-store (its loop shut down: a test's server stopped, an
        embedder's loop closed) leaves its export at the head of the queue, stored (again:
        nothing twice) by the next task."""
        loop = asyncio.get_running_loop()
        if not self._queue:
            return
        task, previous = self._task, self._loop
        if (
            task is not None
            and not task.done()
            and previous is not None
            and (previous is loop or (previous.is_running() and not previous.is_closed()))
        ):
            return
        self._loop = loop
        self._task = loop.create_task(self._run())

    async def caught_up(self, account_id: str | None = None) -> None:
        """Return once every export of the account (of every account when None)
        submitted before this call is stored, or given up."""
        if account_id is None:
            for account in list(self._received):
                await self.caught_up(account)
            return
        target = self._received.get(account_id, 0)
        while self._applied.get(account_id, 0) < target:
            self._ensure_running()
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        here = asyncio.get_running_loop()
        for waiter in waiters:
            loop = waiter.get_loop()
            if waiter.done() or loop.is_closed():
                continue  # (a waiter of a loop gone waits no more)
            if loop is here:
                waiter.set_result(None)
            else:  # a read on another live loop (thread)
                loop.call_soon_threadsafe(_resolve, waiter)

    async def _run(self) -> None:
        while self._queue:
            # Cancelled in here, the export stays at the head of the queue (above).
            await self._apply(self._queue[0])
            # Its spans and rows are freed here, on the event loop, once stored.
            done = self._queue.popleft()
            self.pending.release(done.counted)
            account_id = done.account.id
            self._applied[account_id] = self._applied.get(account_id, 0) + 1
            del done
            self._wake()

    async def _apply(self, entry: Entry) -> None:
        """Store one export, trying again after a failed store (``retry_delays``)."""
        for attempt in range(len(self.retry_delays) + 1):
            if attempt:
                self.retries += 1
                await asyncio.sleep(self.retry_delays[attempt - 1])
            try:
                async with self.lane:
                    made: list[list[PreparedTrace]] = []
                    try:
                        await run_in_threadpool(_prepare_into, entry.export, made)
                    except Exception:
                        # Not a passing trouble: the same body fails the same way.
                        await self._give_up(entry)
                        return
                    job = _StoreJob(entry.journal_id, entry.account, made.pop(), self._schemas)
                    try:
                        outcome = await self._backend.write(job)
                    finally:
                        job.traces = []  # the writer thread may keep the job a while
            except Exception:
                logger.warning(
                    "OTLP export %d: storing failed (attempt %d of %d)",
                    entry.journal_id,
                    attempt + 1,
                    len(self.retry_delays) + 1,
                    exc_info=True,
                )
                continue
            self.stored += outcome.stored
            self.refused += outcome.rejected
            _report(entry.journal_id, outcome)
            return
        self.failures += 1
        logger.error(
            "OTLP export %d could not be stored; it stays in the journal and is stored at "
            "the next start",
            entry.journal_id,
        )

    async def _give_up(self, entry: Entry) -> None:
        self.failures += 1
        logger.exception(
            "OTLP export %d cannot be converted to spans; removed from the journal",
            entry.journal_id,
        )
        with contextlib.suppress(Exception):
            await self._backend.write(_Drop(entry.journal_id))


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


@dataclass
class _Drop:
    """A write that removes one entry from the journal."""

    journal_id: int

    def __call__(self, session: WriteSession) -> None:
        cast(JournalSession, session).drop_journaled(self.journal_id)


def _prepare_into(export: Export | Checked, into: list[list[PreparedTrace]]) -> None:
    # Handed over through ``into``, not returned: a worker thread keeps what it returned
    # until its next job, and the rows' last reference must go on the event loop.
    into.append(prepare(convert_protobuf(export) if isinstance(export, Checked) else export))


# GET paths that read no spans (a health check must not wait behind a backlog).
_NO_DATA = ("/api/v1/ping",)


async def read_after_exports(request: Request, account: Account) -> None:
    """Before a GET or HEAD request of ``account`` reads, wait until the exports of the
    account answered before it are stored (a no-op without a journal, or when none is
    waiting). Called once the request is authenticated (API and viewer)."""
    journal: Applier | None = getattr(request.app.state, "otlp_journal", None)
    if (
        journal is not None
        and journal.behind(account.id)
        and request.method in ("GET", "HEAD")
        and request.url.path.rstrip("/") not in _NO_DATA
    ):
        await journal.caught_up(account.id)


def _decode(entry: Journaled) -> Export:
    return decode_protobuf(entry.body) if entry.media == PROTOBUF else decode_json(entry.body)


def replay(backend: Storage, schemas: SchemaCache, batch: int = 16) -> int:
    """Store the exports left in the journal (at start, before serving), oldest first.

    An entry that cannot be stored is logged and left for the next start; one whose
    account is gone, or whose body no longer decodes, is logged and removed.

    Returns:
        The number of entries stored.
    """
    done = 0
    after = 0
    while entries := backend.write_sync(_Listing(after, batch)):
        for entry in entries:
            after = entry.id
            done += _replay_one(backend, schemas, entry)
    return done


@dataclass
class _Listing:
    """A read of the journal on the writer (it sees its own uncommitted work)."""

    after: int
    limit: int

    def __call__(self, session: WriteSession) -> list[Journaled]:
        return cast(JournalSession, session).journaled(self.after, self.limit)


def _replay_one(backend: Storage, schemas: SchemaCache, entry: Journaled) -> int:
    try:
        account = backend.read_sync(lambda session: session.get_account(entry.account_id))
    except Exception:  # a read that failed may succeed next time: the row stays
        logger.exception("OTLP export %d could not be stored; it stays in the journal", entry.id)
        return 0
    try:
        if account is None:
            raise LookupError(f"account {entry.account_id} no longer exists")
        traces = prepare(_decode(entry))
    except Exception as exc:  # the same row would fail the same way at every start
        reason = exc.message if isinstance(exc, ApiError) else repr(exc)
        logger.error("OTLP export %d dropped from the journal: %s", entry.id, reason)
        backend.write_sync(_Drop(entry.id))
        return 0
    try:
        outcome = backend.write_sync(_StoreJob(entry.id, account, traces, schemas))
    except Exception:
        logger.exception("OTLP export %d could not be stored; it stays in the journal", entry.id)
        return 0
    _report(entry.id, outcome)
    return 1
