"""The fast validity check of span payloads against a schema version's JSON Schemas.

jsonschema is thorough and slow (a few microseconds per keyword); the span path checks
two small schemas per span. Schemas made only of the common keywords below compile to a
tree of closures that answer "certainly valid" or "maybe not". The answer is
conservative: True only when jsonschema would accept the instance too; anything the
compiler is unsure of (a float for "integer", an enum of objects, an unknown keyword)
answers False or is not compiled at all, and jsonschema then decides and produces the
errors. So the fast path changes speed, never outcomes.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

from prefactor_server.domain.json_schema import PatternError, search_function

__all__ = ["FastCheck", "always", "compile_fast", "fast_check"]

FastCheck = Callable[[Any], bool]

# Drafts whose keywords below mean the same (draft 3/4 differ: boolean "required" and
# "exclusiveMinimum"); no $schema means the latest, 2020-12.
_FAST_DRAFTS = frozenset(
    f"{scheme}://json-schema.org/{draft}{suffix}"
    for scheme in ("http", "https")
    for draft in ("draft-06/schema", "draft-07/schema", "draft/2019-09/schema",
                  "draft/2020-12/schema")
    for suffix in ("", "#")
)  # fmt: skip

# Keywords that never change validity (format is an annotation: no format checker is used).
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "format", "deprecated",
     "readOnly", "writeOnly", "$schema", "$id", "contentMediaType", "contentEncoding"}
)  # fmt: skip
_KEYWORDS = _ANNOTATIONS | {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
    "minItems", "maxItems", "minProperties", "maxProperties", "pattern",
}  # fmt: skip

# JSON type → the exact Python types orjson produces for it (bool is not a number here).
_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_SCALARS = (str, int, float, bool, type(None))


class _Unsupported(Exception):
    """The schema uses something the fast compiler leaves to jsonschema."""


def always(instance: Any) -> bool:
    """The check of a schema version without a schema: every payload passes."""
    return True


def _never(instance: Any) -> bool:
    return False


def _number(value: Any) -> float | int:
    if type(value) not in (int, float):
        raise _Unsupported
    return value  # type: ignore[no-any-return]


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise _Unsupported
    return value


def _all(checks: list[FastCheck]) -> FastCheck:
    if not checks:
        return always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda instance: first(instance) and second(instance)

    def check(instance: Any) -> bool:
        for part in checks:  # noqa: SIM110 - a plain loop is faster than all() on a genexpr
            if not part(instance):
                return False
        return True

    return check


def _type_check(spec: Any) -> FastCheck:
    names = [spec] if isinstance(spec, str) else spec
    if not isinstance(names, list) or not names:
        raise _Unsupported
    allowed: set[type] = set()
    for name in names:
        if name not in _TYPES:
            raise _Unsupported
        allowed.update(_TYPES[name])
    if len(allowed) == 1:
        (only,) = allowed
        return lambda instance: type(instance) is only
    frozen = frozenset(allowed)
    return lambda instance: type(instance) in frozen


def _only_types(schema: Any) -> frozenset[type] | None:
    """The exact Python types a schema made only of ``type`` (and annotations) accepts,
    with ``object`` (an absent property), or None for any other schema."""
    if not isinstance(schema, dict) or schema.keys() - _ANNOTATIONS != {"type"}:
        return None
    spec = schema["type"]
    names = [spec] if isinstance(spec, str) else spec
    if not isinstance(names, list) or not names or not all(name in _TYPES for name in names):
        return None
    return frozenset(kind for name in names for kind in _TYPES[name]) | {object}


def _enum_check(values: list[Any]) -> FastCheck:
    # Scalars compared with their exact type (jsonschema tells 1 from True but not 1 from
    # 1.0: a mixed pair answers False here and jsonschema decides).
    options: set[tuple[type, Any]] = set()
    for value in values:
        if type(value) not in _SCALARS:
            raise _Unsupported
        options.add((type(value), value))
    return lambda instance: type(instance) in _SCALARS and (type(instance), instance) in options


def _object_check(schema: dict[str, Any], only_objects: bool = False) -> FastCheck | None:
    """The check of the object keywords; with ``only_objects`` it also refuses non-objects
    (``"type": "object"``), else it passes them."""
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    additional = schema.get("additionalProperties", True)
    if not isinstance(properties, dict) or not isinstance(required, list):
        raise _Unsupported
    if not all(isinstance(name, str) for name in required):
        raise _Unsupported
    subchecks = [(name, compile_fast(sub)) for name, sub in properties.items()]
    # Properties whose schema accepts anything need no look-up; those whose schema is
    # only a type are checked inline (no call per property).
    typed = tuple(
        (name, allowed)
        for name, check in subchecks
        if check is not always and (allowed := _only_types(properties[name])) is not None
    )
    inline = {name for name, _ in typed}
    subchecks = [
        (name, check) for name, check in subchecks if check is not always and name not in inline
    ]
    extra: FastCheck | None = None if additional is True else compile_fast(additional)
    if extra is always:
        extra = None
    low = _count(schema["minProperties"]) if "minProperties" in schema else None
    high = _count(schema["maxProperties"]) if "maxProperties" in schema else None
    if not (subchecks or typed or required) and extra is None and low is None and high is None:
        return None
    names = tuple(required)
    known = frozenset(properties)
    items = tuple(subchecks)
    missing = object()

    def check(instance: Any) -> bool:
        if type(instance) is not dict:
            return not only_objects and not isinstance(instance, dict)
        for name in names:
            if name not in instance:
                return False
        for name, allowed in typed:  # ``missing`` is an ``object``, which ``allowed`` has
            if type(instance.get(name, missing)) not in allowed:
                return False
        for name, sub in items:
            value = instance.get(name, missing)
            if value is not missing and not sub(value):
                return False
        if extra is not None:
            for name, value in instance.items():
                if name not in known and not extra(value):
                    return False
        if low is not None and len(instance) < low:
            return False
        return high is None or len(instance) <= high

    return check


def compile_fast(schema: Any) -> FastCheck:
    """Compile a schema to a conservative validity check (see the comment above).

    Raises:
        _Unsupported: The schema uses a keyword or form left to jsonschema.
    """
    if schema is True:
        return always
    if schema is False:
        return _never
    if not isinstance(schema, dict) or not schema.keys() <= _KEYWORDS:
        raise _Unsupported
    draft = schema.get("$schema")
    if draft is not None and draft not in _FAST_DRAFTS:
        raise _Unsupported
    checks: list[FastCheck] = []
    # "type": "object" with object keywords: one check does both (a span's params).
    only_objects = schema.get("type") == "object"
    by_type = _object_check(schema, only_objects)
    if "type" in schema and (by_type is None or not only_objects):
        checks.append(_type_check(schema["type"]))
    if "enum" in schema:
        if not isinstance(schema["enum"], list):
            raise _Unsupported
        checks.append(_enum_check(schema["enum"]))
    if "const" in schema:
        checks.append(_enum_check([schema["const"]]))
    if by_type is not None:
        checks.append(by_type)
    if "items" in schema:
        sub = compile_fast(schema["items"])
        if sub is not always:

            def items(instance: Any) -> bool:
                if type(instance) is not list:
                    return not isinstance(instance, list)
                for value in instance:  # noqa: SIM110 - faster than all()
                    if not sub(value):
                        return False
                return True

            checks.append(items)
    checks.extend(_size_checks(schema, "minItems", "maxItems", list))
    checks.extend(_size_checks(schema, "minLength", "maxLength", str))
    checks.extend(_number_checks(schema))
    if "pattern" in schema:
        if not isinstance(schema["pattern"], str):
            raise _Unsupported
        try:
            search = search_function(schema["pattern"])
        except PatternError:
            raise _Unsupported from None
        checks.append(
            lambda instance: (
                search(instance) is not None
                if type(instance) is str
                else not isinstance(instance, str)
            )
        )
    return _all(checks)


def _size_checks(
    schema: dict[str, Any], low_key: str, high_key: str, kind: type[Any]
) -> list[FastCheck]:
    checks: list[FastCheck] = []
    if low_key in schema:
        low = _count(schema[low_key])
        checks.append(
            lambda instance: (
                len(instance) >= low if type(instance) is kind else not isinstance(instance, kind)
            )
        )
    if high_key in schema:
        high = _count(schema[high_key])
        checks.append(
            lambda instance: (
                len(instance) <= high if type(instance) is kind else not isinstance(instance, kind)
            )
        )
    return checks


def _number_checks(schema: dict[str, Any]) -> list[FastCheck]:
    checks: list[FastCheck] = []
    numeric = (int, float)

    def bound(ok: Callable[[Any], bool]) -> FastCheck:
        # Booleans are not numbers to jsonschema: they pass a bound, as do non-numbers.
        return lambda instance: (
            ok(instance)
            if type(instance) in numeric
            else (type(instance) is bool or not isinstance(instance, numbers.Number))
        )

    if "minimum" in schema:
        low = _number(schema["minimum"])
        checks.append(bound(lambda value: value >= low))
    if "maximum" in schema:
        high = _number(schema["maximum"])
        checks.append(bound(lambda value: value <= high))
    if "exclusiveMinimum" in schema:
        xlow = _number(schema["exclusiveMinimum"])
        checks.append(bound(lambda value: value > xlow))
    if "exclusiveMaximum" in schema:
        xhigh = _number(schema["exclusiveMaximum"])
        checks.append(bound(lambda value: value < xhigh))
    return checks


def fast_check(schema: Any) -> FastCheck | None:
    """Return the fast check of ``schema``, or None when jsonschema must do all the work."""
    try:
        return compile_fast(schema)
    except (_Unsupported, RecursionError):
        return None
