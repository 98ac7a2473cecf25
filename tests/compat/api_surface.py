"""Describe the public API of the installed prefactor_core and prefactor_http as JSON.

Run by tests/compat/test_api_parity.py once with the published packages'
interpreter (.venv-published) and once with ours; the test compares the two
descriptions. The script uses only the standard library and prints one JSON object:
``{module: {name: description}}``.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import inspect
import json
import pkgutil
import sys
from typing import Any

PACKAGES = ("prefactor_core", "prefactor_http")
_EMPTY = inspect.Parameter.empty


def _ours(obj: object) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return module.split(".")[0] in PACKAGES


def _default(value: object) -> Any:
    if value is _EMPTY:
        return "<required>"
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, (tuple, list, dict, frozenset, set)) and not value:
        return type(value).__name__ + "()"
    return f"<{type(value).__name__}>"


def _signature(obj: Any) -> list[list[Any]] | str:
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return "<no signature>"
    return [[p.name, p.kind.name, _default(p.default)] for p in signature.parameters.values()]


def _function(obj: Any) -> dict[str, Any]:
    kind = "coroutine function" if inspect.iscoroutinefunction(obj) else "function"
    return {"kind": kind, "signature": _signature(obj)}


def _member(raw: Any, resolved: Any) -> dict[str, Any]:
    if isinstance(raw, property):
        return {"kind": "property", "settable": raw.fset is not None}
    if isinstance(raw, staticmethod):
        return {**_function(raw.__func__), "binding": "static"}
    if isinstance(raw, classmethod):
        return {**_function(raw.__func__), "binding": "class"}
    if inspect.isfunction(raw):
        return _function(raw)
    if inspect.isclass(raw):
        return {"kind": "class"}
    return {"kind": "attribute"}


def _class(cls: type) -> dict[str, Any]:
    info: dict[str, Any] = {
        "kind": "class",
        "bases": [
            f"{b.__module__}.{b.__qualname__}"
            for b in cls.__mro__[1:]
            if not _ours(b) and b is not object
        ],
        "prefactor_bases": sorted(b.__name__ for b in cls.__mro__[1:] if _ours(b)),
        "dataclass": dataclasses.is_dataclass(cls),
        "frozen": bool(dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen),  # type: ignore[attr-defined]
        "init": _signature(cls),
    }
    if issubclass(cls, BaseException):
        info["from_message"] = _constructible(cls, "something failed")
        info["from_args"] = _constructible(cls, "something failed", "x", 1)
    if issubclass(cls, enum.Enum):
        info["members"] = {m.name: repr(m.value) for m in cls}
        return info
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict):
        info["fields"] = {
            name: "<required>"
            if f.is_required()
            else _default(f.get_default(call_default_factory=True))
            for name, f in fields.items()
        }
        config = getattr(cls, "model_config", {}) or {}
        info["model_config"] = {k: config.get(k) for k in ("extra", "frozen") if k in config}
    if dataclasses.is_dataclass(cls):
        info["fields"] = {f.name: _default(f.default) for f in dataclasses.fields(cls)}
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if not _ours(klass):
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_") and name not in (
                "__init__",
                "__aenter__",
                "__aexit__",
                "__enter__",
                "__exit__",
                "__call__",
            ):
                continue
            if name == "__init__" or name in (info.get("fields") or {}):
                continue
            members[name] = _member(raw, getattr(cls, name, None))
    info["members"] = members
    return info


def _constructible(cls: type, *args: Any) -> bool:
    """Whether ``cls(*args)`` works, as it does for ``Exception``."""
    try:
        cls(*args)
    except Exception:
        return False
    return True


def describe(obj: Any) -> dict[str, Any]:
    if inspect.isclass(obj):
        return _class(obj)
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return _function(obj)
    if inspect.ismodule(obj):
        return {"kind": "module"}
    if callable(obj):
        return {"kind": "callable", "signature": _signature(obj)}
    return {"kind": "value", "type": type(obj).__name__}


def public_names(module: Any) -> list[str]:
    names = set(getattr(module, "__all__", ()))
    for name, obj in vars(module).items():
        if name.startswith("_") or inspect.ismodule(obj):
            continue
        if _ours(obj) and (inspect.isclass(obj) or callable(obj)):
            names.add(name)
    return sorted(names)


def modules() -> list[str]:
    found = []
    for package in PACKAGES:
        root = importlib.import_module(package)
        found.append(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if any(part.startswith("_") for part in info.name.split(".")):
                continue
            found.append(info.name)
    return sorted(found)


def main() -> None:
    result: dict[str, Any] = {}
    for name in modules():
        module = importlib.import_module(name)
        result[name] = {
            n: describe(getattr(module, n)) for n in public_names(module) if hasattr(module, n)
        }
    json.dump(result, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
