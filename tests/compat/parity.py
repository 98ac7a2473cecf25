"""Compare two API descriptions made by ``api_surface.py``: what the published packages
offer that ours lacks or offers differently.

Ours may offer more: extra modules, names, members, optional parameters after the
published ones, keyword arguments also accepted by position. Everything else a caller
of the published API could notice is a difference.
"""

from __future__ import annotations

from typing import Any

__all__ = ["differences"]

REQUIRED = "<required>"
_VARIADIC = ("VAR_POSITIONAL", "VAR_KEYWORD")


def _signature(where: str, published: Any, ours: Any) -> list[str]:
    if published == ours or published == "<no signature>":
        return []
    if ours == "<no signature>":
        return [f"{where}: no signature"]
    problems: list[str] = []
    ours_by_name = {p[0]: (i, p) for i, p in enumerate(ours)}
    last = -1
    for name, kind, default in published:
        if name not in ours_by_name:
            if kind in _VARIADIC:
                problems.append(f"{where}: no {name} ({kind})")
            else:
                problems.append(f"{where}: no parameter {name!r}")
            continue
        index, (_, our_kind, our_default) = ours_by_name[name]
        if kind == "POSITIONAL_OR_KEYWORD" and (our_kind != kind or index < last):
            problems.append(f"{where}: parameter {name!r} is {our_kind} at {index}")
        elif kind == "KEYWORD_ONLY" and our_kind not in ("KEYWORD_ONLY", "POSITIONAL_OR_KEYWORD"):
            problems.append(f"{where}: parameter {name!r} is {our_kind}")
        elif kind != our_kind and kind not in ("POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY"):
            problems.append(f"{where}: parameter {name!r} is {our_kind}, published {kind}")
        last = max(last, index)
        if default != our_default and not (default == REQUIRED or kind in _VARIADIC):
            problems.append(
                f"{where}: default of {name!r} is {our_default!r}, published {default!r}"
            )
    published_names = {p[0] for p in published}
    for name, kind, default in ours:
        if name not in published_names and default == REQUIRED and kind not in _VARIADIC:
            problems.append(f"{where}: extra required parameter {name!r}")
    return problems


def _callable(where: str, published: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    if published["kind"] != ours["kind"]:
        return [f"{where}: is a {ours['kind']}, published a {published['kind']}"]
    if published.get("binding") != ours.get("binding"):
        problems.append(
            f"{where}: binding {ours.get('binding')}, published {published.get('binding')}"
        )
    if "signature" in published:
        problems += _signature(where, published["signature"], ours.get("signature"))
    return problems


def _class(where: str, published: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for base in published["bases"]:
        if base not in ours["bases"]:
            problems.append(f"{where}: not a subclass of {base}")
    for base in published["prefactor_bases"]:
        if base not in ours["prefactor_bases"]:
            problems.append(f"{where}: not a subclass of {base}")
    for flag in ("dataclass", "frozen"):
        if published[flag] != ours[flag]:
            problems.append(f"{where}: {flag} is {ours[flag]}, published {published[flag]}")
    problems += _signature(f"{where}()", published["init"], ours["init"])
    for flag in ("from_message", "from_args"):
        if published.get(flag) and not ours.get(flag):
            problems.append(f"{where}: cannot be built as published ({flag})")
    if (
        isinstance(published.get("members"), dict)
        and "fields" not in published
        and all(isinstance(v, str) for v in published["members"].values())
    ):  # an enum
        for name, value in published["members"].items():
            if ours["members"].get(name) != value:
                problems.append(f"{where}.{name}: enum member missing or different")
        return problems
    for name, default in (published.get("fields") or {}).items():
        our_fields = ours.get("fields") or {}
        if name not in our_fields:
            problems.append(f"{where}.{name}: no field")
        elif our_fields[name] != default:
            problems.append(f"{where}.{name}: default {our_fields[name]!r}, published {default!r}")
    pub_config, our_config = published.get("model_config"), ours.get("model_config")
    if pub_config is not None and our_config is not None:
        if pub_config.get("extra") != "forbid" and our_config.get("extra") == "forbid":
            problems.append(f"{where}: rejects extra keys; published accepts them")
        if not pub_config.get("frozen") and our_config.get("frozen"):
            problems.append(f"{where}: frozen; published is mutable")
    for name, member in published["members"].items():
        our_member = ours["members"].get(name)
        if our_member is None:
            if name not in (ours.get("fields") or {}):
                problems.append(f"{where}.{name}: missing")
            continue
        if member["kind"] == "property":
            if our_member["kind"] != "property":
                problems.append(f"{where}.{name}: is a {our_member['kind']}, published a property")
            elif member["settable"] and not our_member["settable"]:
                problems.append(f"{where}.{name}: read-only; published is settable")
        elif member["kind"] in ("function", "coroutine function"):
            problems += _callable(f"{where}.{name}", member, our_member)
        elif member["kind"] != our_member["kind"] and our_member["kind"] != "property":
            problems.append(
                f"{where}.{name}: is a {our_member['kind']}, published {member['kind']}"
            )
    return problems


def differences(published: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """Every way ``ours`` falls short of ``published``, one line each."""
    problems: list[str] = []
    for module, names in sorted(published.items()):
        if module not in ours:
            problems.append(f"{module}: module missing")
            continue
        for name, description in sorted(names.items()):
            where = f"{module}:{name}"
            our_description = ours[module].get(name)
            if our_description is None:
                problems.append(f"{where}: missing")
            elif description["kind"] != our_description["kind"]:
                problems.append(
                    f"{where}: is a {our_description['kind']}, published a {description['kind']}"
                )
            elif description["kind"] == "class":
                problems += _class(where, description, our_description)
            elif description["kind"] in ("function", "coroutine function", "callable"):
                problems += _callable(where, description, our_description)
            elif description.get("type") != our_description.get("type"):
                problems.append(
                    f"{where}: a {our_description.get('type')}, published {description.get('type')}"
                )
    return problems
