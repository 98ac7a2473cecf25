"""Tests for bulk: ``bulk.execute``, ``send_bulk`` and the bulk models (spec section 5)."""

from __future__ import annotations

import json

import pydantic
import pytest

from prefactor_http import (
    BulkItem,
    BulkOutput,
    BulkRequest,
    BulkResponse,
    PrefactorApiError,
    PrefactorResponseContractError,
    PrefactorValidationError,
)

RESPONSE = {
    "status": "success",
    "outputs": {
        "show-agent-0001": {
            "status": "success",
            "details": {"type": "agent", "id": "agt_0001", "name": "Demo", "status": "active"},
        },
        "create-span-0001": {
            "status": "error",
            "code": "not_found",
            "message": "Agent instance not found",
        },
    },
}
ITEMS = [
    {"_type": "agents/show", "idempotency_key": "show-agent-0001", "agent_id": "agt_0001"},
    {
        "_type": "agent_spans/create",
        "idempotency_key": "create-span-0001",
        "agent_instance_id": "ins_0001",
        "schema_name": "agent:llm",
        "status": "active",
    },
]


async def test_execute_sends_the_spec_example(client, api) -> None:
    """``bulk.execute`` posts the items with ``_type`` keys and parses the outputs."""
    api.reply(200, RESPONSE)
    request = BulkRequest(items=[BulkItem.model_validate(item) for item in ITEMS])
    response = await client.bulk.execute(request)
    assert (api.last.method, api.last.url.path) == ("POST", "/api/v1/bulk")
    assert api.body() == {"items": ITEMS}
    assert isinstance(response, BulkResponse)
    assert response.outputs["show-agent-0001"].status == "success"
    error = response.outputs["create-span-0001"]
    assert error.status == "error"
    assert error.model_extra == {"code": "not_found", "message": "Agent instance not found"}


async def test_send_bulk_posts_items_exactly_as_given(client, api) -> None:
    """``send_bulk`` sends ``{"items": items}`` unchanged and returns a BulkResponse."""
    api.reply(200, RESPONSE)
    response = await client.send_bulk(ITEMS)
    assert json.loads(api.last.content) == {"items": ITEMS}
    assert set(response.outputs) == {"show-agent-0001", "create-span-0001"}


async def test_send_bulk_retry_false_makes_one_attempt(client, api, sleeps) -> None:
    """``send_bulk(retry=False)`` does not retry a 503."""
    api.reply(503, {"code": "unavailable", "message": "busy"})
    with pytest.raises(PrefactorApiError) as info:
        await client.send_bulk(ITEMS, retry=False)
    assert info.value.status_code == 503
    assert len(api.requests) == 1
    assert sleeps == []


async def test_send_bulk_outputs_default_status_and_partial_outputs(client, api) -> None:
    """Missing top-level status defaults to success; later items may be absent."""
    api.reply(200, {"outputs": {"show-agent-0001": {"status": "success", "details": {}}}})
    response = await client.send_bulk(ITEMS)
    assert response.status == "success"
    assert list(response.outputs) == ["show-agent-0001"]


@pytest.mark.parametrize(
    "body",
    [
        {"status": "success"},
        {"status": "success", "outputs": {"k-0000001": {"status": "maybe"}}},
        {"status": "success", "outputs": []},
    ],
)
async def test_malformed_bulk_response_is_contract_error(client, api, body) -> None:
    """A response without outputs, or with an unknown output status, is a contract error."""
    api.reply(200, body)
    with pytest.raises(PrefactorResponseContractError, match=r"bulk\.execute"):
        await client.send_bulk(ITEMS)


async def test_request_level_422_is_validation_error(client, api) -> None:
    """A 422 for the whole request raises PrefactorValidationError with nested errors."""
    api.reply(
        422,
        {
            "status": "error",
            "code": "validation_errors",
            "message": "Invalid request",
            "errors": {"items": {"status": "error", "code": "required", "message": "x"}},
        },
    )
    with pytest.raises(PrefactorValidationError) as info:
        await client.send_bulk(ITEMS)
    assert info.value.errors["items"]["code"] == "required"


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([], "at least one item"),
        ([{"_type": "agents/show", "idempotency_key": "short"}], "8 to 64"),
        ([{"_type": "agents/show", "idempotency_key": "k" * 65}], "8 to 64"),
        ([{"_type": "agents/show"}], "idempotency_key"),
        ([{"idempotency_key": "key-00001"}], "_type"),
        ([{"_type": "", "idempotency_key": "key-00001"}], "_type"),
        (["not a dict"], "must be a dict"),
        (
            [
                {"_type": "agents/show", "idempotency_key": "dup-key-01"},
                {"_type": "agents/show", "idempotency_key": "dup-key-01"},
            ],
            "bulk item 1: duplicate",
        ),
    ],
)
async def test_send_bulk_rejects_bad_items_before_sending(client, api, items, message) -> None:
    """Bad items raise ValueError naming the problem and nothing is sent."""
    with pytest.raises(ValueError, match=message):
        await client.send_bulk(items)
    assert api.requests == []


async def test_send_bulk_accepts_key_length_boundaries(client, api) -> None:
    """Keys of exactly 8 and 64 characters are accepted."""
    api.reply(200, {"outputs": {}})
    items = [
        {"_type": "agent_instances/start", "idempotency_key": "k" * 8},
        {"_type": "agent_instances/start", "idempotency_key": "k" * 64},
    ]
    await client.send_bulk(items)
    assert api.body() == {"items": items}


def test_bulk_request_validates_keys_and_items() -> None:
    """BulkRequest rejects no items, short keys and duplicate keys."""
    with pytest.raises(pydantic.ValidationError):
        BulkRequest(items=[])
    with pytest.raises(pydantic.ValidationError):
        BulkItem.model_validate({"_type": "a/b", "idempotency_key": "short"})
    item = {"_type": "a/b", "idempotency_key": "same-key-1"}
    with pytest.raises(
        pydantic.ValidationError, match="All idempotency keys must be unique within the request"
    ):
        BulkRequest(items=[BulkItem.model_validate(item), BulkItem.model_validate(item)])


def test_bulk_item_keeps_extra_fields_and_accepts_type_name() -> None:
    """Extra fields pass through; the action can be given as ``_type`` or ``type``."""
    by_alias = BulkItem.model_validate({"_type": "a/b", "idempotency_key": "key-00001", "x": 1})
    by_name = BulkItem(type="a/b", idempotency_key="key-00001", x=1)
    assert by_alias.model_dump(by_alias=True) == {
        "_type": "a/b",
        "idempotency_key": "key-00001",
        "x": 1,
    }
    assert by_name.model_dump(by_alias=True) == by_alias.model_dump(by_alias=True)


def test_bulk_output_status_is_validated() -> None:
    """BulkOutput accepts only success or error."""
    assert BulkOutput.model_validate({"status": "error", "code": "x"}).status == "error"
    with pytest.raises(pydantic.ValidationError):
        BulkOutput.model_validate({"status": "pending"})
