"""A simulated research agent, traced through the public prefactor-core API.

Nothing here calls a model or the network: the "LLM" and the tools answer from canned
text chosen with a seeded random generator, and their latency is ``asyncio.sleep``. The
shape of the run is fixed, so the demo (and its tests) can say what the tree holds:

    Plan (agent:plan)
    ├── LLM call: break the question down
    ├── Sub-task "weather"  ─┐
    │   ├── Retrieval          │ three concurrent asyncio tasks
    │   └── LLM call           │
    ├── Sub-task "trains"    │
    │   ├── Tool call web_search #1   failed (timeout)
    │   ├── Tool call web_search #2   complete (the retry)
    │   ├── Retrieval fallback        cancelled before it started
    │   └── LLM call                   │
    ├── Sub-task "budget"    │
    │   ├── Retrieval          │
    │   ├── Tool call calculator
    │   └── LLM call          ─┘
    ├── LLM call: write the answer
    └── Guardrail
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefactor_core import AgentInstanceHandle

__all__ = ["QUESTION", "STEPS", "SimulatedToolError", "StepCallback", "run_agent"]

QUESTION = "Where should I spend a 3-day rail trip in Europe this spring?"

STEPS = 16
"""How many spans the run records (the progress bar's total)."""

StepCallback = Callable[[str], None]
"""Called with a short description each time the agent finishes a step."""

_MODEL = "sim-gpt-small"


class SimulatedToolError(Exception):
    """A simulated tool failed (the demo's web search times out once)."""


@dataclass
class _Sim:
    """The deterministic world: latency and canned answers from a seeded generator."""

    seed: int
    latency_scale: float

    def rng(self, key: str) -> random.Random:
        # One generator per step, so concurrent tasks draw the same numbers in any order.
        return random.Random(f"{self.seed}:{key}")

    async def pause(self, key: str, low: float, high: float) -> None:
        if self.latency_scale > 0:
            await asyncio.sleep(self.rng(key).uniform(low, high) * self.latency_scale)

    def tokens(self, key: str, text: str) -> tuple[int, int]:
        rng = self.rng(key)
        return len(text.split()) * 4 + rng.randint(20, 60), rng.randint(40, 240)


_FINDINGS = {
    "weather": [
        "Lisbon and Seville are 20-24 °C in April; Vienna is cooler at 15 °C",
        "Spring is mild in the south: Seville 23 °C, Lisbon 21 °C, Prague 14 °C",
    ],
    "trains": [
        "Vienna–Prague–Budapest is a 4 h + 7 h hop on direct EuroCity trains",
        "Seville–Córdoba–Madrid takes 45 min + 1 h 45 min on high-speed AVE trains",
    ],
    "budget": [
        "Three days cost about €420 in Vienna and €360 in Seville including rail",
        "A 3-day budget: €390 (Prague circuit) vs €450 (Vienna circuit)",
    ],
}
_DOCS = {
    "weather": ["climate-normals-2024.csv", "spring-travel-guide.md", "city-weather.json"],
    "budget": ["hostel-prices.csv", "rail-fares-2025.json", "meal-costs.md", "museum-passes.md"],
}


def _done(on_step: StepCallback | None, what: str) -> None:
    if on_step is not None:
        on_step(what)


async def _llm(
    instance: AgentInstanceHandle,
    sim: _Sim,
    key: str,
    prompt: str,
    response: str,
    on_step: StepCallback | None,
) -> str:
    async with instance.span("agent:llm") as span:
        await span.start({"model": _MODEL, "prompt": prompt, "temperature": 0.2})
        await sim.pause(key, 0.25, 0.6)
        input_tokens, output_tokens = sim.tokens(key, prompt)
        await span.complete(
            {"response": response, "input_tokens": input_tokens, "output_tokens": output_tokens}
        )
    _done(on_step, f"LLM: {prompt[:40]}")
    return response


async def _retrieve(
    instance: AgentInstanceHandle,
    sim: _Sim,
    topic: str,
    query: str,
    on_step: StepCallback | None,
) -> list[str]:
    async with instance.span("agent:retrieval") as span:
        await span.start({"index": "travel-notes", "query": query, "top_k": 3})
        await sim.pause(f"retrieve:{topic}", 0.15, 0.4)
        docs = sim.rng(f"docs:{topic}").sample(_DOCS[topic], 3)
        await span.complete({"documents": docs, "count": len(docs)})
    _done(on_step, f"retrieval: {topic}")
    return docs


async def _web_search(instance: AgentInstanceHandle, sim: _Sim, query: str, attempt: int) -> str:
    """One web_search call in its own span; the first attempt times out."""
    async with instance.span("agent:tool") as span:
        await span.start({"tool": "web_search", "input": query, "attempt": attempt})
        await sim.pause(f"search:{attempt}", 0.2, 0.35)
        if attempt == 1:
            # Raised inside the span: the SDK records it as failed with the error's type
            # and message, and the exception reaches the agent's retry loop unchanged.
            raise SimulatedToolError("web_search timed out after 0.3 s (simulated)")
        output = "12 results: EuroCity timetables, Interrail passes, AVE fares"
        await span.complete({"output": output})
    return output


async def _trains(instance: AgentInstanceHandle, sim: _Sim, on_step: StepCallback | None) -> str:
    query = "direct trains between spring city-break destinations"
    found: str | None = None
    for attempt in (1, 2, 3):
        try:
            found = await _web_search(instance, sim, query, attempt)
        except SimulatedToolError:
            _done(on_step, f"web_search #{attempt} failed, retrying")
            continue
        _done(on_step, f"web_search #{attempt}")
        break
    # The fallback lookup was planned in case the search kept failing; the retry
    # worked, so the step is cancelled before it starts (recorded pending → cancelled).
    async with instance.span(
        "agent:retrieval", payload={"index": "offline-timetables", "query": query}
    ) as fallback:
        if found is not None:
            fallback.set_result({"reason": "web_search succeeded on retry"})
            await fallback.cancel()
    _done(on_step, "fallback retrieval skipped")
    finding = sim.rng("finding:trains").choice(_FINDINGS["trains"])
    return await _llm(instance, sim, "llm:trains", f"Summarise: {found}", finding, on_step)


async def _subtask(
    instance: AgentInstanceHandle, sim: _Sim, name: str, on_step: StepCallback | None
) -> str:
    question = {
        "weather": "Which cities are warm enough in April?",
        "trains": "Which cities are linked by fast, direct trains?",
        "budget": "What does three days cost?",
    }[name]
    async with instance.span("agent:task") as task:
        await task.start({"name": name, "question": question})
        if name == "trains":
            finding = await _trains(instance, sim, on_step)
        else:
            docs = await _retrieve(instance, sim, name, question, on_step)
            if name == "budget":
                async with instance.span("agent:tool") as calc:
                    expression = "3 * (95 + 28) + 51"
                    await calc.start({"tool": "calculator", "input": expression, "attempt": 1})
                    await sim.pause("calculator", 0.05, 0.1)
                    await calc.complete({"output": str(3 * (95 + 28) + 51)})
                _done(on_step, "calculator")
            finding = sim.rng(f"finding:{name}").choice(_FINDINGS[name])
            await _llm(
                instance,
                sim,
                f"llm:{name}",
                f"Summarise {len(docs)} documents about {name}",
                finding,
                on_step,
            )
        await task.complete({"finding": finding})
    _done(on_step, f"sub-task {name}")
    return finding


async def run_agent(
    instance: AgentInstanceHandle,
    *,
    seed: int = 7,
    latency_scale: float = 1.0,
    on_step: StepCallback | None = None,
) -> dict[str, Any]:
    """Run the simulated agent once inside ``instance`` (already started).

    Args:
        instance: The agent instance the spans belong to.
        seed: Chooses latencies and canned answers; the same seed gives the same run.
        latency_scale: Multiplies every simulated latency (0 runs without sleeping).
        on_step: Called after each step, for a progress bar.

    Returns:
        The plan span's result (the answer and the number of steps).
    """
    sim = _Sim(seed, latency_scale)
    async with instance.span("agent:plan") as plan:
        await plan.start({"goal": QUESTION, "strategy": "decompose, research in parallel"})
        await _llm(
            instance,
            sim,
            "llm:plan",
            f"Break down: {QUESTION}",
            "3 sub-questions: weather, trains, budget",
            on_step,
        )
        # Each sub-task runs in its own asyncio task; each task copies the current
        # context, so the plan span is the parent of the spans every task opens.
        findings = await asyncio.gather(
            *(_subtask(instance, sim, name, on_step) for name in ("weather", "trains", "budget"))
        )
        city = sim.rng("answer").choice(["Seville", "Vienna", "Lisbon"])
        answer = f"Go to {city}: " + "; ".join(findings)
        await _llm(instance, sim, "llm:answer", "Write the answer from 3 findings", answer, on_step)
        async with instance.span("agent:guardrail") as guard:
            await guard.start({"check": "no unsupported claims"})
            await sim.pause("guardrail", 0.05, 0.15)
            await guard.complete({"passed": True, "reason": "every claim cites a finding"})
        _done(on_step, "guardrail")
        result = {"steps": STEPS, "answer": answer}
        await plan.complete(result)
    _done(on_step, "plan")
    return result
