"""Synthetic runs for load tests and benchmarks: big nested runs and many small runs.

Written through the bulk API (a thousand items per request), so a 100,000-span run takes
seconds, not the minutes span-by-span HTTP would. Deterministic for a given seed.

Example::

    async with httpx.AsyncClient(base_url=api_url, headers=auth) as client:
        run_id = await make_big_run(client, spans=10_000, seed=1)
        run_ids = await make_many_runs(client, runs=10_000)
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from prefactor_http.models.types import (
    ACTION_CREATE_SPAN,
    ACTION_FINISH_INSTANCE,
    ACTION_REGISTER_INSTANCE,
    ACTION_START_INSTANCE,
    STATUS_COMPLETE,
    STATUS_FAILED,
)

__all__ = ["SyntheticError", "make_big_run", "make_many_runs"]

_BATCH = 1000
_TYPES = ("agent:plan", "agent:task", "agent:tool", "agent:retrieval", "agent:llm")
_MODELS = ("gpt-4o-mini", "claude-3-5-haiku", "gemini-1.5-flash")
_MAX_DEPTH = 12
_FILLER = random.Random(0)
_TEXT = "".join(_FILLER.choice("abcdefghijklmnopqrstuvwxyz      ") for _ in range(1 << 16))


class SyntheticError(RuntimeError):
    """The server rejected a generated item (the message says which and why)."""


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def _bulk(client: httpx.AsyncClient, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), _BATCH):
        chunk = items[start : start + _BATCH]
        response = await client.post("/api/v1/bulk", json={"items": chunk}, timeout=120)
        response.raise_for_status()
        for key, output in response.json()["outputs"].items():
            if output.get("status") != "success":
                raise SyntheticError(f"bulk item {key} failed: {output.get('message')}")
        if len(response.json()["outputs"]) != len(chunk):
            raise SyntheticError("the bulk request stopped early")


def _key() -> str:
    return uuid.uuid4().hex


def _register(run_id: str, agent_id: str, started: datetime) -> list[dict[str, Any]]:
    return [
        {
            "_type": ACTION_REGISTER_INSTANCE,
            "idempotency_key": _key(),
            "id": run_id,
            "agent_id": agent_id,
            "agent_version": {"name": f"{agent_id} (synthetic)", "external_identifier": "v1"},
            "agent_schema_version": {"external_identifier": "s1", "span_type_schemas": []},
        },
        {
            "_type": ACTION_START_INSTANCE,
            "idempotency_key": _key(),
            "agent_instance_id": run_id,
            "timestamp": _iso(started),
        },
    ]


def _finish(run_id: str, status: str, at: datetime) -> dict[str, Any]:
    return {
        "_type": ACTION_FINISH_INSTANCE,
        "idempotency_key": _key(),
        "agent_instance_id": run_id,
        "status": status,
        "timestamp": _iso(at),
    }


def _payloads(
    rng: random.Random, kind: str, index: int, failed: bool, payload_bytes: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    at = rng.randrange(0, len(_TEXT) - payload_bytes) if payload_bytes < len(_TEXT) else 0
    filler = _TEXT[at : at + payload_bytes]
    params: dict[str, Any] = {"step": index, "notes": filler}
    result: dict[str, Any] = {"output": f"result of step {index}"}
    if kind == "agent:llm":
        model = _MODELS[index % len(_MODELS)]
        params = {
            "model": model,
            "messages": [
                {"role": "system", "content": "You are a careful research assistant."},
                {"role": "user", "content": f"Question {index}?\n{filler[: payload_bytes // 2]}"},
            ],
        }
        prompt, completion = 200 + index % 700, 20 + index % 300
        result = {
            "output": f"Answer {index}",
            "messages": [{"role": "assistant", "content": f"Answer {index}:\nline two"}],
            "usage": {
                "input_tokens": prompt,
                "output_tokens": completion,
                "total_tokens": prompt + completion,
            },
            "cost": round(prompt * 1.5e-7 + completion * 6e-7, 8),
        }
    if failed:
        result = {
            "error": {
                "type": "SyntheticError",
                "message": f"step {index} failed",
                "traceback": (
                    'Traceback (most recent call last):\n  File "agent.py", line 42, in step\n'
                    f"    run({index})\nSyntheticError: step {index} failed"
                ),
            }
        }
    return params, result


async def make_big_run(
    client: httpx.AsyncClient,
    *,
    spans: int,
    seed: int = 1,
    payload_bytes: int = 1024,
    failure_rate: float = 0.02,
    agent_id: str = "synthetic-big",
) -> str:
    """Record one finished run of ``spans`` nested spans (some failed, some LLM calls).

    Returns:
        The run's id.
    """
    rng = random.Random(seed)
    run_id = f"big-{seed}-{spans}-{uuid.uuid4().hex[:8]}"
    parents = [-1]
    depths = [0]
    recent: list[int] = [0]
    for index in range(1, spans):
        parent = rng.choice(recent[-40:])
        parents.append(parent)
        depths.append(depths[parent] + 1)
        if depths[index] < _MAX_DEPTH:
            recent.append(index)
    # Times: leaves take 1-400 ms, a parent lasts as long as its children run one by one.
    children: list[list[int]] = [[] for _ in range(spans)]
    for index in range(1, spans):
        children[parents[index]].append(index)
    length = [0.0] * spans
    for index in range(spans - 1, -1, -1):
        own = rng.uniform(1, 400)
        length[index] = own + sum(length[child] + 0.5 for child in children[index])
    begin = [0.0] * spans
    for index in range(spans):
        at = begin[index] + 0.25
        for child in children[index]:
            begin[child] = at
            at += length[child] + 0.5
    origin = datetime.now(UTC) - timedelta(milliseconds=length[0] + 1000)
    items = _register(run_id, agent_id, origin)
    for index in range(spans):
        kind = _TYPES[0] if index == 0 else _TYPES[1 + index % (len(_TYPES) - 1)]
        failed = index > 0 and rng.random() < failure_rate
        params, result = _payloads(rng, kind, index, failed, payload_bytes)
        start = origin + timedelta(milliseconds=begin[index])
        items.append(
            {
                "_type": ACTION_CREATE_SPAN,
                "idempotency_key": _key(),
                "agent_instance_id": run_id,
                "id": f"{run_id}-s{index}",
                "parent_span_id": None if index == 0 else f"{run_id}-s{parents[index]}",
                "schema_name": kind,
                "status": STATUS_FAILED if failed else STATUS_COMPLETE,
                "payload": params,
                "result_payload": result,
                "started_at": _iso(start),
                "finished_at": _iso(start + timedelta(milliseconds=length[index])),
            }
        )
    items.append(_finish(run_id, STATUS_COMPLETE, origin + timedelta(milliseconds=length[0] + 1)))
    await _bulk(client, items)
    return run_id


async def make_many_runs(
    client: httpx.AsyncClient,
    *,
    runs: int,
    spans_per_run: int = 3,
    agent_id: str = "synthetic-many",
    seed: int = 1,
) -> list[str]:
    """Record ``runs`` small finished runs (every seventh failed, some with LLM spans).

    Returns:
        The run ids, oldest first.
    """
    rng = random.Random(seed)
    origin = datetime.now(UTC) - timedelta(seconds=runs * 2)
    ids: list[str] = []
    items: list[dict[str, Any]] = []
    for number in range(runs):
        run_id = f"run-{seed}-{number:06d}-{uuid.uuid4().hex[:6]}"
        ids.append(run_id)
        started = origin + timedelta(seconds=number * 2)
        items.extend(_register(run_id, agent_id, started))
        for index in range(spans_per_run):
            kind = "agent:llm" if index == 0 else _TYPES[index % len(_TYPES)]
            failed = number % 7 == 0 and index == spans_per_run - 1
            params, result = _payloads(rng, kind, index, failed, 64)
            items.append(
                {
                    "_type": ACTION_CREATE_SPAN,
                    "idempotency_key": _key(),
                    "agent_instance_id": run_id,
                    "schema_name": kind,
                    "status": STATUS_FAILED if failed else STATUS_COMPLETE,
                    "payload": params,
                    "result_payload": result,
                    "started_at": _iso(started + timedelta(milliseconds=10 * index)),
                    "finished_at": _iso(started + timedelta(milliseconds=10 * index + 5)),
                }
            )
        status = STATUS_FAILED if number % 7 == 0 else STATUS_COMPLETE
        items.append(
            _finish(run_id, status, started + timedelta(milliseconds=rng.randint(50, 1500)))
        )
        if len(items) >= _BATCH * 5:
            await _bulk(client, items)
            items = []
    await _bulk(client, items)
    return ids
