"""The current agent instance of this context (what ``@trace`` records into).

A ``ContextVar``, like the span stack: every asyncio task and every ``contextvars``
context has its own, and tasks, ``asyncio.to_thread`` and ``contextvars.copy_context()``
carry it. It is never reset with tokens (a token made in one context cannot be used in
another, the "created in a different Context" error); leaving an instance restores the
value it replaced, and only if the instance is still the current one.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefactor_core.managers.agent_instance import AgentInstanceHandle

__all__ = ["current_instance", "enter_instance", "leave_instance"]

_INSTANCE: ContextVar[AgentInstanceHandle | None] = ContextVar(
    "prefactor_current_instance", default=None
)


def current_instance() -> AgentInstanceHandle | None:
    """Return the agent instance that ``@trace`` records into here, or None.

    It is the instance whose ``async with`` (or ``with``, for the sync client) block the
    code runs in, or the one most recently started with ``start()`` in this context, until
    it finishes (a run finished elsewhere, e.g. by ``close()``, is not current).
    """
    handle = _INSTANCE.get()
    return None if handle is None or handle._finished else handle


def enter_instance(handle: AgentInstanceHandle) -> AgentInstanceHandle | None:
    """Make ``handle`` current; return the instance it replaces (to restore on leave)."""
    outer = _INSTANCE.get()
    if outer is not handle:
        _INSTANCE.set(handle)
    return outer


def leave_instance(handle: AgentInstanceHandle, outer: AgentInstanceHandle | None) -> None:
    """Restore ``outer`` if ``handle`` is still the current instance of this context."""
    if _INSTANCE.get() is handle:
        _INSTANCE.set(outer)
