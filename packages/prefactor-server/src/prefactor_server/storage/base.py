"""The storage interface: domain operations, no SQL.

Routes and domain code talk to storage only through these protocols; each backend lives
in its own package (``storage/sqlite``, ``storage/postgres``) and passes the same contract
suite (``tests/server/test_storage_contract.py``). :func:`prefactor_server.storage.open_storage`
picks the backend from the settings.

* :class:`Storage` runs a function on a read session or inside one write transaction
  (SQLite serialises them on one writer thread; PostgreSQL runs them concurrently, with
  row locks making each read-check-write of a state machine atomic).
* :class:`ReadSession` holds the queries; :class:`WriteSession` adds the writes and
  savepoints, so a bulk request commits once while each item stays atomic on its own.

Rows are plain dicts typed per table (:mod:`.rows`: keys are the resource fields, JSON
columns decoded), so the API renders them without a mapping layer. The lists' filters and
sort orders are declared once in :mod:`.lists`. Rules every backend keeps alike are
functions here (:func:`is_orphan`), and ``tests/server/test_storage_contract*.py`` proves
each backend against all of it.

To add a backend: a package ``storage/<name>/`` with a :class:`Storage` whose sessions
implement :class:`ReadSession` and :class:`WriteSession`, a branch in
:func:`prefactor_server.storage.open_storage`, and a parameter of the ``backend`` fixture
(``tests/conftest.py``) so the contract suite runs on it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from prefactor_server.storage.lists import (
    LISTS,
    RUN_SORTS,
    ListQuery,
    ListSpec,
    Page,
    RunPage,
    RunQuery,
    RunWalk,
    like_pattern,
    sort_key,
)
from prefactor_server.storage.rows import (
    NEW_SPAN_COLUMNS,
    AgentRow,
    AgentVersionRow,
    DeploymentRow,
    EnvironmentRow,
    Fields,
    InstanceRow,
    NewSpan,
    NewToken,
    RunRow,
    SchemaVersionRow,
    SpanRow,
    SpanViewRow,
    TokenRow,
    new_span,
)

__all__ = [
    "INSTANCE_STATUSES",
    "LISTS",
    "NEW_SPAN_COLUMNS",
    "RUN_SORTS",
    "SPAN_STATUSES",
    "Account",
    "AgentRow",
    "AgentVersionRow",
    "DeploymentRow",
    "EnvironmentRow",
    "Fields",
    "IdTaken",
    "InstanceRow",
    "ListQuery",
    "ListSpec",
    "NewSpan",
    "NewToken",
    "Page",
    "ReadSession",
    "Record",
    "RetryWithoutBuffering",
    "RunPage",
    "RunQuery",
    "RunRow",
    "RunWalk",
    "SchemaVersionRow",
    "SpanRow",
    "SpanViewRow",
    "Storage",
    "StorageClosedError",
    "TokenRow",
    "WriteSession",
    "is_orphan",
    "like_pattern",
    "new_span",
    "sort_key",
]

T = TypeVar("T")

Record = dict[str, Any]
"""A resource as a dict of its fields, untyped (prefer the typed rows of :mod:`.rows`)."""


class IdTaken(Exception):
    """An insert used an id that the account already has (a client-chosen id reused)."""


class RetryWithoutBuffering(Exception):
    """A buffered span insert collided with a stored id: the storage runs the whole write
    again without buffering, so the colliding item answers as it would have unbuffered."""


class StorageClosedError(RuntimeError):
    """The storage was used after ``close()``."""


SPAN_STATUSES = ("pending", "active", "complete", "failed", "cancelled")
"""Every span status (span counts report each, zeros included)."""

INSTANCE_STATUSES = (*SPAN_STATUSES, "terminated")
"""Every agent instance status."""


@dataclass(frozen=True)
class Account:
    """An account: the owner of tokens, agents, instances and spans.

    Attributes:
        id: The account id.
        name: A display name (``local`` for the account made on first start).
        partition: The 30-bit PFID partition of the account's ids.
        default_agent_id: The agent used by register without ``agent_id`` (made lazily).
        default_environment_id: The environment used by register without ``environment_id``.
        inserted_at: Creation time.
    """

    id: str
    name: str
    partition: int
    default_agent_id: str | None
    default_environment_id: str
    inserted_at: str

    @classmethod
    def from_row(cls, row: Any) -> Account | None:
        """Return the account a database row (indexable by column name) holds; None for None."""
        if row is None:
            return None
        return cls(
            id=row["id"],
            name=row["name"],
            partition=row["partition"],
            default_agent_id=row["default_agent_id"],
            default_environment_id=row["default_environment_id"],
            inserted_at=row["inserted_at"],
        )


class ReadSession(Protocol):
    """Queries, on a connection that sees committed data (or, in a write, its own)."""

    def account_for_token(self, token_hash: str) -> Account | None:
        """Return the account of an unrevoked token hash."""
        ...

    def get_account(self, account_id: str) -> Account | None:
        """Return an account by id."""
        ...

    def first_account(self) -> Account | None:
        """Return the oldest account (the local account of ``prefactor serve``)."""
        ...

    def list_tokens(self) -> list[TokenRow]:
        """Return every token (without its hash), oldest first."""
        ...

    def find_token(self, token_hash: str) -> TokenRow | None:
        """Return the token with this hash, revoked or not (without its hash)."""
        ...

    def auth_failures(self, client: str) -> tuple[int, float] | None:
        """Return (failures, window start in Unix seconds) of a client's failed logins."""
        ...

    def get_agent(self, account_id: str, agent_id: str) -> AgentRow | None:
        """Return an agent that is not deleted."""
        ...

    def find_agent(self, account_id: str, external_identifier: str) -> AgentRow | None:
        """Return the agent with this external identifier."""
        ...

    def list_agents(self, account_id: str, query: ListQuery) -> Page[AgentRow]:
        """Return a page of the account's agents."""
        ...

    def instance_counts(
        self, account_id: str, agent_id: str, environment_id: str | None
    ) -> dict[str, int]:
        """Return the agent's instance count per status."""
        ...

    def get_environment(self, account_id: str, environment_id: str) -> EnvironmentRow | None:
        """Return an environment."""
        ...

    def get_schema_version(
        self, account_id: str, schema_version_id: str
    ) -> SchemaVersionRow | None:
        """Return a schema version (its ``body`` holds the normalised span/quality types)."""
        ...

    def get_instance(self, account_id: str, instance_id: str) -> InstanceRow | None:
        """Return an agent instance."""
        ...

    def list_instances(self, account_id: str, query: ListQuery) -> Page[InstanceRow]:
        """Return a page of agent instances."""
        ...

    def span_counts(
        self, account_id: str, instance_ids: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """Return, per instance id, its span count per status."""
        ...

    def get_span(self, account_id: str, span_id: str) -> SpanRow | None:
        """Return a span."""
        ...

    def list_spans(self, account_id: str, query: ListQuery) -> Page[SpanRow]:
        """Return a page of spans."""
        ...

    # -- the viewer's reads (issue 16) ------------------------------------------------

    def list_runs(self, account_id: str, query: RunQuery) -> RunPage[RunRow]:
        """Return a page of runs (agent instances), filtered, sorted and keyset-paged."""
        ...

    def run_span_rows(
        self,
        account_id: str,
        instance_id: str,
        *,
        after_id: str | None,
        limit: int,
        updated_since: str | None = None,
    ) -> list[SpanViewRow]:
        """Return up to ``limit`` spans of a run in id order after ``after_id``, compactly.

        Each record has ``id``, ``parent_span_id``, ``schema_name``, ``schema_title``,
        ``status``, ``summary``, ``started_at``, ``finished_at``, ``updated_at``, and
        ``payload`` / ``result_payload`` decoded only where they may hold LLM facts (they
        mention a token, cost or model) or, for the result, the span failed or was
        cancelled; else None.
        With ``updated_since``, only spans updated at or after that timestamp, in
        ``(updated_at, id)`` order.
        """
        ...

    def search_run_spans(
        self, account_id: str, instance_id: str, text: str, limit: int
    ) -> list[str]:
        """Return ids of up to ``limit`` spans of a run whose type, title, summary, params
        or result contain ``text`` (case-insensitive substring)."""
        ...

    def llm_payloads(
        self, account_id: str, instance_ids: Sequence[str]
    ) -> list[tuple[str, Any, Any]]:
        """Return ``(instance_id, params, result)`` of the runs' spans that may hold LLM
        facts (their params or result mention a token, cost or model)."""
        ...


class WriteSession(ReadSession, Protocol):
    """The writes, inside the one transaction of a :meth:`Storage.write` call."""

    rebuilds_span_answers: bool
    """Whether a span reads back exactly as written (payload keys in their order), so the
    stored answer of a span create may be a reference to the span, rebuilt on replay."""

    def savepoint(self) -> AbstractContextManager[None]:
        """Return a context that rolls back only its own writes when it raises."""
        ...

    def lock(self, name: str) -> None:
        """Hold a named lock until the transaction ends: writes of other processes that
        take the same name wait (SQLite's writes are serial already: a no-op there)."""
        ...

    def get_idempotent(self, account_id: str, action: str, key: str) -> tuple[int, bytes] | None:
        """Return the stored (status, body) of an earlier request with this key."""
        ...

    def put_idempotent(
        self, account_id: str, action: str, key: str, status: int, body: bytes
    ) -> None:
        """Store the response of a request, keyed by account, action and key."""
        ...

    def get_idempotent_many(
        self, account_id: str, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, bytes]]:
        """Return the stored (status, body) of each (action, key) seen before, in one go."""
        ...

    def put_idempotent_many(
        self, account_id: str, rows: Sequence[tuple[str, str, int, bytes]]
    ) -> None:
        """Store many responses: (action, key, status, body) rows."""
        ...

    def insert_account(self, account: Account) -> None:
        """Store a new account."""
        ...

    def set_default_agent(self, account_id: str, agent_id: str) -> None:
        """Record the account's default agent."""
        ...

    def insert_token(self, record: NewToken) -> None:
        """Store a token: id, account_id, name, token_hash, inserted_at (nothing of the
        plain token: not even its first characters)."""
        ...

    def record_auth_failure(self, client: str, now: float, window: float) -> tuple[int, float]:
        """Count one failed authentication of ``client``; return (failures, window start).

        A client's window starts at its first failure and ends ``window`` seconds later;
        rows of ended windows are removed, so the next failure starts a new window.
        """
        ...

    def revoke_token(self, token_id: str, revoked_at: str) -> bool:
        """Revoke a token; False when there is no such unrevoked token."""
        ...

    def insert_environment(self, record: EnvironmentRow) -> None:
        """Store an environment."""
        ...

    def insert_agent(self, record: AgentRow) -> None:
        """Store an agent."""
        ...

    def update_agent(self, account_id: str, agent_id: str, fields: Fields) -> None:
        """Change an agent's fields."""
        ...

    def find_agent_version(
        self, account_id: str, agent_id: str, external_identifier: str
    ) -> AgentVersionRow | None:
        """Return an agent version by its identifier within the agent."""
        ...

    def insert_agent_version(self, record: AgentVersionRow) -> None:
        """Store an agent version."""
        ...

    def find_schema_version(
        self, account_id: str, agent_id: str, external_identifier: str
    ) -> SchemaVersionRow | None:
        """Return a schema version by its identifier within the agent."""
        ...

    def insert_schema_version(self, record: SchemaVersionRow) -> None:
        """Store a schema version."""
        ...

    def find_deployment(
        self, account_id: str, agent_id: str, environment_id: str
    ) -> DeploymentRow | None:
        """Return the deployment of an agent in an environment."""
        ...

    def insert_deployment(self, record: DeploymentRow) -> None:
        """Store a deployment."""
        ...

    def set_deployment_version(self, account_id: str, deployment_id: str, version_id: str) -> None:
        """Pin a deployment to an agent version."""
        ...

    def insert_instance(self, record: InstanceRow) -> None:
        """Store an agent instance (raises :class:`IdTaken` when the id exists)."""
        ...

    def get_instances(
        self, account_id: str, instance_ids: Collection[str]
    ) -> dict[str, InstanceRow]:
        """Return the stored instances among ``instance_ids`` by id, in one statement or a
        few (OTLP ingest reads an export's traces at once), each locked as
        :meth:`get_instance` locks one."""
        ...

    def update_instance(self, account_id: str, instance_id: str, fields: Fields) -> None:
        """Change an instance's fields."""
        ...

    def span_instance_id(self, account_id: str, span_id: str) -> str | None:
        """Return the instance id of a span, or None when there is no such span."""
        ...

    def insert_span(self, record: SpanRow, encoded: tuple[str, str | None] | None = None) -> None:
        """Store a span (raises :class:`IdTaken` when the id exists) and adopt its orphans.

        The caller has looked the parent up (:meth:`span_instance_id`): ``orphaned`` is
        :func:`is_orphan` of the record, which a backend may store or derive again.
        ``encoded`` is the record's payload and result payload as ``orjson.dumps`` text,
        when the caller has them already (the bulk fast path); a backend may use them.
        """
        ...

    def add_span(self, row: NewSpan, keyed: bool = False) -> bool:
        """Store a new span given as its column values (the bulk fast path), as
        :meth:`insert_span` stores a record: :class:`IdTaken` when the id exists.

        ``keyed``: the span's create was keyed ``c-`` + its id and its answer is the
        reference to the span (``domain/replays.py``). Returns True when the session keeps
        that with the span itself, so the caller stores no idempotency row for the key
        (the look-ups of :meth:`get_idempotent` find it); False when the caller must.
        """
        ...

    def insert_spans(self, account_id: str, records: Sequence[SpanRow]) -> int:
        """Store many spans of one account at once (OTLP ingest); return how many were new.

        Ids already stored are skipped (a resent export stores nothing twice). Each new
        span's ``orphaned`` is computed here (its parent is neither stored nor among
        ``records``; the field in ``records`` is ignored), and stored orphans of the same
        instance whose parent is among the new spans are adopted.
        """
        ...

    def update_span(self, account_id: str, span_id: str, fields: Fields) -> None:
        """Change a span's fields."""
        ...


