"""Tests for prefactor_core.schema_registry.SchemaRegistry."""

from __future__ import annotations

import json
from typing import Any

import pytest

from prefactor_core import SchemaRegistry

LLM_PARAMS: dict[str, Any] = {
    "type": "object",
    "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}},
    "required": ["model", "prompt"],
}
LLM_RESULT: dict[str, Any] = {"type": "object", "properties": {"response": {"type": "string"}}}


def _seed_registry() -> SchemaRegistry:
    """The registry of the seed's class example."""
    registry = SchemaRegistry()
    registry.register("langchain:agent", {"type": "object"})
    registry.register_type(
        name="agent:llm",
        params_schema=LLM_PARAMS,
        result_schema=LLM_RESULT,
        title="LLM Call",
        description="A call to a language model",
        template="{{model}}: {{prompt}} → {{response}}",
    )
    return registry


# -- register -----------------------------------------------------------------------


def test_register_then_get_has_list() -> None:
    """A registered params schema is returned by get, has and list."""
    registry = SchemaRegistry()
    registry.register("langchain:llm", {"type": "object"})
    assert registry.get("langchain:llm") == {"type": "object"}
    assert registry.has("langchain:llm") is True
    assert registry.list() == ["langchain:llm"]


def test_register_twice_raises_value_error() -> None:
    """Registering the same params schema name twice raises ValueError and keeps the first."""
    registry = SchemaRegistry()
    registry.register("a", {"type": "object"})
    with pytest.raises(ValueError, match="'a'"):
        registry.register("a", {"type": "string"})
    assert registry.get("a") == {"type": "object"}


@pytest.mark.parametrize("schema", [None, "not a dict", ["a"], 3])
def test_register_rejects_non_dict_schema(schema: Any) -> None:
    """A schema that is not a dict raises TypeError and registers nothing."""
    registry = SchemaRegistry()
    with pytest.raises(TypeError):
        registry.register("a", schema)
    assert not registry.knows("a")


@pytest.mark.parametrize("name", ["", None, 7])
def test_register_rejects_bad_names(name: Any) -> None:
    """An empty or non-string schema name raises ValueError."""
    registry = SchemaRegistry()
    with pytest.raises(ValueError):
        registry.register(name, {"type": "object"})
    assert len(registry) == 0


def test_register_copies_the_input() -> None:
    """Mutating the dict after registering it does not change the registry."""
    schema: dict[str, Any] = {"type": "object", "properties": {"a": {"type": "string"}}}
    registry = SchemaRegistry()
    registry.register("x", schema)
    schema["properties"]["a"]["type"] = "integer"
    schema["type"] = "array"
    assert registry.get("x") == {"type": "object", "properties": {"a": {"type": "string"}}}


def test_get_returns_a_copy() -> None:
    """Mutating the dict get() returned does not change the registry."""
    registry = SchemaRegistry()
    registry.register("x", {"type": "object", "properties": {}})
    registry.register_type(name="t", params_schema={"type": "object"})
    got = registry.get("x")
    assert got is not None
    got["properties"]["injected"] = {"type": "string"}
    typed = registry.get("t")
    assert typed is not None
    typed["type"] = "array"
    assert registry.get("x") == {"type": "object", "properties": {}}
    assert registry.get("t") == {"type": "object"}
    version = registry.to_agent_schema_version("v")
    assert version["span_schemas"]["x"] == {"type": "object", "properties": {}}
    assert version["span_type_schemas"][0]["params_schema"] == {"type": "object"}


def test_register_unsafe_overwrites() -> None:
    """register_unsafe replaces an existing params schema without error."""
    registry = SchemaRegistry()
    registry.register("a", {"type": "object"})
    registry.register_unsafe("a", {"type": "string"})
    assert registry.get("a") == {"type": "string"}
    assert registry.list() == ["a"]


def test_register_unsafe_registers_new_names() -> None:
    """register_unsafe also registers a name that was not there."""
    registry = SchemaRegistry()
    registry.register_unsafe("new", {"type": "object"})
    assert registry.has("new")


def test_register_unsafe_still_type_checks() -> None:
    """register_unsafe rejects a non-dict schema with TypeError."""
    registry = SchemaRegistry()
    with pytest.raises(TypeError):
        registry.register_unsafe("a", "nope")  # type: ignore[arg-type]


# -- register_result ----------------------------------------------------------------


