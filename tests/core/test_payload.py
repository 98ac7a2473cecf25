"""Payload encoding (issue 10): odd values, markers, size budgets and the masking hook."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import uuid
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import orjson
import pydantic
import pytest

from prefactor_core import PrefactorCoreConfig
from prefactor_core._payload import MARKER_KEY, PayloadEncoder, encode_value, to_jsonable
from prefactor_http import HttpClientConfig
from prefactor_server.testing import LocalServer

from .conftest import AGENT_VERSION, ClientFactory
from .support import read_one, spans_of


class Colour(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Hit:
    doc: str
    score: float


class Usage(pydantic.BaseModel):
    input_tokens: int
    at: dt.datetime


class Opaque:
    """A type no encoder knows."""


WHEN = dt.datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC)
ID = uuid.UUID("12345678-1234-5678-1234-567812345678")


async def test_values_json_has_no_type_for_are_stored_as_users_expect(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Datetimes, UUIDs, decimals, sets, bytes, enums, paths, dataclasses and pydantic models
    in params and results reach the server in their usual JSON form; nothing raises."""
    params = {
        "at": WHEN,
        "day": dt.date(2026, 1, 2),
        "clock": dt.time(3, 4, 5),
        "took": dt.timedelta(seconds=90),
        "id": ID,
        "price": Decimal("1.10"),
        "tags": {"a"},
        "frozen": frozenset({1}),
        "raw": b"text",
        "blob": b"\xff\x00",
        "colour": Colour.RED,
        "path": PurePosixPath("/tmp/x"),
        "pair": (1, 2),
        "hit": Hit("d1", 0.5),
        "usage": Usage(input_tokens=3, at=WHEN),
    }
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:tool") as span:
            await span.start(params)
            await span.complete({"when": WHEN, "usage": Usage(input_tokens=1, at=WHEN)})
        await client.flush()
        stats = client.statistics()
    [row] = await spans_of(server, instance.id)
    assert row["payload"] == {
        "at": "2026-01-02T03:04:05.600000+00:00",
        "day": "2026-01-02",
        "clock": "03:04:05",
        "took": "PT1M30S",
        "id": str(ID),
        "price": "1.10",
        "tags": ["a"],
        "frozen": [1],
        "raw": "text",
        "blob": "<bytes base64:/wA=>",
        "colour": "red",
        "path": "/tmp/x",
        "pair": [1, 2],
        "hit": {"doc": "d1", "score": 0.5},
        "usage": {"input_tokens": 3, "at": "2026-01-02T03:04:05.600000Z"},
    }
    assert row["result_payload"]["when"] == "2026-01-02T03:04:05.600000+00:00"
    assert stats.unencodable == 0
    assert row["status"] == "complete"


def test_what_cannot_be_encoded_becomes_a_marker_naming_its_type() -> None:
    """Unknown objects, cycles, too-deep nesting, huge integers and odd keys never raise."""
    encoder = PayloadEncoder()
    loop: list[Any] = []
    loop.append(loop)
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    data = {
        "thing": Opaque(),
        "loop": loop,
        "deep": deep,
        "big": 2**70,
        (1, 2): "tuple key",
        "nan": float("nan"),
    }
    out = orjson.loads(encoder.encode(data, "span payload"))
    assert out["thing"] == "<unencodable: test_payload.Opaque>" or out["thing"].endswith(".Opaque>")
    assert out["loop"] == ["<unencodable: circular reference>"]
    assert "nested deeper than" in str(out["deep"])
    assert out["big"] == str(2**70)
    assert out["(1, 2)"] == "tuple key"
    assert out["nan"] is None
    assert encoder.statistics().unencodable == 3


def test_a_payload_that_is_not_an_object_raises_type_error() -> None:
    """Only the payload's own type is the caller's mistake."""
    encoder = PayloadEncoder()
    with pytest.raises(TypeError, match="span payload must be a dict"):
        encoder.encode([1, 2], "span payload")
    # A dataclass or a pydantic model that encodes as an object is a fine payload.
    assert orjson.loads(encoder.encode(Hit("d", 1.0), "span payload")) == {"doc": "d", "score": 1.0}


def test_function_api_used_by_trace() -> None:
    """``to_jsonable`` and ``encode_value`` take any value and never raise."""
    assert to_jsonable({"at": WHEN, "x": Opaque()})["at"] == "2026-01-02T03:04:05.600000+00:00"
    assert encode_value([ID, Decimal("2")]) == f'["{ID}","2"]'
    assert encode_value(Opaque()).startswith('"<unencodable: ')


