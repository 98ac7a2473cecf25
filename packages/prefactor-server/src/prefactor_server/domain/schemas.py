"""Schema versions: normalising the register body, validating payloads, rendering templates.

A schema version is immutable once stored (re-registering its identifier reuses it), so
its compiled validators are cached for the life of the process, keyed by account and
schema version id. That keeps JSON Schema compilation off the per-span path.
"""

from __future__ import annotations

import hashlib
import numbers
import re
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import orjson
import referencing.exceptions

# jsonschema ships no type information and types-jsonschema is not a dev dependency.
from jsonschema import SchemaError  # type: ignore[import-untyped]
from jsonschema.protocols import Validator  # type: ignore[import-untyped]

from prefactor_server.domain.json_schema import (
    MAX_STEPS,
    MAX_VERSION_NODES,
    PatternError,
    SchemaTooCostly,
    UnsafeSchema,
    check_schema,
    check_schema_safety,
    larger_than,
    search_function,
    spending,
    validator_for,
)
from prefactor_server.errors import ApiError, invalid

__all__ = ["SchemaCache", "SchemaVersion", "normalise_schema_version", "render_template"]

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")


def _check_schema(schema: Any, field: str) -> None:
    if not isinstance(schema, dict):
        raise invalid(field, "must be a JSON Schema object")
    check_schema_safety(schema, field)  # first: it is cheap and bounds what follows
    try:
        check_schema(schema)
    except SchemaError as exc:
        raise invalid(
            field, f"is not a valid JSON Schema: {exc.message}", "invalid_schema"
        ) from None
    except (SchemaTooCostly, RecursionError):
        raise invalid(
            field,
            f"is too large or complex to check (more than {MAX_STEPS} steps)",
            "invalid_schema",
        ) from None


def _check_template(value: Any, field: str) -> None:
    if isinstance(value, str) and len(value) > MAX_TEMPLATE_CHARS:
        raise invalid(field, f"must be at most {MAX_TEMPLATE_CHARS} characters")


def normalise_schema_version(raw: dict[str, Any]) -> dict[str, Any]:
    """Merge the three span-type forms and the quality schemas of a register body.

    ``span_schemas`` give params schemas, ``span_result_schemas`` result schemas, and
    ``span_type_schemas`` full entries whose fields win over the simple forms (the wire
    spec leaves merging open, section 4.1).

    Args:
        raw: The ``agent_schema_version`` object of a register request.

    Returns:
        ``{"span_types": {name: entry}, "quality_schemas": {name: entry}}``.

    Raises:
        ApiError: 422 with the field path of a malformed entry or schema.
    """
    prefix = "agent_schema_version."
    if larger_than(raw, MAX_VERSION_NODES):
        raise invalid(
            "agent_schema_version",
            f"is too large: more than {MAX_VERSION_NODES} objects and values in all",
            "invalid_schema",
        )
    span_types: dict[str, dict[str, Any]] = {}

    def entry(name: str) -> dict[str, Any]:
        return span_types.setdefault(name, {"name": name})

    for key, target in (
        ("span_schemas", "params_schema"),
        ("span_result_schemas", "result_schema"),
    ):
        mapping = raw.get(key)
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            raise invalid(prefix + key, "must be an object of span type name to JSON Schema")
        for name, schema in mapping.items():
            _check_schema(schema, f"{prefix}{key}.{name}")
            entry(name)[target] = schema
    full = raw.get("span_type_schemas")
    if full is not None:
        if not isinstance(full, list):
            raise invalid(prefix + "span_type_schemas", "must be a list")
        for index, item in enumerate(full):
            where = f"{prefix}span_type_schemas.{index}"
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("name"), str)
                or not item["name"]
            ):
                raise invalid(where + ".name", "is required")
            current = entry(item["name"])
            for key in ("params_schema", "result_schema"):
                if item.get(key) is not None:
                    _check_schema(item[key], f"{where}.{key}")
                    current[key] = item[key]
            _check_template(item.get("template"), f"{where}.template")
            for key in ("title", "description", "template", "data_risk"):
                if item.get(key) is not None:
                    current[key] = item[key]
    quality: dict[str, dict[str, Any]] = {}
    raw_quality = raw.get("quality_schemas")
    if raw_quality is not None:
        if not isinstance(raw_quality, list):
            raise invalid(prefix + "quality_schemas", "must be a list")
        for index, item in enumerate(raw_quality):
            where = f"{prefix}quality_schemas.{index}"
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("name"), str)
                or not item["name"]
            ):
                raise invalid(where + ".name", "is required")
            if item.get("schema") is not None:
                _check_schema(item["schema"], where + ".schema")
            _check_template(item.get("template"), f"{where}.template")
            quality[item["name"]] = {
                key: item[key]
                for key in ("name", "schema", "title", "description", "template")
                if key in item
            }
    return {"span_types": span_types, "quality_schemas": quality}