def test_register_result_without_params_schema() -> None:
    """A result schema needs no params schema: it is known but has no params schema."""
    registry = SchemaRegistry()
    registry.register_result("agent:llm", LLM_RESULT)
    assert registry.knows("agent:llm") is True
    assert registry.has("agent:llm") is False
    assert registry.get("agent:llm") is None
    assert registry.list() == []
    assert registry.to_agent_schema_version("v") == {
        "external_identifier": "v",
        "span_result_schemas": {"agent:llm": LLM_RESULT},
    }


def test_register_result_twice_raises_value_error() -> None:
    """Registering a second result schema for a name raises ValueError."""
    registry = SchemaRegistry()
    registry.register_result("a", {"type": "object"})
    with pytest.raises(ValueError, match="'a'"):
        registry.register_result("a", {"type": "object"})


def test_register_result_beside_params_schema() -> None:
    """A params schema and a result schema of the same name coexist."""
    registry = SchemaRegistry()
    registry.register("a", {"type": "object"})
    registry.register_result("a", {"type": "string"})
    version = registry.to_agent_schema_version("v")
    assert version["span_schemas"] == {"a": {"type": "object"}}
    assert version["span_result_schemas"] == {"a": {"type": "string"}}


def test_register_result_rejects_non_dict() -> None:
    """A non-dict result schema raises TypeError."""
    registry = SchemaRegistry()
    with pytest.raises(TypeError):
        registry.register_result("a", None)  # type: ignore[arg-type]


# -- register_type -------------------------------------------------------------------


def test_register_type_full_entry() -> None:
    """register_type stores every given field in span_type_schemas."""
    registry = _seed_registry()
    version = registry.to_agent_schema_version("combined-1.0.0")
    assert version["span_type_schemas"] == [
        {
            "name": "agent:llm",
            "params_schema": LLM_PARAMS,
            "result_schema": LLM_RESULT,
            "title": "LLM Call",
            "description": "A call to a language model",
            "template": "{{model}}: {{prompt}} → {{response}}",
        }
    ]


def test_register_type_minimal_entry_has_only_given_fields() -> None:
    """Optional fields that were not given are left out of the entry."""
    registry = SchemaRegistry()
    registry.register_type(name="agent:tool", params_schema={"type": "object"})
    assert registry.to_agent_schema_version("v")["span_type_schemas"] == [
        {"name": "agent:tool", "params_schema": {"type": "object"}}
    ]


def test_register_type_data_risk_passes_through() -> None:
    """data_risk is stored as given."""
    data_risk = {"action_profile": {"read_data": "allowed"}}
    registry = SchemaRegistry()
    registry.register_type(name="t", params_schema={}, data_risk=data_risk)
    assert registry.to_agent_schema_version("v")["span_type_schemas"][0]["data_risk"] == data_risk


def test_register_type_counts_as_params_schema() -> None:
    """A span type's params schema is visible through get, has and list."""
    registry = SchemaRegistry()
    registry.register_type(name="agent:llm", params_schema=LLM_PARAMS, result_schema=LLM_RESULT)
    assert registry.get("agent:llm") == LLM_PARAMS
    assert registry.has("agent:llm")
    assert registry.list() == ["agent:llm"]


def test_register_type_twice_raises_value_error() -> None:
    """Registering the same span type twice raises ValueError."""
    registry = SchemaRegistry()
    registry.register_type(name="t", params_schema={})
    with pytest.raises(ValueError, match="'t'"):
        registry.register_type(name="t", params_schema={"type": "object"})


def test_register_type_and_register_can_share_a_name() -> None:
    """The simple and the full form are separate: the same name in both is allowed."""
    registry = SchemaRegistry()
    registry.register("a", {"type": "object"})
    registry.register_type(name="a", params_schema={"type": "object"})
    assert registry.list() == ["a"]
    assert len(registry) == 1


@pytest.mark.parametrize(
    ("params", "result"),
    [("nope", None), (None, None), ({}, "nope"), ({}, [1])],
)
def test_register_type_rejects_non_dict_schemas(params: Any, result: Any) -> None:
    """Non-dict params or result schemas raise TypeError and register nothing."""
    registry = SchemaRegistry()
    with pytest.raises(TypeError):
        registry.register_type(name="t", params_schema=params, result_schema=result)
    assert not registry.knows("t")


def test_register_type_rejects_empty_name() -> None:
    """An empty span type name raises ValueError."""
    with pytest.raises(ValueError):
        SchemaRegistry().register_type(name="", params_schema={})


