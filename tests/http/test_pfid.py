"""Tests for ``prefactor_http.pfid``: layout, round trips, ordering and rejection."""

from __future__ import annotations

import pytest

from prefactor_http.pfid import (
    MAX_PARTITION,
    PFID_LENGTH,
    Pfid,
    generate_pfid,
    is_pfid,
    parse_pfid,
)

ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def test_generated_pfid_has_32_lowercase_crockford_characters() -> None:
    """A PFID is 32 characters of the lowercase Crockford alphabet."""
    value = generate_pfid(123456789)
    assert len(value) == PFID_LENGTH == 32
    assert set(value) <= set(ALPHABET)


def test_round_trip_of_all_fields() -> None:
    """Parsing returns the time, partition and random bits that went in."""
    value = generate_pfid(42, now_ms=1_786_000_000_000, rand=0xABCDEF)
    assert parse_pfid(value) == Pfid(timestamp_ms=1_786_000_000_000, partition=42, random=0xABCDEF)


def test_extreme_values_round_trip() -> None:
    """The largest time, partition and random values survive a round trip."""
    value = generate_pfid(MAX_PARTITION, now_ms=(1 << 48) - 1, rand=(1 << 80) - 1)
    assert parse_pfid(value) == Pfid((1 << 48) - 1, MAX_PARTITION, (1 << 80) - 1)
    assert value[0] == "7"  # 5 bits per character: the two leading zero bits cap it at 7


def test_all_zero_pfid() -> None:
    """Zero fields give thirty-two zeros."""
    assert generate_pfid(0, now_ms=0, rand=0) == "0" * 32


def test_pfids_sort_by_creation_time() -> None:
    """A later millisecond sorts after an earlier one whatever the other fields are."""
    early = generate_pfid(MAX_PARTITION, now_ms=1_000, rand=(1 << 80) - 1)
    late = generate_pfid(0, now_ms=1_001, rand=0)
    assert early < late


def test_random_bits_differ_between_calls() -> None:
    """Two PFIDs made in the same millisecond differ by their random bits."""
    assert generate_pfid(7, now_ms=5) != generate_pfid(7, now_ms=5)


def test_current_time_is_used_by_default() -> None:
    """Without ``now_ms`` the timestamp is a plausible current time."""
    assert parse_pfid(generate_pfid(1)).timestamp_ms > 1_700_000_000_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"partition": -1}, "partition"),
        ({"partition": MAX_PARTITION + 1}, "partition"),
        ({"partition": 0, "now_ms": -1}, "now_ms"),
        ({"partition": 0, "now_ms": 1 << 48}, "now_ms"),
        ({"partition": 0, "rand": 1 << 80}, "rand"),
    ],
)
def test_generate_rejects_out_of_range_fields(kwargs: dict[str, int], message: str) -> None:
    """An out-of-range field raises ValueError naming it."""
    with pytest.raises(ValueError, match=message):
        generate_pfid(**kwargs)


def test_parse_accepts_uppercase_and_crockford_aliases() -> None:
    """Parsing is case-insensitive and reads I/L as 1 and O as 0."""
    value = generate_pfid(3, now_ms=99, rand=12345)
    assert parse_pfid(value.upper()) == parse_pfid(value)
    assert parse_pfid("o" * 31 + "l") == parse_pfid("0" * 31 + "1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0" * 31, "32 characters"),
        ("0" * 33, "32 characters"),
        ("0" * 31 + "u", "invalid character"),
        ("8" + "0" * 31, "leading bits"),
    ],
)
def test_parse_rejects_malformed_values(value: str, message: str) -> None:
    """Wrong length, letters outside the alphabet and set leading bits raise ValueError."""
    with pytest.raises(ValueError, match=message):
        parse_pfid(value)
    assert not is_pfid(value)


def test_is_pfid_accepts_generated_values() -> None:
    """``is_pfid`` is true for a generated PFID and false for a prefixed id."""
    assert is_pfid(generate_pfid(9))
    assert not is_pfid("ins_0001")


def test_default_pfids_sort_in_creation_order_within_a_millisecond() -> None:
    """Ids made with the defaults in a tight loop sort in the order they were made."""
    made = [generate_pfid(9) for _ in range(5_000)]
    assert len({parse_pfid(i).timestamp_ms for i in made}) < len(made)  # several per ms
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert {parse_pfid(i).partition for i in made} == {9}


def test_default_pfids_keep_their_order_across_threads() -> None:
    """Ids of one partition made from several threads are unique and each thread's sorted."""
    import threading

    results: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(generate_pfid(11) for _ in range(2_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in results for i in out]
    assert len(set(every)) == len(every)
    assert all(out == sorted(out) for out in results)
