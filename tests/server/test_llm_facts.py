"""The one extractor of LLM facts: every common payload shape gives the same numbers."""

from __future__ import annotations

from typing import Any

import pytest

from prefactor_server.traces.llm import LlmFacts, chat_messages, llm_facts, might_have_llm_facts


@pytest.mark.parametrize(
    ("params", "result", "expected"),
    [
        # The shared convention (OTel-mapped spans).
        (
            {"model": "m1", "messages": []},
            {"usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}, "cost": 0.5},
            (3, 4, 7, 0.5, ["m1"]),
        ),
        # OpenAI: prompt/completion tokens; the total is summed when missing.
        (
            {"model": "gpt"},
            {"usage": {"prompt_tokens": 10, "completion_tokens": 2}},
            (10, 2, 12, 0.0, ["gpt"]),
        ),
        # Flattened GenAI attributes under params["attributes"]; the response model wins.
        (
            {"attributes": {"gen_ai.request.model": "req", "gen_ai.usage.input_tokens": 5}},
            {"gen_ai.response.model": "resp", "gen_ai.usage.output_tokens": 6},
            (5, 6, 11, 0.0, ["resp"]),
        ),
        # OpenInference keys.
        (
            {"llm.model_name": "oi", "llm.token_count.prompt": 1, "llm.token_count.completion": 1,
             "llm.token_count.total": 2, "llm.cost.total": 0.01},
            None,
            (1, 1, 2, 0.01, ["oi"]),
        ),
        # usage.cost; nonsense values are ignored, not trusted.
        (
            {},
            {"usage": {"input_tokens": "12", "output_tokens": -3, "cost": 0.2}},
            (0, 0, 0, 0.2, []),
        ),
        ({"model": True}, {"usage": {"total_tokens": True}}, (0, 0, 0, 0.0, [])),
        ("not a dict", ["nor", "this"], (0, 0, 0, 0.0, [])),
    ],
)  # fmt: skip
def test_llm_facts(params: Any, result: Any, expected: tuple[Any, ...]) -> None:
    facts = llm_facts(params, result)
    got = (facts.input_tokens, facts.output_tokens, facts.total_tokens, facts.cost, facts.models)
    assert got == expected


def test_totals_add_up_and_keep_models_once() -> None:
    total = LlmFacts()
    total.add(LlmFacts(1, 2, 3, 0.1, ["a"]))
    total.add(LlmFacts(4, 5, 9, 0.2, ["b", "a"]))
    assert total.as_dict() == {
        "input_tokens": 5,
        "output_tokens": 7,
        "total_tokens": 12,
        "cost": 0.3,
        "models": ["a", "b"],
    }


def test_conversation_shapes() -> None:
    """OpenAI, Anthropic and GenAI messages become one role/content list."""
    anthropic = chat_messages(
        {
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image"}]}
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
    )  # fmt: skip
    assert anthropic == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi\n[image]"},
        {"role": "assistant", "content": "Hello"},
    ]
    openai = chat_messages(
        {"messages": [{"role": "user", "content": "2+2?"}]},
        {"choices": [{"message": {"role": "assistant", "content": None,
                                  "tool_calls": [{"function": {"name": "calc"}}]}}]},
    )  # fmt: skip
    assert openai[-1] == {"role": "assistant", "content": "→ calc"}
    genai = chat_messages({"messages": [{"role": "user", "parts": [{"text": "Bonjour"}]}]}, None)
    assert genai == [{"role": "user", "content": "Bonjour"}]
    assert chat_messages({"input": "no messages"}, {"output": "x"}) == []


def test_hints() -> None:
    assert might_have_llm_facts('{"usage": {"input_tokens": 1}}')
    assert not might_have_llm_facts('{"query": "weather"}')
    assert not might_have_llm_facts(None)