def test_register_type_copies_inputs() -> None:
    """Mutating the schemas after register_type does not change the registry."""
    params: dict[str, Any] = {"type": "object", "properties": {}}
    result: dict[str, Any] = {"type": "object"}
    registry = SchemaRegistry()
    registry.register_type(name="t", params_schema=params, result_schema=result)
    params["properties"]["x"] = {}
    result["type"] = "array"
    entry = registry.to_agent_schema_version("v")["span_type_schemas"][0]
    assert entry["params_schema"] == {"type": "object", "properties": {}}
    assert entry["result_schema"] == {"type": "object"}


# -- quality schemas -----------------------------------------------------------------


def test_register_quality_schema() -> None:
    """A quality schema is emitted under quality_schemas with the wire key 'schema'."""
    registry = SchemaRegistry()
    registry.register_quality_schema(
        "summary_quality",
        {"type": "object", "properties": {"score": {"type": "number"}}},
        title="Summary quality",
        template="Score {{score}}",
    )
    assert registry.to_agent_schema_version("v")["quality_schemas"] == [
        {
            "name": "summary_quality",
            "schema": {"type": "object", "properties": {"score": {"type": "number"}}},
            "title": "Summary quality",
            "template": "Score {{score}}",
        }
    ]


def test_quality_schema_is_not_a_span_type() -> None:
    """A quality schema is not reported by has, knows or list."""
    registry = SchemaRegistry()
    registry.register_quality_schema("q", {"type": "object"})
    assert not registry.has("q")
    assert not registry.knows("q")
    assert registry.list() == []


def test_register_quality_schema_twice_raises_value_error() -> None:
    """Registering the same quality schema name twice raises ValueError."""
    registry = SchemaRegistry()
    registry.register_quality_schema("q", {"type": "object"})
    with pytest.raises(ValueError, match="'q'"):
        registry.register_quality_schema("q", {"type": "object"})


def test_register_quality_schema_rejects_non_dict() -> None:
    """A non-dict quality schema raises TypeError."""
    with pytest.raises(TypeError):
        SchemaRegistry().register_quality_schema("q", "nope")  # type: ignore[arg-type]


# -- lookup --------------------------------------------------------------------------


def test_get_unknown_returns_none_and_has_false() -> None:
    """An unregistered name is not found."""
    registry = _seed_registry()
    assert registry.get("missing") is None
    assert registry.has("missing") is False
    assert registry.knows("missing") is False


def test_list_combines_both_params_forms_without_duplicates() -> None:
    """list() names each span type with a params schema once, in registration order."""
    registry = SchemaRegistry()
    registry.register("b", {})
    registry.register_type(name="a", params_schema={})
    registry.register("c", {})
    registry.register_type(name="b", params_schema={})
    registry.register_result("only-result", {})
    assert registry.list() == ["b", "c", "a"]


def test_aliases_match_has_and_list() -> None:
    """has_schema and list_schemas are the same as has and list."""
    registry = _seed_registry()
    assert registry.has_schema("agent:llm") is registry.has("agent:llm") is True
    assert registry.has_schema("missing") is False
    assert registry.list_schemas() == registry.list() == ["langchain:agent", "agent:llm"]


def test_knows_covers_every_span_form() -> None:
    """knows() is True for names registered as params, result or full span type."""
    registry = SchemaRegistry()
    registry.register("p", {})
    registry.register_result("r", {})
    registry.register_type(name="t", params_schema={})
    assert [registry.knows(n) for n in ("p", "r", "t", "x")] == [True, True, True, False]


def test_len_counts_distinct_span_types() -> None:
    """len() counts each span type name once across the three span forms."""
    registry = SchemaRegistry()
    assert len(registry) == 0
    registry.register("a", {})
    registry.register_result("a", {})
    registry.register_type(name="a", params_schema={})
    registry.register_result("b", {})
    assert len(registry) == 2


def test_empty_registry_is_truthy() -> None:
    """An empty registry is still a configured registry (truthy)."""
    assert bool(SchemaRegistry()) is True


# -- strict --------------------------------------------------------------------------


def test_strict_flag_defaults_to_false() -> None:
    """A registry is not strict unless asked."""
    assert SchemaRegistry().strict is False
    assert SchemaRegistry(strict=True).strict is True


def test_strict_is_keyword_only() -> None:
    """strict cannot be passed positionally."""
    with pytest.raises(TypeError):
        SchemaRegistry(True)  # type: ignore[misc]


