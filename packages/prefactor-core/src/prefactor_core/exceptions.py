"""Exceptions raised by prefactor-core.

The tree::

    PrefactorCoreError
    ├── ClientNotInitializedError       the client was used before initialize() or after close()
    ├── ClientAlreadyInitializedError   initialize() called twice
    ├── OperationError                  an operation could not be processed
    ├── InstanceNotFoundError           no such agent instance in this client
    ├── SpanNotFoundError (KeyError)    no such span in this client
    ├── PrefactorTelemetryFailureError  telemetry failed for good (the token was rejected: 401/403)
    └── PrefactorTerminatedError        the platform terminated the agent instance

Transport and API errors come from ``prefactor_http.exceptions``; background delivery
never raises them into user code. The only background failure that reaches the agent is
``PrefactorTelemetryFailureError``, at the points the SDK documents (the next enqueue,
``create_agent_instance``, ``span()``, ``close()``, a span's exit when no other exception
is in flight).
"""

from __future__ import annotations

__all__ = [
    "ClientAlreadyInitializedError",
    "ClientNotInitializedError",
    "InstanceNotFoundError",
    "OperationError",
    "PrefactorCoreError",
    "PrefactorTelemetryFailureError",
    "PrefactorTerminatedError",
    "SpanNotFoundError",
]


class PrefactorCoreError(Exception):
    """Base class of every prefactor-core error."""


class ClientNotInitializedError(PrefactorCoreError):
    """The client was used before ``initialize()`` or after ``close()``."""


class ClientAlreadyInitializedError(PrefactorCoreError):
    """``initialize()`` was called on a client that is already initialised."""


class OperationError(PrefactorCoreError):
    """An operation could not be processed.

    Attributes:
        operation_type: The name of the operation's type, when known.
    """

    def __init__(self, message: str, operation_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.operation_type = operation_type


class InstanceNotFoundError(PrefactorCoreError):
    """No agent instance with the given id is known to this client."""


class SpanNotFoundError(PrefactorCoreError, KeyError):
    """No open span with the given id is known to this client.

    It is also a ``KeyError``, which is what the span manager documents for unknown ids.
    """

    def __str__(self) -> str:
        # KeyError quotes its argument; an error message reads better unquoted.
        return str(self.args[0]) if self.args else ""


class PrefactorTelemetryFailureError(PrefactorCoreError):
    """Telemetry has failed permanently; nothing more will be sent.

    Raised once the API answers in a way that makes all further delivery impossible: a
    missing, wrong or revoked token (401) or a forbidden account (403). The first such
    failure is latched: operations still queued are dropped, and later calls that would
    enqueue raise this error. The API refusing one operation (a payload that does not
    match its schema, a request too large, ...) is not such a failure: it is logged,
    counted in ``statistics().rejected``, and the run goes on.

    Attributes:
        cause: The API error that caused the failure.
        operation_type: The type of the operation that failed first.
        dropped_operations: How many operations were dropped because of the failure;
            it keeps counting after the error was first raised.
    """

    def __init__(
        self,
        message: str,
        *,
        cause: Exception,
        operation_type: str | None = None,
        dropped_operations: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.operation_type = operation_type
        self.dropped_operations = dropped_operations
        self.__cause__ = cause

    def __str__(self) -> str:
        return f"{self.message} (dropped operations: {self.dropped_operations})"


class PrefactorTerminatedError(PrefactorCoreError):
    """The platform terminated the agent instance (adapters raise it to stop the agent).

    The SDK itself never raises it; it records the termination (see
    ``AgentInstanceHandle.termination_reason``) so that an adapter or the agent can stop.

    Attributes:
        reason: Why the instance was terminated, if the platform said.
    """

    def __init__(self, reason: str | None = None) -> None:
        # Worded as published ("p2" is the platform's name there).
        message = "Agent instance terminated by p2"
        super().__init__(f"{message}: {reason}" if reason else message)
        self.reason = reason
