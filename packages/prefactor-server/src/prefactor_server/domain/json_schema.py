"""JSON Schema validation that reads nothing but the schema and runs in bounded time.

A client registers the schemas its spans are checked against, and the check runs on the
single writer path, so a schema is hostile input (issue 10):

* **No I/O.** Only references inside the schema document itself (``#``, ``#/...``,
  ``#anchor``) are allowed; :func:`check_schema_safety` refuses anything else when the
  schema version is registered, and every validator is built on a registry whose
  ``retrieve`` refuses, so no validation path can open a file or a socket (jsonschema's
  default registry fetches ``http://`` and ``file://`` references with ``urlopen``).
* **Linear-time patterns.** ``pattern``, ``patternProperties`` and the
  ``additionalProperties`` that depends on them match with RE2 (``google-re2``), whose
  time is linear in the input; a pattern RE2 cannot run (a backreference, a lookaround)
  is refused at registration. ``uniqueItems`` compares canonical forms in a set instead of
  jsonschema's pairwise fallback (quadratic for arrays of objects).
* **A budget.** Every keyword evaluation spends one step of a per-validation budget
  (:data:`MAX_STEPS`); nested ``anyOf``/``$ref`` combinations that explode, and reference
  cycles, end with :class:`SchemaTooCostly` (the API answers 422) instead of holding the
  writer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Any, NoReturn
from urllib.parse import unquote

import re2  # type: ignore[import-untyped]
import referencing
from jsonschema import (  # type: ignore[import-untyped]
    SchemaError,
    ValidationError,
    validators,
)
from jsonschema.protocols import Validator  # type: ignore[import-untyped]

from prefactor_server.errors import excerpt, invalid

__all__ = [
    "MAX_PATTERN_CHARS",
    "MAX_REQUEST_SCHEMA_NODES",
    "MAX_SCHEMA_NODES",
    "MAX_STEPS",
    "MAX_VERSION_NODES",
    "PatternError",
    "SchemaTooCostly",
    "UnsafeSchema",
    "check_schema",
    "check_schema_safety",
    "count_nodes",
    "larger_than",
    "search_function",
    "spending",
    "validator_for",
]

MAX_SCHEMA_NODES = 2000
"""Most objects and values in one registered schema: jsonschema's metaschema check of a
2,000-node schema takes about half a second (3,000 nodes: 1.9 s; it grows faster than
the size), and it runs on the writer."""

MAX_VERSION_NODES = 5000
"""Most objects and values in one registered schema version (all its span types and
quality schemas): many small schemas cost a metaschema check each."""

MAX_REQUEST_SCHEMA_NODES = 10_000
"""Most objects and values of *new* schema versions one request may register (a bulk
request of 200 registers of large new versions would otherwise hold the writer for
minutes); the item past it gets a 422 and the items before it are kept."""

MAX_PATTERN_CHARS = 1000
"""Longest ``pattern`` / ``patternProperties`` key accepted at registration."""

MAX_STEPS = 30_000
"""Steps one validation may spend: a keyword costs one, a reference ``_REF_COST`` (about
2 µs and 20 µs of jsonschema's time), so a validation ends within about 0.1 s on a quiet
machine. Payloads that need more (thousands of items under a schema the fast check does
not cover) get a 422 that says so."""
_REF_COST = 10

_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
# Keywords whose values are data, not subschemas: a "$ref" or "pattern" inside them is
# an ordinary string of the data.
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is answered with a 422, not logged by RE2


class SchemaTooCostly(Exception):
    """A validation spent its whole budget (an exploding schema or a reference cycle)."""


class PatternError(ValueError):
    """A regular expression RE2 cannot compile (backreference, lookaround, bad syntax)."""


@lru_cache(maxsize=1024)
def search_function(pattern: str) -> Callable[[str], Any]:
    """Return the RE2 ``search`` of ``pattern`` (compiled once per process).

    Raises:
        PatternError: RE2 cannot compile the pattern.
    """
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise PatternError(str(reason)) from None
    search: Callable[[str], Any] = compiled.search
    return search


# -- the budget ---------------------------------------------------------------------------


class _Budget(threading.local):
    remaining: int | None = None


_budget = _Budget()


@contextmanager
def spending(steps: int = MAX_STEPS) -> Iterator[None]:
    """Give the validations run inside the block ``steps`` keyword evaluations in all."""
    saved = _budget.remaining
    _budget.remaining = steps
    try:
        yield
    finally:
        _budget.remaining = saved


def _spend(cost: int) -> None:
    remaining = _budget.remaining
    if remaining is None:
        return
    if remaining < cost:
        raise SchemaTooCostly
    _budget.remaining = remaining - cost


# -- keywords ------------------------------------------------------------------------------


def _pattern(validator: Validator, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
    if validator.is_type(instance, "string") and not search_function(pattern)(instance):
        yield ValidationError(f"{instance[:100]!r} does not match {pattern[:100]!r}")


def _pattern_properties(
    validator: Validator, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        search = search_function(pattern)
        for key, value in instance.items():
            if search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    searches = [search_function(pattern) for pattern in schema.get("patternProperties", {})]
    if not searches:
        return [key for key in instance if key not in properties]
    return [
        key
        for key in instance
        if key not in properties and not any(search(key) for search in searches)
    ]


def _additional_properties(
    validator: Validator, allowed: Any, instance: Any, schema: Any
) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    extras = _additional(instance, schema)
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        # At most a few names: a payload with a million extra keys must not cost a
        # million-name message (it would be cut to an excerpt anyway).
        names = ", ".join(repr(name[:40]) for name in extras[:5])
        more = f" and {len(extras) - 5} more" if len(extras) > 5 else ""
        yield ValidationError(f"Additional properties are not allowed ({names}{more} unexpected)")


def _canonical(value: Any) -> Any:
    # Equal in JSON Schema terms ⇔ equal canonical forms: 1 == 1.0 but true != 1, key order
    # does not matter. Python's hash agrees for 1 and 1.0, so a set finds duplicates.
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, dict):
        return ("object", frozenset((key, _canonical(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_canonical(item) for item in value))
    return value


def _unique_items(validator: Validator, unique: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"has non-unique elements ({len(instance)} items)")
            return
        seen.add(key)


_REPLACED = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "uniqueItems": _unique_items,
}


def _counted(keyword: Callable[..., Any], cost: int) -> Callable[..., Any]:
    def spend_then(validator: Validator, value: Any, instance: Any, schema: Any) -> Any:
        _spend(cost)
        return keyword(validator, value, instance, schema)

    return spend_then


@cache
def _safe_class(base: type[Validator]) -> type[Validator]:
    keywords = {**base.VALIDATORS}
    keywords.update((name, fn) for name, fn in _REPLACED.items() if name in keywords)
    counted = {
        name: _counted(fn, _REF_COST if name in _REF_KEYWORDS else 1)
        for name, fn in keywords.items()
    }
    safe: type[Validator] = validators.extend(base, counted)
    return safe


def _refuse_retrieval(uri: str) -> NoReturn:
    raise LookupError(f"schemas are self-contained; {uri} is not fetched")


_NO_RETRIEVAL: referencing.Registry[Any] = referencing.Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]


class UnsafeSchema(Exception):
    """A stored schema has what registration now refuses (checked again before use)."""


def validator_for(schema: dict[str, Any]) -> Validator:
    """Build the validator of a (registered) schema: RE2 patterns, a budget, no retrieval.

    Raises:
        UnsafeSchema: A nested ``$schema`` (jsonschema would switch to its stock validator
            class for that part, with Python's backtracking regular expressions and no
            budget); only a version stored before registration refused it.
    """
    for node, where in _walk(schema, ""):
        if where and isinstance(node.get("$schema"), str):
            raise UnsafeSchema(f"{where.lstrip('.')}.$schema")
    base = validators.validator_for(schema, default=validators.Draft202012Validator)
    return _safe_class(base)(schema, registry=_NO_RETRIEVAL)


# -- registration checks ----------------------------------------------------------------------


def check_schema(schema: dict[str, Any]) -> None:
    """Check ``schema`` against its draft's metaschema, within the step budget.

    jsonschema's own ``check_schema`` has no bound: a 2 MB schema of 50,000 properties
    took 25 s of the writer's time.

    Raises:
        SchemaError: The schema is not valid for its draft.
        SchemaTooCostly: Checking it takes more than :data:`MAX_STEPS` steps.
    """
    base = validators.validator_for(schema, default=validators.Draft202012Validator)
    meta = _safe_class(validators.validator_for(base.META_SCHEMA, default=base))
    checker = meta(base.META_SCHEMA, format_checker=base.FORMAT_CHECKER, registry=_NO_RETRIEVAL)
    with spending():
        for error in checker.iter_errors(schema):
            raise SchemaError.create_from(error)


def _walk(node: Any, path: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every object of a schema document with its field path (data keywords skipped)."""
    stack = [(node, path)]
    while stack:
        current, where = stack.pop()
        if isinstance(current, dict):
            yield current, where
            for key, value in current.items():
                if key not in _DATA_KEYWORDS and isinstance(value, dict | list):
                    stack.append((value, f"{where}.{key}"))
        elif isinstance(current, list):
            stack.extend((value, f"{where}.{index}") for index, value in enumerate(current))


def count_nodes(value: Any, limit: int) -> int:
    """The objects, arrays and scalars in ``value``, counted up to ``limit + 1``."""
    count = 0
    stack = [value]
    while stack and count <= limit:
        current = stack.pop()
        count += 1
        if isinstance(current, dict):
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return count


def larger_than(value: Any, limit: int) -> bool:
    """Whether ``value`` has more than ``limit`` objects, arrays and scalars in all."""
    return count_nodes(value, limit) > limit


def _check_pattern(pattern: str, field: str) -> None:
    if len(pattern) > MAX_PATTERN_CHARS:
        # RE2's matching time grows with the compiled program too, and compiling a
        # 500 KB pattern (with Python's re in the metaschema's "format": "regex") took 4.5 s.
        raise invalid(field, f"must be at most {MAX_PATTERN_CHARS} characters", "invalid_schema")
    try:
        search_function(pattern)
    except PatternError as exc:
        raise invalid(
            field,
            f"is not a pattern that can be matched in linear time (RE2 syntax, no "
            f"backreferences or lookarounds): {exc}",
            "invalid_schema",
        ) from None


def _resolves(schema: Any, reference: str) -> bool:
    """Whether an in-document reference (``#``, ``#/json/pointer`` or ``#anchor``) names a
    part of ``schema``. A document with nested ``$id``s has other bases for its pointers;
    it is not judged here (validation still fetches nothing)."""
    fragment = unquote(reference[1:])
    if any(where and isinstance(node.get("$id"), str) for node, where in _walk(schema, "")):
        return True
    if not fragment:
        return True
    if not fragment.startswith("/"):
        return any(
            fragment in (node.get("$anchor"), node.get("$dynamicAnchor"))
            for node, _ in _walk(schema, "")
        )
    node = schema
    for token in fragment[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdecimal() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return True


def check_schema_safety(schema: Any, field: str) -> None:
    """Refuse what a schema could use to make the server read, fetch or stall.

    Raises:
        ApiError: 422 ``invalid_schema`` naming the offending keyword's field path: a
            reference outside the document, a pattern RE2 cannot run, or
            ``unevaluatedProperties`` next to ``patternProperties`` (jsonschema matches
            those with Python's backtracking engine).
    """
    if larger_than(schema, MAX_SCHEMA_NODES):
        raise invalid(
            field,
            f"is too large: more than {MAX_SCHEMA_NODES} objects and values (checking a "
            "schema against its metaschema takes time on the server's only writer)",
            "invalid_schema",
        )
    uses_unevaluated = uses_pattern_properties = False
    for node, where in _walk(schema, field):
        if where != field and isinstance(node.get("$schema"), str):
            raise invalid(
                f"{where}.$schema",
                "may only be given at the top of the schema (a nested one would switch "
                "the validator for that part)",
                "invalid_schema",
            )
        for keyword in _REF_KEYWORDS:
            target = node.get(keyword)
            if isinstance(target, str) and not target.startswith("#"):
                raise invalid(
                    f"{where}.{keyword}",
                    "must point inside the same schema ('#', '#/...' or '#anchor'); "
                    "schemas are self-contained and the server fetches nothing",
                    "invalid_schema",
                )
            if isinstance(target, str) and not _resolves(schema, target):
                raise invalid(
                    f"{where}.{keyword}",
                    f"points at nothing in this schema: {excerpt(target, 80)}",
                    "invalid_schema",
                )
        pattern = node.get("pattern")
        if isinstance(pattern, str):
            _check_pattern(pattern, f"{where}.pattern")
        properties = node.get("patternProperties")
        if isinstance(properties, dict):
            uses_pattern_properties = True
            for key in properties:
                _check_pattern(key, f"{where}.patternProperties")
        uses_unevaluated = uses_unevaluated or "unevaluatedProperties" in node
    if uses_unevaluated and uses_pattern_properties:
        raise invalid(
            field,
            "may not combine unevaluatedProperties with patternProperties "
            "(that combination is not matched in linear time)",
            "invalid_schema",
        )