# -- merge ---------------------------------------------------------------------------


def test_merge_adds_every_form() -> None:
    """merge() adds the other registry's entries of every form."""
    mine = SchemaRegistry()
    mine.register("a", {"type": "object"})
    other = SchemaRegistry()
    other.register("b", {"type": "string"})
    other.register_result("b", {"type": "object"})
    other.register_type(name="t", params_schema={})
    other.register_quality_schema("q", {})
    mine.merge(other)
    assert mine.list() == ["a", "b", "t"]
    version = mine.to_agent_schema_version("v")
    assert version["span_schemas"] == {"a": {"type": "object"}, "b": {"type": "string"}}
    assert version["span_result_schemas"] == {"b": {"type": "object"}}
    assert [e["name"] for e in version["span_type_schemas"]] == ["t"]
    assert [e["name"] for e in version["quality_schemas"]] == ["q"]


def test_merge_leaves_other_unchanged() -> None:
    """merge() does not modify the registry merged in."""
    mine = SchemaRegistry()
    mine.register("a", {})
    other = SchemaRegistry()
    other.register("b", {})
    before = other.to_agent_schema_version("v")
    mine.merge(other)
    assert other.to_agent_schema_version("v") == before
    assert not other.knows("a")


def test_merge_copies_entries() -> None:
    """Changing the other registry after a merge does not change this one."""
    mine = SchemaRegistry()
    other = SchemaRegistry()
    other.register("b", {"type": "object"})
    mine.merge(other)
    other.register_unsafe("b", {"type": "string"})
    assert mine.get("b") == {"type": "object"}


def test_merge_same_name_in_different_forms_is_not_a_conflict() -> None:
    """A name registered in one form here and another form there merges cleanly."""
    mine = SchemaRegistry()
    mine.register("a", {})
    other = SchemaRegistry()
    other.register_result("a", {"type": "object"})
    other.register_type(name="a", params_schema={})
    mine.merge(other)
    version = mine.to_agent_schema_version("v")
    assert set(version) == {
        "external_identifier",
        "span_schemas",
        "span_result_schemas",
        "span_type_schemas",
    }


def test_merge_conflict_is_atomic_and_names_every_conflict() -> None:
    """On any conflict nothing is added and the error names each conflicting entry."""
    mine = SchemaRegistry()
    mine.register("p", {"type": "object"})
    mine.register_result("r", {})
    mine.register_type(name="t", params_schema={})
    mine.register_quality_schema("q", {})
    before = mine.to_agent_schema_version("v")

    other = SchemaRegistry()
    other.register("p", {"type": "string"})
    other.register("new-params", {})
    other.register_result("r", {"type": "string"})
    other.register_result("new-result", {})
    other.register_type(name="t", params_schema={"type": "string"})
    other.register_type(name="new-type", params_schema={})
    other.register_quality_schema("q", {"type": "string"})
    other.register_quality_schema("new-quality", {})

    with pytest.raises(ValueError) as caught:
        mine.merge(other)
    message = str(caught.value)
    for name in (
        "span_schemas/p",
        "span_result_schemas/r",
        "span_type_schemas/t",
        "quality_schemas/q",
    ):
        assert name in message
    assert "new-" not in message
    assert mine.to_agent_schema_version("v") == before
    assert not mine.knows("new-params")
    assert not mine.knows("new-result")
    assert not mine.knows("new-type")


def test_merge_identical_entry_still_conflicts() -> None:
    """A name in the same form conflicts even when both schemas are equal."""
    mine = SchemaRegistry()
    mine.register("a", {"type": "object"})
    other = SchemaRegistry()
    other.register("a", {"type": "object"})
    with pytest.raises(ValueError, match="span_schemas/a"):
        mine.merge(other)


# -- to_agent_schema_version ---------------------------------------------------------


def test_to_agent_schema_version_empty_registry() -> None:
    """An empty registry emits only the external identifier."""
    assert SchemaRegistry().to_agent_schema_version("ext-1") == {"external_identifier": "ext-1"}


def test_to_agent_schema_version_emits_only_populated_forms() -> None:
    """Each form appears only when something was registered in it."""
    registry = SchemaRegistry()
    registry.register("a", {})
    assert set(registry.to_agent_schema_version("v")) == {"external_identifier", "span_schemas"}
    registry.register_type(name="t", params_schema={})
    assert set(registry.to_agent_schema_version("v")) == {
        "external_identifier",
        "span_schemas",
        "span_type_schemas",
    }


