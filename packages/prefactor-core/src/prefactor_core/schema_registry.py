"""The schema registry: span types declared before agent instances are created."""

from __future__ import annotations

import builtins
import copy
import hashlib
import json
from typing import Any

__all__ = ["SchemaRegistry"]


def _check_name(name: object, what: str = "schema_name") -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what} must be a non-empty string, got {name!r}")
    return name


def _check_schema(schema: object, what: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise TypeError(f"{what} must be a JSON Schema dict, got {type(schema).__name__}")
    return schema


class SchemaRegistry:
    """Span types and their JSON Schemas, gathered before instances are created.

    Several parts of an agent (the agent itself, a tool library, an adapter) can each
    register their span types; the client sends the union with every new agent instance
    as its ``agent_schema_version``. There are three forms, which can be mixed:

    * ``register(name, schema)``: a params schema (``span_schemas``);
    * ``register_result(name, schema)``: a result schema (``span_result_schemas``);
    * ``register_type(name, params_schema, ...)``: the full form with result schema,
      title, description and summary template (``span_type_schemas``).

    Registering a name twice in the same form is an error (``register_unsafe``
    overwrites on purpose). With ``strict=True`` the client refuses spans of types the
    registry does not know, at the call, before anything is queued.

    Example::

        registry = SchemaRegistry()
        registry.register_type(
            name="agent:llm",
            params_schema={"type": "object", "properties": {"model": {"type": "string"}}},
            result_schema={"type": "object"},
            title="LLM Call",
            template="{{model}}",
        )
        version = registry.to_agent_schema_version("my-agent-schemas-1")
    """

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self._span_schemas: dict[str, dict[str, Any]] = {}
        self._span_result_schemas: dict[str, dict[str, Any]] = {}
        self._span_type_schemas: dict[str, dict[str, Any]] = {}
        self._quality_schemas: dict[str, dict[str, Any]] = {}

    # -- registration -------------------------------------------------------------

    def register(self, schema_name: str, schema: dict[str, Any]) -> None:
        """Register the params schema of a span type.

        Raises:
            ValueError: If ``schema_name`` already has a params schema, or is empty.
            TypeError: If ``schema`` is not a dict.
        """
        _check_name(schema_name)
        _check_schema(schema, "schema")
        if schema_name in self._span_schemas:
            raise ValueError(f"Schema {schema_name!r} is already registered")
        self._span_schemas[schema_name] = copy.deepcopy(schema)

    def register_unsafe(self, schema_name: str, schema: dict[str, Any]) -> None:
        """Register the params schema of a span type, replacing any earlier one."""
        _check_name(schema_name)
        _check_schema(schema, "schema")
        self._span_schemas[schema_name] = copy.deepcopy(schema)

    def register_result(self, schema_name: str, result_schema: dict[str, Any]) -> None:
        """Register the result schema of a span type (a params schema is not needed).

        Raises:
            ValueError: If ``schema_name`` already has a result schema.
            TypeError: If ``result_schema`` is not a dict.
        """
        _check_name(schema_name)
        _check_schema(result_schema, "result_schema")
        if schema_name in self._span_result_schemas:
            raise ValueError(f"Result schema {schema_name!r} is already registered")
        self._span_result_schemas[schema_name] = copy.deepcopy(result_schema)

    def register_type(
        self,
        name: str,
        params_schema: dict[str, Any],
        result_schema: dict[str, Any] | None = None,
        title: str | None = None,
        description: str | None = None,
        template: str | None = None,
        data_risk: dict[str, Any] | None = None,
    ) -> None:
        """Register a span type in full.

        Args:
            name: The span type, e.g. ``agent:llm``.
            params_schema: JSON Schema of the span's params (``payload``).
            result_schema: JSON Schema of its result (``result_payload``).
            title: A human-readable title; the API falls back to ``name``.
            description: What the span type is.
            template: A summary template with ``{{field}}`` placeholders over params
                and result, e.g. ``"{{model}}: {{prompt}} → {{response}}"``.
            data_risk: The span type's data-risk profile, passed through as given.

        Raises:
            ValueError: If ``name`` is already registered as a span type.
            TypeError: If a schema is not a dict.
        """
        _check_name(name, "name")
        _check_schema(params_schema, "params_schema")
        if result_schema is not None:
            _check_schema(result_schema, "result_schema")
        if name in self._span_type_schemas:
            raise ValueError(f"Span type schema {name!r} is already registered")
        entry: dict[str, Any] = {"name": name, "params_schema": copy.deepcopy(params_schema)}
        optional = {
            "result_schema": result_schema,
            "title": title,
            "description": description,
            "template": template,
            "data_risk": data_risk,
        }
        entry.update({k: copy.deepcopy(v) for k, v in optional.items() if v is not None})
        self._span_type_schemas[name] = entry

    def register_quality_schema(
        self,
        name: str,
        schema: dict[str, Any],
        title: str | None = None,
        description: str | None = None,
        template: str | None = None,
        data_risk: dict[str, Any] | None = None,
    ) -> None:
        """Register a quality schema (for ``record_quality``).

        Raises:
            ValueError: If ``name`` is already registered as a quality schema.
        """
        _check_name(name, "name")
        _check_schema(schema, "schema")
        if name in self._quality_schemas:
            raise ValueError(f"Quality schema {name!r} is already registered")
        entry: dict[str, Any] = {"name": name, "schema": copy.deepcopy(schema)}
        optional = {
            "title": title,
            "description": description,
            "template": template,
            "data_risk": data_risk,
        }
        entry.update({k: copy.deepcopy(v) for k, v in optional.items() if v is not None})
        self._quality_schemas[name] = entry

    # -- lookup -------------------------------------------------------------------

    def get(self, schema_name: str) -> dict[str, Any] | None:
        """Return (a copy of) the params schema of a span type, or None if it has none."""
        # A copy, like everything else that leaves the registry: editing the returned
        # dict must not change what is sent with the next agent instance.
        if schema_name in self._span_schemas:
            return copy.deepcopy(self._span_schemas[schema_name])
        entry = self._span_type_schemas.get(schema_name)
        return None if entry is None else copy.deepcopy(entry["params_schema"])

    def has(self, schema_name: str) -> bool:
        """Return True when the span type has a params schema."""
        return schema_name in self._span_schemas or schema_name in self._span_type_schemas

    def list(self) -> builtins.list[str]:
        """Return the names of the span types that have a params schema."""
        names = dict.fromkeys(self._span_schemas)
        names.update(dict.fromkeys(self._span_type_schemas))
        return builtins.list(names)

    # The names used by later published releases.
    has_schema = has
    list_schemas = list

    def knows(self, schema_name: str) -> bool:
        """Return True when the span type is registered in any form."""
        return (
            schema_name in self._span_schemas
            or schema_name in self._span_type_schemas
            or schema_name in self._span_result_schemas
        )

    def __len__(self) -> int:
        return len(
            set(self._span_schemas) | set(self._span_type_schemas) | set(self._span_result_schemas)
        )

    def __bool__(self) -> bool:
        # An empty registry is still a configured registry.
        return True

    # -- combination --------------------------------------------------------------

    def merge(self, other: SchemaRegistry) -> None:
        """Add everything from ``other``; nothing is added if any name conflicts.

        Raises:
            ValueError: Naming every conflicting entry, when ``other`` registers a name
                this registry already has in the same form.
        """
        # Each conflict is named "<kind>/<name>", worded as published.
        pairs = [
            ("span_schemas", self._span_schemas, other._span_schemas),
            ("span_result_schemas", self._span_result_schemas, other._span_result_schemas),
            ("span_type_schemas", self._span_type_schemas, other._span_type_schemas),
            ("quality_schemas", self._quality_schemas, other._quality_schemas),
        ]
        conflicts = [
            f"{kind}/{name}" for kind, mine, theirs in pairs for name in theirs if name in mine
        ]
        if conflicts:
            raise ValueError(f"Cannot merge registries - conflicting schemas: {conflicts}")
        for _, mine, theirs in pairs:
            mine.update(copy.deepcopy(theirs))

    def to_agent_schema_version(self, external_id: str) -> dict[str, Any]:
        """Return the registry as an ``agent_schema_version`` object for the API.

        Only the forms that have entries are included.

        Args:
            external_id: The schema version's ``external_identifier``.
        """
        version: dict[str, Any] = {"external_identifier": external_id}
        if self._span_schemas:
            version["span_schemas"] = copy.deepcopy(self._span_schemas)
        if self._span_result_schemas:
            version["span_result_schemas"] = copy.deepcopy(self._span_result_schemas)
        if self._span_type_schemas:
            version["span_type_schemas"] = copy.deepcopy(list(self._span_type_schemas.values()))
        if self._quality_schemas:
            version["quality_schemas"] = copy.deepcopy(list(self._quality_schemas.values()))
        return version

    def fingerprint(self) -> str:
        """Return a short hash of the registry's content.

        The client uses it for the schema version's identifier, so an unchanged
        registry maps to the same stored schema version run after run.
        """
        content = self.to_agent_schema_version("")
        # The list forms are sorted by name so that, like the map forms (sort_keys), the
        # hash does not depend on the order in which the entries were registered.
        for key in ("span_type_schemas", "quality_schemas"):
            if key in content:
                content[key] = sorted(content[key], key=lambda entry: entry["name"])
        digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
        return digest[:16]
