"""The fast schema check (``domain/schemas.py``) only ever vouches for what jsonschema
accepts: it answers True for a valid instance of the common schemas and leaves every
other verdict to jsonschema (False never means invalid, only "not vouched for")."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from prefactor_server.domain.schemas import fast_check

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
