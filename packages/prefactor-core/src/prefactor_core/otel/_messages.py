"""Messages in every convention's shape, normalised to ``{"role", "content",
"tool_calls"?}``: JSON attributes (``gen_ai.input.messages``), flattened attributes
(``llm.input_messages.N.message.*``, ``gen_ai.prompt.N.*``) and message events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from prefactor_core.otel._spans import OtelEvent

__all__ = ["Indexed", "indexed", "input_messages", "maybe_json", "output_messages", "take"]


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


_INDEXED_PREFIXES = (
    "llm.input_messages.",
    "llm.output_messages.",
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "retrieval.documents.",
)

Indexed = dict[str, tuple[dict[int, dict[str, Any]], list[str]]]
"""Flattened list attributes: prefix → (index → the rest of the key → value, the keys)."""


_PREFIX_SET = frozenset(_INDEXED_PREFIXES)


def indexed(attrs: Mapping[str, Any]) -> Indexed:
    """Group ``<prefix>N.<key>`` attributes in one pass over the attributes."""
    groups: Indexed = {}
    for key, value in attrs.items():
        if not key.startswith(_INDEXED_PREFIXES):
            continue
        # Every prefix is two dotted words: "<a>.<b>.<index>.<rest>".
        parts = key.split(".", 3)
        if len(parts) != 4 or not parts[2].isdigit() or not parts[3]:
            continue
        prefix = f"{parts[0]}.{parts[1]}."
        if prefix not in _PREFIX_SET:
            continue
        group = groups.get(prefix)
        if group is None:
            group = groups[prefix] = ({}, [])
        items = group[0].get(int(parts[2]))
        if items is None:
            items = group[0][int(parts[2])] = {}
        items[parts[3]] = value
        group[1].append(key)
    return groups


def take(groups: Indexed, prefix: str, used: set[str]) -> list[dict[str, Any]]:
    """The items of one flattened list, in index order (their keys count as used)."""
    group = groups.get(prefix)
    if group is None:
        return []
    items, keys = group
    used.update(keys)
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
        if "." in tail or head.isdigit():
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
            numbered = any(part.isdigit() for part in parts)
    if not numbered:
        return root
    nested: dict[str, Any] = _lists(root)
    return nested


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted


def _tool_call(raw: Mapping[str, Any]) -> dict[str, Any]:
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
    tool_calls = [_tool_call(call) for call in message.get("tool_calls") or () if call]
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


def input_messages(
    attrs: Mapping[str, Any], groups: Indexed, events: Sequence[OtelEvent], used: set[str]
) -> list[dict[str, Any]] | None:
    for key in ("gen_ai.input.messages", "gen_ai.prompt"):
        if key in attrs:
            found = _messages(attrs[key])
            if found is not None:
                used.add(key)
                system = attrs.get("gen_ai.system_instructions")
                if system is not None:
                    used.add("gen_ai.system_instructions")
                    found.insert(0, {"role": "system", "content": _system_text(system)})
                return found
    for prefix in ("llm.input_messages.", "gen_ai.prompt."):
        flat = take(groups, prefix, used)
        if flat:
            return [_message(item) for item in flat]
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
    attrs: Mapping[str, Any], groups: Indexed, events: Sequence[OtelEvent], used: set[str]
) -> list[dict[str, Any]] | None:
    for key in ("gen_ai.output.messages", "gen_ai.completion"):
        if key in attrs:
            found = _messages(attrs[key])
            if found is not None:
                used.add(key)
                return found
    for prefix in ("llm.output_messages.", "gen_ai.completion."):
        flat = take(groups, prefix, used)
        if flat:
            return [_message(item) for item in flat]
    choices = []
    for event in events:
        if event.name == "gen_ai.choice":
            body = dict(event.attributes)
            nested = maybe_json(body.get("message"))
            choices.append(_message(nested if isinstance(nested, Mapping) else body))
    return choices or None