def content_identifier(value: Any) -> str:
    """Return a stable identifier for a version registered without ``external_identifier``.

    Identical content then maps to one stored version instead of one per run.
    """
    digest = hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"sha256-{digest[:32]}"


def _lookup(values: dict[str, Any], path: str) -> Any:
    current: Any = values
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    return current


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value).decode()


MAX_TEMPLATE_CHARS = 2000
"""Longest summary template accepted at registration."""
MAX_SUMMARY_CHARS = 2000
"""Longest rendered summary: a template repeating ``{{big}}`` multiplied a 1 MB template
into a 200 MB summary per span."""


def render_template(template: str, values: dict[str, Any]) -> str:
    """Render ``{{field}}`` / ``{{a.b.c}}`` placeholders; a missing field renders as ``""``.

    The result is cut at :data:`MAX_SUMMARY_CHARS` (with ``…``), and rendering stops there:
    each path is looked up and encoded once, and nothing past the cut is rendered.
    """
    parts: list[str] = []
    size = 0
    rendered: dict[str, str] = {}
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        path = match.group(1)
        text = rendered.get(path)
        if text is None:
            text = rendered[path] = _text(_lookup(values, path))
        for piece in (template[position : match.start()], text):
            parts.append(piece)
            size += len(piece)
        position = match.end()
        if size > MAX_SUMMARY_CHARS:
            break
    else:
        parts.append(template[position:])
        size += len(parts[-1])
    out = "".join(parts)
    return out if size <= MAX_SUMMARY_CHARS else out[: MAX_SUMMARY_CHARS - 1] + "…"


# -- fast validity check ----------------------------------------------------------------
#
# jsonschema is thorough and slow (a few microseconds per keyword); the span path checks
# two small schemas per span. Schemas made only of the common keywords below compile to a
# tree of closures that answer "certainly valid" or "maybe not". The answer is
# conservative: True only when jsonschema would accept the instance too; anything the
# compiler is unsure of (a float for "integer", an enum of objects, an unknown keyword)
# answers False or is not compiled at all, and jsonschema then decides and produces the
# errors. So the fast path changes speed, never outcomes.

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


def _always(instance: Any) -> bool:
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
        return _always
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
        if check is not _always and (allowed := _only_types(properties[name])) is not None
    )
    inline = {name for name, _ in typed}
    subchecks = [
        (name, check) for name, check in subchecks if check is not _always and name not in inline
    ]
    extra: FastCheck | None = None if additional is True else compile_fast(additional)
    if extra is _always:
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
        return _always
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
        if sub is not _always:

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


def _path(prefix: str, path: Any) -> str:
    return ".".join([prefix, *(str(part) for part in path)])


def validation_error(
    prefix: str, validator: Validator, instance: Any, code: str = "validation_error"
) -> ApiError:
    """Collect every JSON Schema error of ``instance`` into one 422 with field paths."""
    errors: dict[str, list[str]] = {}
    for error in validator.iter_errors(instance):
        path = list(error.absolute_path)
        if error.validator == "required" and isinstance(error.validator_value, list):
            missing = [
                name
                for name in error.validator_value
                if isinstance(error.instance, dict) and name not in error.instance
            ]
            for name in missing:
                errors.setdefault(_path(prefix, [*path, name]), []).append("is required")
            continue
        errors.setdefault(_path(prefix, path), []).append(error.message)
    first = next(iter(errors))
    return ApiError(422, code, f"{first}: {errors[first][0]}", errors)


