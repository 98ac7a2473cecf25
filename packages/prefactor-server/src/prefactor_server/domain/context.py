"""The per-request context of domain operations: the account, the clock, caches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prefactor_http.pfid import generate_pfid
from prefactor_server import _time
from prefactor_server.domain.schemas import SchemaCache, SchemaVersion
from prefactor_server.errors import not_found
from prefactor_server.storage.base import Account, InstanceRow, WriteSession

__all__ = ["WriteContext"]


@dataclass
class WriteContext:
    """What a write operation needs besides the session.

    The instance cache lives for one request only: a bulk request of a thousand spans for
    one instance reads the instance once, and every operation that changes an instance
    updates the cached record, so later items of the same request see the change.

    Attributes:
        account: The authenticated account.
        schemas: The process-wide schema version cache.
        clock: Returns the current time, formatted.
        instances: Instance id → record, for this request.
        span_instances: Span id → instance id of spans seen in this request.
        schema_nodes: Size of the new schema versions registered in this request so far
            (their checks are bounded per request, see ``json_schema``).
    """

    account: Account
    schemas: SchemaCache
    clock: Callable[[], str] = _time.now
    instances: dict[str, InstanceRow] = field(default_factory=dict)
    span_instances: dict[str, str] = field(default_factory=dict)
    schema_nodes: int = 0

    def new_id(self) -> str:
        """Return a new k-sortable PFID in the account's partition."""
        return generate_pfid(self.account.partition)

    def instance(self, session: WriteSession, instance_id: str) -> InstanceRow:
        """Return the instance (cached for the request), or raise 404."""
        record = self.instances.get(instance_id)
        if record is None:
            record = session.get_instance(self.account.id, instance_id)
            if record is None:
                raise not_found("Agent instance")
            self.instances[instance_id] = record
        return record

    def schema_version(self, session: WriteSession, schema_version_id: str) -> SchemaVersion:
        """Return the compiled schema version of an instance."""
        version = self.schemas.get(self.account.id, schema_version_id)
        if version is None:
            record = session.get_schema_version(self.account.id, schema_version_id)
            version = SchemaVersion(record["body"] if record is not None else {})
            self.schemas.put(self.account.id, schema_version_id, version)
        return version
