"""PFIDs: k-sortable identifiers shared by the Prefactor server and SDK.

A PFID is a 160-bit number written as 32 lowercase Crockford base32 characters::

    2 zero bits | 48 bits Unix time (ms) | 30 bits partition | 80 random bits

Because the time comes first and every PFID has the same length, PFIDs sort as strings
in creation order: by the millisecond, and within one process also inside a millisecond
(an id made in the same millisecond as the previous one of its partition takes a random
field a random step above the previous one's). The partition ties ids to an account, so a
client can make ids that the server accepts as its own: the server announces the
partition in its ping capabilities, and the SDK makes span and instance ids locally
instead of waiting for a round trip.

Example::

    >>> pfid = generate_pfid(42)
    >>> parse_pfid(pfid).partition
    42
"""

from __future__ import annotations

import os
import threading
import time
from typing import NamedTuple

__all__ = [
    "MAX_PARTITION",
    "PFID_LENGTH",
    "Pfid",
    "generate_pfid",
    "is_pfid",
    "parse_pfid",
]

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {ch: i for i, ch in enumerate(_ALPHABET)}
# Crockford base32 is case-insensitive and reads I/L as 1 and O as 0.
_DECODE.update({ch.upper(): i for ch, i in list(_DECODE.items())})
_DECODE.update({"i": 1, "I": 1, "l": 1, "L": 1, "o": 0, "O": 0})

PFID_LENGTH = 32
"""Number of characters in a PFID."""

MAX_PARTITION = (1 << 30) - 1
"""Largest partition number (30 bits)."""

_MAX_TIME = (1 << 48) - 1
_MAX_RANDOM = (1 << 80) - 1

# Per partition: the (millisecond, random field) of the last id made with the defaults.
_last: dict[int, tuple[int, int]] = {}
_last_lock = threading.Lock()


class Pfid(NamedTuple):
    """The three fields of a parsed PFID.

    Example:
        >>> parse_pfid(generate_pfid(7, now_ms=1_000, rand=5))
        Pfid(timestamp_ms=1000, partition=7, random=5)
    """

    timestamp_ms: int
    partition: int
    random: int


def generate_pfid(partition: int, *, now_ms: int | None = None, rand: int | None = None) -> str:
    """Make a new PFID in ``partition``.

    Args:
        partition: The account's partition, 0 to ``MAX_PARTITION``.
        now_ms: Unix time in milliseconds; the current time when omitted.
        rand: The 80 random bits; drawn from ``os.urandom`` when omitted.

    Returns:
        A 32-character lowercase PFID.

    Raises:
        ValueError: If a field is out of range.
    """
    if not 0 <= partition <= MAX_PARTITION:
        raise ValueError(f"partition must be between 0 and {MAX_PARTITION}, got {partition}")
    if now_ms is None and rand is None:
        return _encode(*_next_monotonic(partition), partition)
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if not 0 <= ms <= _MAX_TIME:
        raise ValueError(f"now_ms must fit in 48 bits, got {ms}")
    bits = int.from_bytes(os.urandom(10), "big") if rand is None else rand
    if not 0 <= bits <= _MAX_RANDOM:
        raise ValueError("rand must fit in 80 bits")
    return _encode(ms, bits, partition)


def _next_monotonic(partition: int) -> tuple[int, int]:
    """Return the time and random field of the next id of ``partition`` in this process.

    The first id of a millisecond takes a random field in the lower half of the range;
    an id made in the same millisecond as the last one (or after the clock went back)
    keeps that millisecond and steps its random field up by 1 to 2**48, so ids sort in
    the order they were made and 2**31 of them fit in one millisecond.
    """
    ms = time.time_ns() // 1_000_000
    step = int.from_bytes(os.urandom(10), "big")
    with _last_lock:
        last = _last.get(partition)
        if last is None or ms > last[0]:
            bits = step >> 1
        else:
            ms, bits = last[0], last[1] + 1 + (step >> 32)
            if bits > _MAX_RANDOM:
                ms, bits = ms + 1, step >> 1
        _last[partition] = (ms, bits)
    return ms, bits


def _encode(ms: int, bits: int, partition: int) -> str:
    value = (ms << 110) | (partition << 80) | bits
    chars = []
    for _ in range(PFID_LENGTH):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def parse_pfid(value: str) -> Pfid:
    """Split a PFID into its time, partition and random fields.

    Raises:
        ValueError: If ``value`` is not a 32-character Crockford base32 PFID.
    """
    if len(value) != PFID_LENGTH:
        raise ValueError(f"a PFID has {PFID_LENGTH} characters, got {len(value)}")
    number = 0
    for ch in value:
        digit = _DECODE.get(ch)
        if digit is None:
            raise ValueError(f"invalid character {ch!r} in PFID {value!r}")
        number = (number << 5) | digit
    if number >> 158:
        raise ValueError(f"PFID {value!r} has its two leading bits set")
    return Pfid(
        timestamp_ms=(number >> 110) & _MAX_TIME,
        partition=(number >> 80) & MAX_PARTITION,
        random=number & _MAX_RANDOM,
    )


def is_pfid(value: str) -> bool:
    """Return True when ``value`` parses as a PFID."""
    try:
        parse_pfid(value)
    except ValueError:
        return False
    return True