class SchemaVersion:
    """A stored schema version with lazily compiled validators.

    Args:
        body: The normalised body (see :func:`normalise_schema_version`).
    """

    def __init__(self, body: dict[str, Any]) -> None:
        self.span_types: dict[str, dict[str, Any]] = body.get("span_types", {})
        self.quality_schemas: dict[str, dict[str, Any]] = body.get("quality_schemas", {})
        self._validators: dict[tuple[str, str], Validator | None] = {}
        self._fast: dict[tuple[str, str], FastCheck | None] = {}

    def _schema(self, kind: str, name: str) -> dict[str, Any] | None:
        if kind == "quality":
            schema = self.quality_schemas.get(name, {}).get("schema")
        else:
            schema = self.span_types.get(name, {}).get(f"{kind}_schema")
        return schema if isinstance(schema, dict) and schema else None

    def validator(self, kind: str, name: str) -> Validator | None:
        """Return the compiled validator of a span type's params/result or of a quality schema."""
        key = (kind, name)
        if key not in self._validators:
            schema = self._schema(kind, name)
            compiled: Validator | None = None
            if schema is not None:
                compiled = validator_for(schema)
            self._validators[key] = compiled
        return self._validators[key]

    def fast(self, kind: str, name: str) -> FastCheck | None:
        """The fast check of a span type's params/result or of a quality schema (compiled
        once): True vouches for an instance, False leaves the verdict to :meth:`check`.
        None when jsonschema must do all the work."""
        key = (kind, name)
        try:
            return self._fast[key]
        except KeyError:
            schema = self._schema(kind, name)
            fast = self._fast[key] = _always if schema is None else fast_check(schema)
            return fast

    def check(self, kind: str, name: str, instance: Any, prefix: str) -> None:
        """Validate ``instance``; raise 422 with field paths when it does not match.

        The fast check (compiled once per schema) accepts the common case; jsonschema runs
        only when it cannot vouch for the instance, and then decides and names the errors.
        """
        fast = self.fast(kind, name)
        if fast is not None and fast(instance):
            return
        try:
            compiled = self.validator(kind, name)
        except UnsafeSchema as exc:
            raise _schema_refused(kind, name, prefix, f"has a nested $schema at {exc}") from None
        if compiled is None:
            return
        try:
            with spending():
                if not compiled.is_valid(instance):
                    raise validation_error(prefix, compiled, instance)
        except (SchemaTooCostly, RecursionError):
            raise _schema_refused(
                kind,
                name,
                prefix,
                f"needs more than {MAX_STEPS} steps to validate this payload (nested "
                "anyOf/oneOf or a reference cycle); simplify the schema or the payload",
            ) from None
        except PatternError as exc:
            raise _schema_refused(
                kind, name, prefix, f"has a pattern RE2 cannot run: {exc}"
            ) from None
        except referencing.exceptions.Unresolvable:
            # Only a version stored before references were checked at registration.
            raise _schema_refused(
                kind, name, prefix, "references something outside itself"
            ) from None


def _schema_refused(kind: str, name: str, prefix: str, why: str) -> ApiError:
    """The 422 of a payload whose registered schema the server will not run to the end."""
    schema = "quality schema" if kind == "quality" else f"{kind} schema"
    return invalid(prefix, f"cannot be validated: the {schema} of {name!r} {why}", "invalid_schema")


class SchemaCache:
    """Process-wide LRU cache of :class:`SchemaVersion` by (account id, schema version id)."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._items: OrderedDict[tuple[str, str], SchemaVersion] = OrderedDict()

    def get(self, account_id: str, schema_version_id: str) -> SchemaVersion | None:
        """Return a cached version and mark it recently used."""
        key = (account_id, schema_version_id)
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, account_id: str, schema_version_id: str, version: SchemaVersion) -> None:
        """Cache a version, evicting the least recently used beyond the size."""
        self._items[(account_id, schema_version_id)] = version
        self._items.move_to_end((account_id, schema_version_id))
        while len(self._items) > self._size:
            self._items.popitem(last=False)
