"""Messages in every convention's shape, normalised to ``{"role", "content",
"tool_calls"?}``: JSON attributes (``gen_ai.input.messages``), flattened attributes
(``llm.input_messages.N.message.*``, ``gen_ai.prompt.N.*``) and message events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from prefactor_core.otel._spans import OtelEvent

__all__ = [
    "INDEXED_PREFIXES",
    "Indexed",
    "input_messages",
    "list_item_key",
    "maybe_json",
    "output_messages",
    "take",
]


def maybe_json(value: Any, mime: Any = None) -> Any:
    """Decode a JSON string (objects and arrays only, or when the mime type says JSON)."""
    if not isinstance(value, str):
        return value
    stripped = value.lstrip()
    if (isinstance(mime, str) and "json" in mime) or stripped[:1] in ("{", "["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


INDEXED_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "retrieval.documents.",
)
"""Prefixes of the flattened list attributes (``<prefix>N.<key>``)."""

Indexed = dict[str, tuple[dict[int, dict[str, Any]], list[str]]]
"""Flattened list attributes: prefix → (index → the rest of the key → value, the keys)."""


def list_item_key(key: str) -> tuple[str, int, str] | None:
    """Where a flattened list attribute ``<prefix>N.<rest>`` goes: its prefix (one of
    :data:`INDEXED_PREFIXES`), index and rest; None for any other key."""
    if not key.startswith(INDEXED_PREFIXES):
        return None
    # Every prefix is two dotted words: "<a>.<b>.<index>.<rest>".
    parts = key.split(".", 3)
    if len(parts) != 4 or not parts[2].isdecimal() or not parts[3]:
        return None
    return f"{parts[0]}.{parts[1]}.", int(parts[2]), parts[3]


def take(groups: Indexed, prefix: str, taken: list[str]) -> list[dict[str, Any]]:
    """The items of one flattened list, in index order, nested (``a.0.b`` → lists and
    dicts); the prefix is noted in ``taken`` (its keys are consumed)."""
    group = groups.get(prefix)
    if group is None:
        return []
    taken.append(prefix)
    items = group[0]
    return [_nest(items[index]) for index in sorted(items)]


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``a.0.b`` keys into nested dicts and lists (``{"a": [{"b": ...}]}``)."""
    # The common shape first: keys of at most two words, no index ("message.role").
    root: dict[str, Any] = {}
    for key, value in flat.items():
        head, dot, tail = key.partition(".")
        if not dot:
            root[key] = value
            continue
        if "." in tail or head.isdecimal():
            return _nest_deep(flat)
        child = root.get(head)
        if not isinstance(child, dict):
            child = root[head] = {}
        child[tail] = value
    return root


