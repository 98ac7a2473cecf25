"""Parents from outside the SDK: a span opened inside another tracer's span nests under it.

A bridge (``prefactor_core.otel``) registers a resolver; when a span is opened without an
explicit parent, each resolver is asked for a parent in the same instance. A resolver gets
the instance id and the depth of the SDK's own span stack, and answers with a span id
when its current span is inner to the SDK's innermost open span, else None. With no
resolver registered (the usual case) the span path pays one truthiness check.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ParentResolver", "add_resolver", "remove_resolver", "resolve"]

ParentResolver = Callable[[str, int], "str | None"]

_RESOLVERS: list[ParentResolver] = []


def add_resolver(resolver: ParentResolver) -> None:
    """Register ``resolver`` (idempotent)."""
    if resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)


def remove_resolver(resolver: ParentResolver) -> None:
    """Unregister ``resolver`` (no error when it is not registered)."""
    if resolver in _RESOLVERS:
        _RESOLVERS.remove(resolver)


def resolve(instance_id: str, depth: int) -> str | None:
    """The first parent any resolver gives for a span of ``instance_id``, else None."""
    for resolver in _RESOLVERS:
        parent = resolver(instance_id, depth)
        if parent is not None:
            return parent
    return None
