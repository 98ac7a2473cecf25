"""LLM facts in span payloads: model, token usage, cost and chat messages.

One extractor for every reader (the viewer's tree and detail, the run list, the CLI), so
a span from any source shows the same numbers. It reads the shared convention
(``params = {"model", "messages", "input"}``, ``result = {"output", "messages",
"usage": {"input_tokens", "output_tokens", "total_tokens"}, "cost"}``) and the common
shapes around it: OpenAI ``usage.prompt_tokens/completion_tokens``, Anthropic
``usage.input_tokens/output_tokens``, flattened OTel GenAI keys (``gen_ai.usage.*``,
``gen_ai.request.model``, ``gen_ai.response.model``) and OpenInference keys
(``llm.token_count.*``, ``llm.model_name``, ``llm.cost.total``), at the top level or under
``attributes``.

Example::

    facts = llm_facts(span["payload"], span["result_payload"])
    facts.total_tokens, facts.cost, facts.models
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HINTS", "LlmFacts", "chat_messages", "llm_facts", "might_have_llm_facts"]

_MODEL_KEYS = ("model", "gen_ai.response.model", "gen_ai.request.model", "llm.model_name")
_INPUT_KEYS = ("input_tokens", "prompt_tokens", "gen_ai.usage.input_tokens",
               "gen_ai.usage.prompt_tokens", "llm.token_count.prompt")  # fmt: skip
_OUTPUT_KEYS = ("output_tokens", "completion_tokens", "gen_ai.usage.output_tokens",
                "gen_ai.usage.completion_tokens", "llm.token_count.completion")  # fmt: skip
_TOTAL_KEYS = ("total_tokens", "gen_ai.usage.total_tokens", "llm.token_count.total")
_COST_KEYS = ("cost", "llm.cost.total", "gen_ai.usage.cost", "total_cost")

# Substrings that any payload carrying LLM facts contains; storage uses them to skip
# parsing the payloads of every other span (see might_have_llm_facts).
HINTS = ("token", "cost", "model")


@dataclass
class LlmFacts:
    """What a span says about an LLM call (all zero/empty for other spans)."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    models: list[str] = field(default_factory=list)

    def add(self, other: LlmFacts) -> None:
        """Add another span's facts to these (a run's or a subtree's totals)."""
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.total_tokens += other.total_tokens
        self.cost += other.cost
        for model in other.models:
            if model not in self.models:
                self.models.append(model)

    def as_dict(self) -> dict[str, Any]:
        """The facts as JSON-ready values (cost rounded to micro-dollars)."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost": round(self.cost, 6),
            "models": list(self.models),
        }


def might_have_llm_facts(text: str | None) -> bool:
    """Cheap pre-check on a raw JSON payload before parsing it."""
    return bool(text) and any(hint in text for hint in HINTS)  # type: ignore[operator]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if value >= 0 else None


def _first(sources: Iterable[Mapping[str, Any]], keys: tuple[str, ...]) -> float | None:
    for source in sources:
        for key in keys:
            number = _number(source.get(key))
            if number is not None:
                return number
    return None


def _sources(payload: object) -> list[Mapping[str, Any]]:
    """The payload, its ``usage`` and its ``attributes`` (where the keys may sit)."""
    if not isinstance(payload, Mapping):
        return []
    found: list[Mapping[str, Any]] = []
    for candidate in (payload.get("usage"), payload, payload.get("attributes")):
        if isinstance(candidate, Mapping):
            found.append(candidate)
    attributes = payload.get("attributes")
    if isinstance(attributes, Mapping) and isinstance(attributes.get("usage"), Mapping):
        found.append(attributes["usage"])
    return found


def _models(sources: Iterable[Mapping[str, Any]]) -> list[str]:
    models: list[str] = []
    for source in sources:
        for key in _MODEL_KEYS:
            value = source.get(key)
            if isinstance(value, str) and value and value not in models:
                models.append(value[:120])
    return models[:1]  # a response model overrides the request's; one model per span


def llm_facts(params: object, result: object) -> LlmFacts:
    """Extract model, tokens and cost from one span's params and result.

    The result wins over the params (usage is reported in responses); a missing total is
    the sum of input and output.
    """
    result_sources = _sources(result)
    param_sources = _sources(params)
    both = [*result_sources, *param_sources]
    input_tokens = _first(both, _INPUT_KEYS)
    output_tokens = _first(both, _OUTPUT_KEYS)
    total = _first(both, _TOTAL_KEYS)
    if total is None and (input_tokens is not None or output_tokens is not None):
        total = (input_tokens or 0) + (output_tokens or 0)
    cost = _first(both, _COST_KEYS)
    return LlmFacts(
        input_tokens=int(input_tokens or 0),
        output_tokens=int(output_tokens or 0),
        total_tokens=int(total or 0),
        cost=float(cost or 0.0),
        models=_models(both),
    )


def _text(content: object) -> str:
    """Message content as text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                text = part.get("text") if part.get("text") is not None else part.get("content")
                if isinstance(text, str):
                    parts.append(text)
                elif part.get("type"):
                    parts.append(f"[{part['type']}]")
        return "\n".join(parts)
    if isinstance(content, Mapping) and isinstance(content.get("parts"), list):
        return _text(content["parts"])  # GenAI / Gemini: {"role", "parts": [{"text"}]}
    return "" if content is None else str(content)


def _message(item: object) -> dict[str, str] | None:
    if not isinstance(item, Mapping):
        return None
    role = item.get("role") or item.get("type") or "message"
    content = item.get("content")
    if content is None and "parts" in item:
        content = item["parts"]
    if content is None and isinstance(item.get("message"), Mapping):
        return _message(item["message"])  # OpenAI choices: {"message": {...}}
    text = _text(content)
    calls = item.get("tool_calls")
    if isinstance(calls, list) and calls:
        names = [
            str((call.get("function") or {}).get("name") or call.get("name") or "tool")
            for call in calls
            if isinstance(call, Mapping)
        ]
        text = (text + "\n" if text else "") + "→ " + ", ".join(names)
    return {"role": str(role), "content": text}


def chat_messages(params: object, result: object) -> list[dict[str, str]]:
    """The conversation of an LLM span: request messages, then the response's.

    Reads ``messages`` (OpenAI/Anthropic/GenAI shapes), an Anthropic ``system`` string,
    OpenAI ``choices``, and a string ``output``. Empty for spans without messages.
    """
    conversation: list[dict[str, str]] = []
    if isinstance(params, Mapping):
        system = params.get("system")
        if isinstance(system, str | list) and system:
            conversation.append({"role": "system", "content": _text(system)})
        for item in params.get("messages") or ():
            message = _message(item)
            if message is not None:
                conversation.append(message)
    if not conversation:
        return []
    if isinstance(result, Mapping):
        replies: list[object] = []
        for key in ("messages", "choices"):
            if isinstance(result.get(key), list):
                replies.extend(result[key])
        if not replies and result.get("role") and "content" in result:
            replies.append(result)  # an Anthropic message as the result
        for item in replies:
            message = _message(item)
            if message is not None:
                conversation.append(message)
        if not replies and isinstance(result.get("output"), str):
            conversation.append({"role": "assistant", "content": result["output"]})
    return conversation
