"""The span types ``@trace`` declares, registered when a client builds a schema version.

Decorating a function only records its span type here (nothing is registered at import
time). When a client builds an instance's ``agent_schema_version`` from its schema
registry, every declared type the registry does not know yet is registered with a
permissive schema, so a decorated function works without ceremony and a type the user
registered keeps its own schema.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefactor_core.schema_registry import SchemaRegistry

__all__ = ["declare", "register_declared"]

_DECLARED: dict[str, str] = {}  # span type -> title
_LOCK = threading.Lock()
PERMISSIVE_SCHEMA = {"type": "object"}


def declare(name: str, title: str) -> None:
    """Record that ``@trace`` makes spans of type ``name``."""
    _DECLARED.setdefault(name, title)


def declared() -> dict[str, str]:
    """The declared span types and their titles (a copy)."""
    return dict(_DECLARED)


def register_declared(registry: SchemaRegistry) -> None:
    """Register every declared span type that ``registry`` does not know yet."""
    with _LOCK:
        for name, title in list(_DECLARED.items()):
            if not registry.knows(name):
                registry.register_type(
                    name=name,
                    params_schema=dict(PERMISSIVE_SCHEMA),
                    result_schema=dict(PERMISSIVE_SCHEMA),
                    title=title,
                )
