"""The fast schema check (``domain/schemas.py``) only ever vouches for what jsonschema
accepts: it answers True for a valid instance of the common schemas and leaves every
other verdict to jsonschema (False never means invalid, only "not vouched for")."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from prefactor_server.domain.fast_check import fast_check

SCHEMAS: list[dict[str, Any]] = [
    {"type": "object"},
    {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
    {"type": "object", "properties": {"n": {"type": "integer"}}, "additionalProperties": False},
    {"type": ["object", "null"], "properties": {"a": {"type": "string"}}},
    {"properties": {"a": {"type": "string"}}, "required": ["a"]},
    {"type": "object", "minProperties": 1, "maxProperties": 2},
    {"type": "object", "additionalProperties": {"type": "number"}},
    {"type": "array", "items": {"type": "object", "required": ["k"]}},
]
INSTANCES: list[Any] = [
    {}, {"a": "x"}, {"a": 1}, {"n": 1}, {"n": 1.5}, {"n": True}, {"a": "x", "b": 2},
    {"a": "x", "b": 2, "c": 3}, [], [{"k": 1}], [{}], None, "text", 3, 2.5, True,
]  # fmt: skip


@pytest.mark.parametrize("schema", SCHEMAS, ids=[str(i) for i in range(len(SCHEMAS))])
def test_fast_check_vouches_only_for_valid_instances(schema: dict[str, Any]) -> None:
    check = fast_check(schema)
    assert check is not None
    validator = Draft202012Validator(schema)
    vouched = 0
    for instance in INSTANCES:
        if check(instance):
            vouched += 1
            assert validator.is_valid(instance), (schema, instance)
    # It does vouch for the common valid cases (else it would be no faster).
    assert vouched >= 1


def test_object_type_and_keywords_are_one_check() -> None:
    """``"type": "object"`` with object keywords refuses non-objects in the same check."""
    check = fast_check({"type": "object", "properties": {"a": {"type": "string"}}})
    assert check is not None
    assert [check(value) for value in ({"a": "x"}, {}, [], None, {"a": 1})] == [
        True, True, False, False, False,
    ]  # fmt: skip


TYPED = {
    "type": "object",
    "properties": {
        "s": {"type": "string", "description": "checked inline"},
        "i": {"type": "integer"},
        "n": {"type": ["number", "null"]},
        "b": {"type": "boolean"},
        "o": {"type": "object", "required": ["k"]},  # not only a type: a check of its own
    },
    "required": ["s"],
}
TYPED_INSTANCES: list[Any] = [
    {"s": "x"}, {"s": 1}, {}, {"s": None}, {"s": "x", "i": 1}, {"s": "x", "i": 1.5},
    {"s": "x", "i": True}, {"s": "x", "n": None}, {"s": "x", "n": 2.5}, {"s": "x", "n": "2"},
    {"s": "x", "b": False}, {"s": "x", "b": 0}, {"s": "x", "other": [1]},
    {"s": "x", "o": {"k": 1}}, {"s": "x", "o": {}}, {"s": "x", "o": []},
]  # fmt: skip


def test_properties_of_one_type_are_decided_exactly() -> None:
    """Properties whose schema is only a type (checked inline, without a call each) get
    jsonschema's own verdict for every JSON type (no integer-valued floats here)."""
    check = fast_check(TYPED)
    assert check is not None
    validator = Draft202012Validator(TYPED)
    verdicts = [check(instance) for instance in TYPED_INSTANCES]
    assert verdicts == [validator.is_valid(instance) for instance in TYPED_INSTANCES]
    assert verdicts.count(True) == 7