def _nest_deep(flat: Mapping[str, Any]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    numbered = False
    for key, value in flat.items():
        if "." not in key:
            root[key] = value
            continue
        parts = key.split(".")
        last = parts.pop()
        node: dict[str, Any] = root
        for part in parts:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[last] = value
        if not numbered:
            numbered = any(part.isdecimal() for part in parts)
    if not numbered:
        return root
    nested: dict[str, Any] = _lists(root)
    return nested


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdecimal() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def _tool_call(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        return {"value": raw}
    call = raw.get("tool_call", raw)
    if not isinstance(call, Mapping):
        return {"value": call}
    function = call.get("function", {})
    out: dict[str, Any] = {}
    if "id" in call:
        out["id"] = call["id"]
    if isinstance(function, Mapping):
        if "name" in function:
            out["name"] = function["name"]
        if "arguments" in function:
            out["arguments"] = maybe_json(function["arguments"])
    for key in ("name", "arguments"):
        if key in call and key not in out:
            out[key] = maybe_json(call[key])
    return out


def _message(raw: Any) -> dict[str, Any]:
    """Normalise one message of any known shape to ``{"role", "content", "tool_calls"?}``."""
    # ``type(...) is dict`` first: the ABC check of Mapping is the slow part for a dict.
    if type(raw) is not dict and not isinstance(raw, Mapping):
        return {"role": "unknown", "content": raw}
    message: Any = raw.get("message", raw)
    if type(message) is not dict and not isinstance(message, Mapping):
        return {"role": "unknown", "content": message}
    out: dict[str, Any] = {"role": message.get("role", "unknown")}
    content = message.get("content")
    parts = message.get("parts")
    if parts is None and isinstance(message.get("contents"), list):
        parts = [item.get("message_content", item) for item in message["contents"]]
    calls = message.get("tool_calls") or ()
    if not isinstance(calls, list | tuple):
        calls = (calls,)  # one call, or a value sent where the list belongs: kept, not raised
    tool_calls = [_tool_call(call) for call in calls if call]
    if isinstance(parts, list):
        texts: list[str] = []
        for part in parts:
            if not isinstance(part, Mapping):
                continue
            kind = part.get("type")
            text = part.get("content", part.get("text"))
            if kind == "text" and isinstance(text, str):
                texts.append(text)
            elif kind == "tool_call":
                tool_calls.append(
                    {
                        key: maybe_json(part[key]) if key == "arguments" else part[key]
                        for key in ("id", "name", "arguments")
                        if key in part
                    }
                )
            elif kind == "tool_call_response":
                out["tool_call_id"] = part.get("id")
                response = part.get("response")
                texts.append(
                    response if isinstance(response, str) else orjson.dumps(response).decode()
                )
        if content is None:
            content = "\n".join(texts) if texts else None
    if content is not None:
        out["content"] = content
    if tool_calls:
        out["tool_calls"] = tool_calls
    for key in ("name", "tool_call_id", "finish_reason"):
        if key in message and key not in out:
            out[key] = message[key]
    return out


def _messages(value: Any) -> list[dict[str, Any]] | None:
    value = maybe_json(value)
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        return None
    return [_message(item) for item in value]


# Flattened messages mostly carry only these keys: read them without nesting first.
_SIMPLE_MESSAGE = ("message.role", "message.content")
_SIMPLE_EXTRAS = (
    ("message.name", "name"),
    ("message.tool_call_id", "tool_call_id"),
    ("message.finish_reason", "finish_reason"),
)
_SIMPLE_KEYS = frozenset(_SIMPLE_MESSAGE + tuple(key for key, _ in _SIMPLE_EXTRAS))


def _flat_message(flat: dict[str, Any]) -> dict[str, Any]:
    """One flattened message (``message.role``, ``message.content``, ...) normalised:
    :func:`_message` of the nested item, without nesting the common shape."""
    if not flat.keys() <= _SIMPLE_KEYS:
        return _message(_nest(flat))
    out: dict[str, Any] = {"role": flat.get("message.role", "unknown")}
    content = flat.get("message.content")
    if content is not None:
        out["content"] = content
    for key, name in _SIMPLE_EXTRAS:
        if key in flat:
            out[name] = flat[key]
    return out


def _flat_messages(groups: Indexed, prefixes: Sequence[str], taken: list[str]) -> list[Any]:
    """The first of ``prefixes``' flattened lists present, as normalised messages."""
    for prefix in prefixes:
        group = groups.get(prefix)
        if group is not None:
            taken.append(prefix)
            items = group[0]
            return [_flat_message(items[index]) for index in sorted(items)]
    return []


def input_messages(
    known: Mapping[str, Any],
    groups: Indexed,
    events: Sequence[OtelEvent],
    used: set[str],
    taken: list[str],
) -> list[dict[str, Any]] | None:
    """The input messages: JSON attributes first, then flattened lists (their prefix is
    noted in ``taken``), then message events. ``known`` holds the attributes read by key
    (JSON messages, system instructions); the keys consumed are added to ``used``."""
    for key in ("gen_ai.input.messages", "gen_ai.prompt"):
        if key in known:
            found = _messages(known[key])
            if found is not None:
                used.add(key)
                system = known.get("gen_ai.system_instructions")
                if system is not None:
                    used.add("gen_ai.system_instructions")
                    found.insert(0, {"role": "system", "content": _system_text(system)})
                return found
    if groups:
        flat = _flat_messages(groups, ("llm.input_messages.", "gen_ai.prompt."), taken)
        if flat:
            return flat
    if not events:
        return None
    from_events = []
    for event in events:
        if event.name in _MESSAGE_EVENTS:
            message = _message(dict(event.attributes))
            if message["role"] == "unknown":
                message["role"] = event.name.split(".")[1]  # gen_ai.<role>.message
            from_events.append(message)
    return from_events or None


_MESSAGE_EVENTS = frozenset(
    {
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
    }
)


def _system_text(value: Any) -> Any:
    decoded = maybe_json(value)
    if isinstance(decoded, list):
        texts = [part.get("content") for part in decoded if isinstance(part, Mapping)]
        strings = [text for text in texts if isinstance(text, str)]
        if strings and len(strings) == len(decoded):
            return "\n".join(strings)
    return decoded


def output_messages(
    known: Mapping[str, Any],
    groups: Indexed,
    events: Sequence[OtelEvent],
    used: set[str],
    taken: list[str],
) -> list[dict[str, Any]] | None:
    """The output messages, read like :func:`input_messages` (choice events last)."""
    for key in ("gen_ai.output.messages", "gen_ai.completion"):
        if key in known:
            found = _messages(known[key])
            if found is not None:
                used.add(key)
                return found
    if groups:
        flat = _flat_messages(groups, ("llm.output_messages.", "gen_ai.completion."), taken)
        if flat:
            return flat
    choices = []
    for event in events:
        if event.name == "gen_ai.choice":
            body = dict(event.attributes)
            nested = maybe_json(body.get("message"))
            choices.append(_message(nested if isinstance(nested, Mapping) else body))
    return choices or None
