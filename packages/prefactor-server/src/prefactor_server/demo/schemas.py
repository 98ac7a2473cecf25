"""The demo agent's span types: JSON schemas, titles, descriptions and summary templates."""

from __future__ import annotations

from typing import Any

from prefactor_core import SchemaRegistry

__all__ = ["SPAN_TYPES", "build_registry"]


def _object(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


_STR = {"type": "string"}
_INT = {"type": "integer", "minimum": 0}
_ERROR = _object({"type": _STR, "message": _STR}, "type", "message")

SPAN_TYPES: tuple[dict[str, Any], ...] = (
    {
        "name": "agent:plan",
        "title": "Plan",
        "description": "The agent works out how to answer a goal and carries the plan out.",
        "params_schema": _object({"goal": _STR, "strategy": _STR}, "goal"),
        "result_schema": _object({"steps": _INT, "answer": _STR, "error": _ERROR}),
        "template": "{{goal}} ({{steps}} steps)",
    },
    {
        "name": "agent:task",
        "title": "Sub-task",
        "description": "One branch of the plan, run concurrently with its siblings.",
        "params_schema": _object({"name": _STR, "question": _STR}, "name", "question"),
        "result_schema": _object({"finding": _STR, "error": _ERROR}),
        "template": "{{name}}: {{finding}}",
    },
    {
        "name": "agent:llm",
        "title": "LLM call",
        "description": "A call to a (simulated) language model.",
        "params_schema": _object(
            {"model": _STR, "prompt": _STR, "temperature": {"type": "number"}}, "model", "prompt"
        ),
        "result_schema": _object(
            {
                "response": _STR,
                "input_tokens": _INT,
                "output_tokens": _INT,
                "error": _ERROR,
            }
        ),
        "template": "{{model}}: {{prompt}} → {{response}}",
    },
    {
        "name": "agent:tool",
        "title": "Tool call",
        "description": "A call to one of the agent's (simulated) tools.",
        "params_schema": _object(
            {"tool": _STR, "input": _STR, "attempt": {"type": "integer", "minimum": 1}},
            "tool",
            "input",
        ),
        "result_schema": _object({"output": _STR, "error": _ERROR}),
        "template": "{{tool}}({{input}}) #{{attempt}} → {{output}}",
    },
    {
        "name": "agent:retrieval",
        "title": "Retrieval",
        "description": "A lookup in a (simulated) document index.",
        "params_schema": _object(
            {"index": _STR, "query": _STR, "top_k": {"type": "integer", "minimum": 1}},
            "index",
            "query",
        ),
        "result_schema": _object(
            {
                "documents": {"type": "array", "items": _STR},
                "count": _INT,
                "error": _ERROR,
            }
        ),
        "template": "{{index}}: {{query}} → {{count}} documents",
    },
    {
        "name": "agent:guardrail",
        "title": "Guardrail",
        "description": "A check of the answer before it is returned.",
        "params_schema": _object({"check": _STR}, "check"),
        "result_schema": _object({"passed": {"type": "boolean"}, "reason": _STR, "error": _ERROR}),
        "template": "{{check}}: passed={{passed}} ({{reason}})",
    },
)
"""Every span type the demo agent uses."""


def build_registry() -> SchemaRegistry:
    """A fresh registry holding :data:`SPAN_TYPES`."""
    registry = SchemaRegistry()
    for span_type in SPAN_TYPES:
        registry.register_type(**span_type)
    return registry
