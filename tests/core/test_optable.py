"""Tests for prefactor_core._engine.optable: the one table of operation types.

Every ``OperationType`` must have a complete entry, the entry must agree with what the
wire tests (``test_wire.py``) expect each type to render as, and the payload keys the
spool stores on disk must keep their names.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from prefactor_core import Operation, OperationType
from prefactor_core._engine import optable
from prefactor_core._engine.optable import (
    BULK_ACTIONS,
    CONFLICT_IS_DONE,
    TABLE,
    WaitsFor,
    render_bulk_item,
    render_single,
)
from prefactor_core.queue.spool import SpoolQueue
from prefactor_http.models.types import BULK_ACTION_NAMES

from .test_wire import ALL_OPERATIONS, INSTANCE, KEY, SPAN

KINDS = list(OperationType)


def _ids(kind: OperationType) -> str:
    return kind.name


def test_every_operation_type_has_an_entry() -> None:
    """The table covers exactly the operation types, each under its own type."""
    assert set(TABLE) == set(OperationType)
    assert all(spec.type is kind for kind, spec in TABLE.items())


@pytest.mark.parametrize("kind", KINDS, ids=_ids)
def test_every_entry_is_complete(kind: OperationType) -> None:
    """Each entry names a known bulk action, an API path, a renderer, what it waits
    for and how logs call it."""
    spec = TABLE[kind]
    assert spec.bulk_action in BULK_ACTION_NAMES
    assert spec.single_path.startswith("/api/v1/")
    assert callable(spec.render)
    assert isinstance(spec.waits_for, WaitsFor)
    assert isinstance(spec.conflict_is_done, bool)
    assert spec.describes.startswith(("a ", "an "))


def test_bulk_actions_are_distinct_and_are_the_apis() -> None:
    """No two types share a bulk action, and together they are the API's list."""
    actions = [spec.bulk_action for spec in TABLE.values()]
    assert len(set(actions)) == len(actions)
    assert set(actions) == set(BULK_ACTION_NAMES)
    assert {kind: spec.bulk_action for kind, spec in TABLE.items()} == BULK_ACTIONS


def test_conflict_means_done_only_for_finishes_and_the_instance_start() -> None:
    """A 409 counts as delivered for an instance start or finish and a span finish."""
    assert {
        OperationType.START_AGENT_INSTANCE,
        OperationType.FINISH_AGENT_INSTANCE,
        OperationType.FINISH_SPAN,
    } == CONFLICT_IS_DONE


def test_what_each_type_waits_for() -> None:
    """Span operations wait for a create; everything else is a barrier of its instance."""
    assert TABLE[OperationType.CREATE_SPAN].waits_for is WaitsFor.PARENT_CREATE
    assert TABLE[OperationType.FINISH_SPAN].waits_for is WaitsFor.OWN_CREATE
    others = set(OperationType) - {OperationType.CREATE_SPAN, OperationType.FINISH_SPAN}
    assert {TABLE[kind].waits_for for kind in others} == {WaitsFor.INSTANCE}


@pytest.mark.parametrize("kind", KINDS, ids=_ids)
def test_rendering_follows_the_entry(kind: OperationType) -> None:
    """The single request goes to the entry's path (its ids filled in) and the bulk item
    carries the entry's action, the target field, and the same body fields."""
    op = ALL_OPERATIONS[kind]()
    spec = TABLE[kind]
    path, body_text = render_single(op)
    assert path == spec.single_path.format(instance_id=INSTANCE, span_id=SPAN)
    body = json.loads(body_text)
    if spec.wraps_details:
        assert list(body) == ["details"]
        body = body["details"]
    item = json.loads(render_bulk_item(op))
    assert item.pop("_type") == spec.bulk_action
    if spec.target is not None:
        field, key = spec.target
        assert item.pop(field) == op.payload[key]
        assert op.payload[key] in path  # the single request names it in its path
    assert item == body
    assert item["idempotency_key"] == KEY


def test_payload_key_names_are_the_spools_format() -> None:
    """The spool stores payloads and metadata under these names: renaming one would
    make existing spool files unreadable."""
    assert {
        name: getattr(optable, name)
        for name in (
            "INSTANCE_ID",
            "SPAN_ID",
            "SCHEMA_NAME",
            "PARENT_SPAN_ID",
            "STATUS",
            "PAYLOAD_JSON",
            "RESULT_JSON",
            "STARTED_AT",
            "FINISHED_AT",
            "TIMESTAMP",
            "NAME",
            "BODY",
            "NO_MERGE",
            "RECOVERED",
            "MERGED_FINISH",
            "REPAIR",
        )
    } == {
        "INSTANCE_ID": "instance_id",
        "SPAN_ID": "span_id",
        "SCHEMA_NAME": "schema_name",
        "PARENT_SPAN_ID": "parent_span_id",
        "STATUS": "status",
        "PAYLOAD_JSON": "payload_json",
        "RESULT_JSON": "result_json",
        "STARTED_AT": "started_at",
        "FINISHED_AT": "finished_at",
        "TIMESTAMP": "timestamp",
        "NAME": "name",
        "BODY": "body",
        "NO_MERGE": "no_merge",
        "RECOVERED": "recovered",
        "MERGED_FINISH": "merged_finish",
        "REPAIR": "repair",
    }


def test_a_spool_file_written_before_the_table_still_loads(tmp_path: Path) -> None:
    """A spool row in the format earlier versions wrote (type name, payload with the
    private keys, Unix time, metadata) loads as the same operation, marked recovered."""
    path = tmp_path / "spool.db"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE operations (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "key TEXT NOT NULL UNIQUE, data BLOB NOT NULL)"
    )
    payload = {
        "instance_id": INSTANCE,
        "span_id": SPAN,
        "schema_name": "agent:llm",
        "status": "pending",
        "payload_json": '{"q":1}',
        "started_at": None,
    }
    row = {
        "type": "CREATE_SPAN",
        "payload": payload,
        "created": 1.5,
        "metadata": {"no_merge": True},
    }
    db.execute("INSERT INTO operations (key, data) VALUES (?, ?)", ("c-" + SPAN, json.dumps(row)))
    db.commit()
    db.close()
    queue = SpoolQueue(path)
    try:
        [op] = list(queue._items)
    finally:
        queue.dispose()
    assert isinstance(op, Operation)
    assert op.type is OperationType.CREATE_SPAN
    assert op.payload == payload
    assert op.idempotency_key == "c-" + SPAN
    assert op.metadata == {"no_merge": True, "recovered": True}
    assert json.loads(render_bulk_item(op))["payload"] == {"q": 1}