def test_to_agent_schema_version_seed_example() -> None:
    """The seed's mixed example emits both span_schemas and span_type_schemas."""
    version = _seed_registry().to_agent_schema_version("combined-1.0.0")
    assert version["external_identifier"] == "combined-1.0.0"
    assert version["span_schemas"] == {"langchain:agent": {"type": "object"}}
    assert [entry["name"] for entry in version["span_type_schemas"]] == ["agent:llm"]
    assert "span_result_schemas" not in version
    assert "quality_schemas" not in version
    json.dumps(version)


def test_to_agent_schema_version_result_is_a_deep_copy() -> None:
    """Mutating the emitted version does not change the registry."""
    registry = _seed_registry()
    registry.register_result("r", {"type": "object"})
    registry.register_quality_schema("q", {"type": "object"})
    first = registry.to_agent_schema_version("v")
    expected = registry.to_agent_schema_version("v")
    first["span_schemas"]["langchain:agent"]["type"] = "mutated"
    first["span_schemas"]["added"] = {}
    first["span_result_schemas"]["r"]["type"] = "mutated"
    first["span_type_schemas"][0]["params_schema"]["properties"]["model"] = {}
    first["span_type_schemas"].append({"name": "added"})
    first["quality_schemas"][0]["schema"]["type"] = "mutated"
    assert registry.to_agent_schema_version("v") == expected
    assert not registry.knows("added")


def test_to_agent_schema_version_uses_span_type_registration_order() -> None:
    """span_type_schemas lists span types in the order they were registered."""
    registry = SchemaRegistry()
    for name in ("z", "a", "m"):
        registry.register_type(name=name, params_schema={})
    names = [e["name"] for e in registry.to_agent_schema_version("v")["span_type_schemas"]]
    assert names == ["z", "a", "m"]


# -- fingerprint ---------------------------------------------------------------------


def test_fingerprint_is_stable_for_equal_content() -> None:
    """Two registries with the same content have the same fingerprint, call after call."""
    first = _seed_registry()
    second = _seed_registry()
    assert first.fingerprint() == second.fingerprint() == first.fingerprint()


def test_fingerprint_is_a_short_hex_string() -> None:
    """The fingerprint is 16 lowercase hex characters."""
    fingerprint = _seed_registry().fingerprint()
    assert len(fingerprint) == 16
    int(fingerprint, 16)
    assert fingerprint == fingerprint.lower()


def test_fingerprint_ignores_registration_order() -> None:
    """Registering the same entries in another order gives the same fingerprint."""
    first = SchemaRegistry()
    second = SchemaRegistry()
    first.register("a", {"type": "object"})
    first.register("b", {"type": "string"})
    first.register_type(name="t1", params_schema={})
    first.register_type(name="t2", params_schema={"type": "object"})
    first.register_quality_schema("q1", {})
    first.register_quality_schema("q2", {})
    second.register_quality_schema("q2", {})
    second.register_quality_schema("q1", {})
    second.register_type(name="t2", params_schema={"type": "object"})
    second.register_type(name="t1", params_schema={})
    second.register("b", {"type": "string"})
    second.register("a", {"type": "object"})
    assert first.fingerprint() == second.fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r.register("extra", {}),
        lambda r: r.register_result("agent:llm", {}),
        lambda r: r.register_quality_schema("q", {}),
        lambda r: r.register_unsafe("langchain:agent", {"type": "string"}),
        lambda r: r.register_type(name="other", params_schema={}),
    ],
)
def test_fingerprint_changes_with_content(change: Any) -> None:
    """Any added or changed entry changes the fingerprint."""
    registry = _seed_registry()
    before = registry.fingerprint()
    change(registry)
    assert registry.fingerprint() != before


def test_fingerprint_sees_span_type_details() -> None:
    """Span types that differ only in title have different fingerprints."""
    first = SchemaRegistry()
    second = SchemaRegistry()
    first.register_type(name="t", params_schema={}, title="One")
    second.register_type(name="t", params_schema={}, title="Two")
    assert first.fingerprint() != second.fingerprint()


def test_fingerprint_of_empty_registries_match() -> None:
    """Empty registries share a fingerprint that differs from a non-empty one."""
    populated = SchemaRegistry()
    populated.register("a", {})
    assert SchemaRegistry().fingerprint() == SchemaRegistry().fingerprint()
    assert SchemaRegistry().fingerprint() != populated.fingerprint()