async def test_an_oversized_payload_is_cut_below_the_api_limit_and_the_run_goes_on(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """A 12 MB field (a base64 image) is cut to the field budget with a marker saying what
    was cut; the span, its sibling and the instance all arrive (no 413 on the wire)."""
    image = "A" * (12 * 1024 * 1024)
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        await instance.start()
        async with instance.span("agent:tool") as big:
            await big.start({"image": image, "name": "scan.png"})
            await big.complete({"ok": True})
        async with instance.span("agent:tool") as after:
            await after.start({"n": 1})
        await instance.finish()
        await client.flush()
        stats = client.statistics()
    rows = {row["id"]: row for row in await spans_of(server, instance.id)}
    cut = rows[big.id]["payload"]["image"]
    assert len(cut) <= 256 * 1024
    assert cut.endswith(f"of {len(image)} bytes>")
    assert "…<truncated " in cut
    assert rows[big.id]["payload"]["name"] == "scan.png"
    assert rows[after.id]["status"] == "complete"
    assert stats.truncated == 1
    assert stats.rejected == 0
    assert stats.dropped == 0
    assert (await read_one(server, f"/api/v1/agent_instance/{instance.id}"))["status"] == "complete"


def test_a_payload_of_many_small_values_over_the_span_budget_is_replaced_by_a_marker() -> None:
    """When cutting strings is not enough, a marker with the size and a preview stands in."""
    encoder = PayloadEncoder(max_field_bytes=1024, max_span_bytes=8192)
    text = encoder.encode({"numbers": list(range(10_000))}, "span payload")
    assert len(text) <= 8192
    replaced = orjson.loads(text)[MARKER_KEY]
    assert replaced["replaced"] == "too_large"
    assert replaced["limit"] == 8192
    assert replaced["bytes"] > 8192
    assert replaced["preview"].startswith('{"numbers":[0,1,2')


def test_a_spans_params_and_result_share_its_budget() -> None:
    """Params may take 7/8 of the span budget; the result gets what the params left."""
    encoder = PayloadEncoder(max_field_bytes=4096, max_span_bytes=16384)
    params = encoder.encode({f"k{i}": "x" * 4000 for i in range(8)}, "span payload", 14336)
    assert len(params) <= 14336
    result = encoder.encode({"r": "y" * 4000}, "span result", 16384 - len(params))
    assert len(params) + len(result) <= 16384


async def test_the_masking_hook_sees_every_payload_before_it_is_queued(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Params, results, quality payloads and the agent version go through ``mask``."""
    seen: list[Any] = []

    def mask(data: Any) -> Any:
        seen.append(data)
        return {k: ("***" if k in ("api_key", "email") else v) for k, v in data.items()}

    version = {**AGENT_VERSION, "email": "ops@example.com"}
    async with make_client(mask=mask) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=version)
        async with instance.span("agent:tool") as span:
            await span.start({"api_key": "sk-secret", "q": "hello"})
            await span.complete({"email": "a@b.c", "answer": 42})
        await instance.record_quality("score", {"email": "x@y.z", "value": 1})
        await client.flush()
    [row] = await spans_of(server, instance.id)
    assert row["payload"] == {"api_key": "***", "q": "hello"}
    assert row["result_payload"] == {"email": "***", "answer": 42}
    stored = await read_one(server, f"/api/v1/agent_instance/{instance.id}")
    assert "sk-secret" not in orjson.dumps(stored).decode()
    assert "ops@example.com" not in orjson.dumps(stored).decode()
    assert "x@y.z" not in orjson.dumps(stored).decode()
    assert len(seen) == 4


async def test_a_masking_hook_that_raises_is_counted_and_never_reaches_the_agent(
    make_client: ClientFactory, server: LocalServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The payload becomes a marker naming the error; the span and the run go on."""

    def mask(data: Any) -> Any:
        raise ValueError("cannot mask this")

    caplog.set_level(logging.WARNING, "prefactor_core")
    async with make_client(mask=mask) as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        await instance.start()
        async with instance.span("agent:tool") as span:
            await span.start({"secret": "s"})
            await span.complete({"secret": "t"})
        await instance.finish()
        await client.flush()
        stats = client.statistics()
    [row] = await spans_of(server, instance.id)
    assert row["payload"] == {MARKER_KEY: {"replaced": "mask_failed", "error": "ValueError"}}
    assert row["result_payload"] == {MARKER_KEY: {"replaced": "mask_failed", "error": "ValueError"}}
    assert row["status"] == "complete"
    assert stats.mask_errors == 3  # the agent version, the params, the result
    assert sum("masking hook raised ValueError" in r.getMessage() for r in caplog.records) == 1
    stored = await read_one(server, f"/api/v1/agent_instance/{instance.id}")
    assert stored["status"] == "complete"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"max_field_bytes": 2_000_000},
            r"max_field_bytes \(2000000\) must not exceed max_span_bytes",
        ),
        ({"max_field_bytes": 10}, "max_field_bytes"),
        ({"max_span_bytes": 100}, "max_span_bytes"),
        ({"mask": "not callable"}, "mask"),
    ],
)
def test_payload_settings_are_validated_with_precise_errors(
    options: dict[str, Any], message: str
) -> None:
    """Bad budgets or a mask that is not callable fail at construction, naming the field."""
    http = HttpClientConfig(api_url="http://127.0.0.1:1", api_token="t")
    with pytest.raises(pydantic.ValidationError, match=message):
        PrefactorCoreConfig(http_config=http, **options)


