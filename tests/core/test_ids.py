"""Tests for prefactor_core._engine.ids: PFIDs made on the agent's path."""

from __future__ import annotations

import os
import sys
import time
import warnings
from typing import Any

import pytest

from prefactor_core._engine.ids import CLIENT_ID_PATTERN, IdFactory, check_client_id
from prefactor_http.pfid import MAX_PARTITION, PFID_LENGTH, generate_pfid, is_pfid, parse_pfid

CROCKFORD = set("0123456789abcdefghjkmnpqrstvwxyz")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _next_millisecond(after_ms: int) -> None:
    """Spin (without sleeping) until the wall clock has passed ``after_ms``."""
    while _now_ms() <= after_ms:
        pass


def test_ids_are_32_lowercase_crockford_characters() -> None:
    """An id is 32 characters from the lowercase Crockford base32 alphabet."""
    new_id = IdFactory().new_id()
    assert len(new_id) == PFID_LENGTH == 32
    assert set(new_id) <= CROCKFORD
    assert is_pfid(new_id)


def test_id_parses_to_the_factory_partition_and_now() -> None:
    """An id parses to the factory's partition and a timestamp taken at creation."""
    factory = IdFactory(123_456_789)
    before = _now_ms()
    new_id = factory.new_id()
    after = _now_ms()
    parsed = parse_pfid(new_id)
    assert parsed.partition == 123_456_789
    assert before <= parsed.timestamp_ms <= after


def test_id_encoding_matches_prefactor_http() -> None:
    """The fast encoder gives exactly what prefactor_http.pfid gives for the same fields."""
    factory = IdFactory(42)
    for _ in range(200):
        new_id = factory.new_id()
        parsed = parse_pfid(new_id)
        rebuilt = generate_pfid(parsed.partition, now_ms=parsed.timestamp_ms, rand=parsed.random)
        assert rebuilt == new_id


def test_default_partition_is_zero() -> None:
    """Without a partition the factory makes ids in partition 0."""
    factory = IdFactory()
    assert factory.partition == 0
    assert parse_pfid(factory.new_id()).partition == 0


@pytest.mark.parametrize("partition", [0, 1, 2**29, MAX_PARTITION])
def test_partition_bounds_are_accepted(partition: int) -> None:
    """Partitions from 0 to MAX_PARTITION round-trip through the id."""
    assert parse_pfid(IdFactory(partition).new_id()).partition == partition


@pytest.mark.parametrize("partition", [-1, MAX_PARTITION + 1, 2**40])
def test_out_of_range_partition_is_rejected(partition: int) -> None:
    """A partition outside 0..MAX_PARTITION raises ValueError, at construction or later."""
    with pytest.raises(ValueError, match="partition"):
        IdFactory(partition)
    factory = IdFactory(7)
    with pytest.raises(ValueError, match="partition"):
        factory.set_partition(partition)
    assert factory.partition == 7
    assert parse_pfid(factory.new_id()).partition == 7


def test_set_partition_applies_to_later_ids() -> None:
    """Ids made after set_partition carry the new partition."""
    factory = IdFactory(1)
    first = factory.new_id()
    factory.set_partition(99)
    assert factory.partition == 99
    assert parse_pfid(first).partition == 1
    assert parse_pfid(factory.new_id()).partition == 99


def test_ids_sort_in_creation_order_across_milliseconds() -> None:
    """Ids made in successive milliseconds sort as strings in creation order."""
    factory = IdFactory(5)
    made = []
    for _ in range(6):
        made.append(factory.new_id())
        _next_millisecond(parse_pfid(made[-1]).timestamp_ms)
    assert sorted(made) == made
    stamps = [parse_pfid(i).timestamp_ms for i in made]
    assert stamps == sorted(set(stamps))


def test_ids_are_unique_over_100k() -> None:
    """A hundred thousand ids from one factory are all different."""
    factory = IdFactory(3)
    ids = {factory.new_id() for _ in range(100_000)}
    assert len(ids) == 100_000


def test_two_factories_in_the_same_partition_do_not_collide() -> None:
    """Factories share the process generator, so their ids differ."""
    first, second = IdFactory(8), IdFactory(8)
    ids = {first.new_id() for _ in range(1000)} | {second.new_id() for _ in range(1000)}
    assert len(ids) == 2000


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork")
def test_forked_child_makes_different_ids() -> None:
    """After a fork, the child's random bits differ from the parent's."""
    factory = IdFactory(4)
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process that has threads; harmless here.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write_fd, factory.new_id().encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    parent_id = factory.new_id()
    with os.fdopen(read_fd, "rb") as pipe:
        child_id = pipe.read().decode()
    os.waitpid(pid, 0)
    assert len(child_id) == 32
    assert parse_pfid(child_id).random != parse_pfid(parent_id).random


@pytest.mark.parametrize(
    "value",
    ["a", "A", "0", "abc-DEF_123", "x" * 64, IdFactory(1).new_id(), "-", "_"],
)
def test_check_client_id_accepts_valid_ids(value: str) -> None:
    """Ids of 1 to 64 letters, digits, '_' or '-' are returned unchanged."""
    assert check_client_id(value, "span_id") is value
    assert CLIENT_ID_PATTERN.fullmatch(value)


@pytest.mark.parametrize(
    "value",
    ["", "x" * 65, "a b", "a/b", "a?b", "a.b", "ü", "abc\n", "\nabc", None, 12, b"abc"],
)
def test_check_client_id_rejects_invalid_ids(value: Any) -> None:
    """Empty, too long, non-string or ids with other characters raise ValueError."""
    with pytest.raises(ValueError, match="instance_id"):
        check_client_id(value, "instance_id")


def test_ids_of_one_factory_sort_in_creation_order() -> None:
    """Ids made in a tight loop (many per millisecond) sort in the order they were made."""
    factory = IdFactory(5)
    made = [factory.new_id() for _ in range(5_000)]
    assert len({parse_pfid(i).timestamp_ms for i in made}) < len(made)  # several per ms
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_more_than_1024_ids_in_one_millisecond_sort_and_differ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past 1,024 ids in one millisecond the factory steps its start up: the ids of a
    frozen clock still sort in the order they were made, all differ, and keep the time."""
    from prefactor_core._engine import ids

    monkeypatch.setattr(ids, "_time_ns", lambda: 1_767_225_600_123_456_789)
    factory = IdFactory(9)
    made = [factory.new_id() for _ in range(5_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert {parse_pfid(i).timestamp_ms for i in made} == {1_767_225_600_123}
    assert {parse_pfid(i).partition for i in made} == {9}
