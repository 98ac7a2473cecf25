"""Schema versions: normalising the register body, validating payloads, rendering templates.

A schema version is immutable once stored (re-registering its identifier reuses it), so
its compiled validators are cached for the life of the process, keyed by account and
schema version id. That keeps JSON Schema compilation off the per-span path.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from typing import Any

import orjson
import referencing.exceptions

# jsonschema ships no type information and types-jsonschema is not a dev dependency.
from jsonschema import SchemaError  # type: ignore[import-untyped]
from jsonschema.protocols import Validator  # type: ignore[import-untyped]

from prefactor_server.domain.fast_check import FastCheck, always, fast_check
from prefactor_server.domain.json_schema import (
    MAX_STEPS,
    MAX_VERSION_NODES,
    PatternError,
    SchemaTooCostly,
    UnsafeSchema,
    check_schema,
    check_schema_safety,
    larger_than,
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
            fast = self._fast[key] = always if schema is None else fast_check(schema)
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