async def test_the_readme_example_of_what_happens_to_a_payload_runs() -> None:
    """The README's payload example runs as written (its assertions included)."""
    readme = Path(__file__).parents[2] / "packages" / "prefactor-core" / "README.md"
    section = readme.read_text(encoding="utf-8").split("## What happens to a payload", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(readme), "exec"), namespace)
    await namespace["main"]()


async def test_odd_values_in_the_agent_version_do_not_raise(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """``create_agent_instance`` with a Decimal, a set and a datetime in the agent version
    registers the run (it raised TypeError before)."""
    version = {**AGENT_VERSION, "build": Decimal("1.2"), "flags": {"beta"}, "at": WHEN}
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=version)
        await instance.finish()
        await client.flush()
        assert client.statistics().dropped == 0
    stored = await read_one(server, f"/api/v1/agent_instance/{instance.id}")
    assert stored["status"] == "complete"


def test_a_large_payload_without_an_oversized_string_is_sent_unchanged() -> None:
    """Over the field budget in total but no single string over it: nothing is cut or
    counted."""
    encoder = PayloadEncoder(max_field_bytes=1024, max_span_bytes=1 << 20)
    data = {f"k{i}": "x" * 500 for i in range(100)}
    assert orjson.loads(encoder.encode(data, "span payload")) == data
    assert encoder.statistics().truncated == 0


TEXTS = {
    "plain": "ASCII text",
    "accents": "ünïcödé, Ελληνικά, 日本語",
    "emoji": "🚀 → ✓",
    "controls": 'quote " back\\slash \n new\tline \x00 \x1f \x7f',
    "separators": "\u2028 \u2029",
    "escape-like": "\\u0041 is not A",
}


async def test_text_reaches_the_server_exactly_as_the_caller_gave_it(
    make_client: ClientFactory, server: LocalServer
) -> None:
    """Bulk bodies are UTF-8 (non-ASCII text as it is, not as escapes): the server stores
    every value exactly, in params, results, span types and ids, in merged creates and in
    a finish sent on its own; a lone surrogate (which UTF-8 cannot carry) arrives as
    U+FFFD and raises nothing."""
    params = {**TEXTS, "nested": [TEXTS, {"k→": "v\n"}], "lone": "half \ud800 pair"}
    result = {"out": TEXTS, "lone key \udfff": 1}
    async with make_client() as client:
        instance = await client.create_agent_instance(agent_id="a", agent_version=AGENT_VERSION)
        async with instance.span("agent:tool") as merged:
            await merged.start(params)
            await merged.complete(result)
        async with instance.span("agent:tool") as apart:
            await apart.start(params)
            await client.flush()  # the create goes first: the finish is sent on its own
            await apart.complete(result)
        await client.flush()
        stats = client.statistics()
    rows = {row["id"]: row for row in await spans_of(server, instance.id)}
    assert stats.dropped == 0
    assert set(rows) == {merged.id, apart.id}
    for row in rows.values():
        assert row["status"] == "complete"
        stored, returned = row["payload"], row["result_payload"]
        assert {k: stored[k] for k in TEXTS} == TEXTS
        assert stored["nested"] == [TEXTS, {"k→": "v\n"}]
        assert returned["out"] == TEXTS
        assert stored["lone"] == "half \ufffd pair"
        assert returned["lone key \ufffd"] == 1