class Storage(Protocol):
    """A storage backend.

    Reads run on read connections; every write runs on the single writer path, one
    transaction per :meth:`write` call.
    """

    async def read(self, fn: Callable[[ReadSession], T]) -> T:
        """Run ``fn`` on a read session and return its result."""
        ...

    async def write(self, fn: Callable[[WriteSession], T]) -> T:
        """Run ``fn`` in one write transaction: committed when it returns, rolled back on raise."""
        ...

    def read_sync(self, fn: Callable[[ReadSession], T]) -> T:
        """Like :meth:`read`, for synchronous callers (the CLI)."""
        ...

    def write_sync(self, fn: Callable[[WriteSession], T]) -> T:
        """Like :meth:`write`, for synchronous callers (the CLI, start-up)."""
        ...

    def close(self) -> None:
        """Finish queued writes, stop the writer and close every connection (idempotent)."""
        ...


def is_orphan(parent_span_id: str | None, instance_id: str, parents: Mapping[str, str]) -> bool:
    """Whether a span is orphaned: it names a parent that is not a stored span of its own
    instance. ``parents`` maps the ids of the account's stored spans (as many as needed)
    to their instance ids. A later span with that id in the same instance adopts it; a
    span with that id in another instance or account never does."""
    return parent_span_id is not None and parents.get(parent_span_id) != instance_id
