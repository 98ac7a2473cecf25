"""The span types ``@trace`` declares, registered when a client builds a schema version.

Decorating a function only records its span type here (nothing is registered at import
time). When a client builds an instance's ``agent_schema_version`` from its schema
registry, every declared type the registry does not know yet is registered with a
permissive schema, so a decorated function works without ceremony and a type the user
registered keeps its own schema.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefactor_core.schema_registry import SchemaRegistry

__all__ = ["declare", "register_declared", "span_type_names"]

_DECLARED: dict[str, str] = {}  # span type -> title
_LOCK = threading.Lock()
PERMISSIVE_SCHEMA = {"type": "object"}


def declare(name: str, title: str) -> None:
    """Record that ``@trace`` makes spans of type ``name``."""
    _DECLARED.setdefault(name, title)


def declared() -> dict[str, str]:
    """The declared span types and their titles (a copy)."""
    return dict(_DECLARED)


def span_type_names(schema_version: dict[str, Any]) -> frozenset[str]:
    """The span types an ``agent_schema_version`` declares, in any of its forms.

    The API refuses a span whose type its instance's schema version does not declare
    (unless it declares none), so ``@trace`` checks this before recording.
    """
    names: set[str] = set()
    for key in ("span_schemas", "span_result_schemas"):
        mapping = schema_version.get(key)
        if isinstance(mapping, dict):
            names.update(name for name in mapping if isinstance(name, str))
    full = schema_version.get("span_type_schemas")
    if isinstance(full, list):
        names.update(
            item["name"]
            for item in full
            if isinstance(item, dict) and isinstance(item.get("name"), str)
        )
    return frozenset(names)


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
