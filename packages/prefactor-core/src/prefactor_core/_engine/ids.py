"""Fast PFID generation for the agent's hot path.

Same layout as ``prefactor_http.pfid`` (2 zero bits, 48-bit ms time, 30-bit partition,
80 random bits, 32 lowercase Crockford base32 characters), made with C-level helpers:
the standard base32 encoder and a byte translation to the Crockford alphabet, which
keeps the sort order because both alphabets are in ascending order of value.
"""

from __future__ import annotations

import base64
import os
import random
import re
import time

from prefactor_http.pfid import MAX_PARTITION

__all__ = ["CLIENT_ID_PATTERN", "IdFactory", "check_client_id"]

_TO_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789abcdefghjkmnpqrstvwxyz"
)

# One generator for the process, seeded from the OS. A forked child reseeds, so parent
# and child never make the same ids.
_rng = random.Random()
os.register_at_fork(after_in_child=_rng.seed)

CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Ids the API accepts from clients: 1 to 64 letters, digits, ``_`` or ``-``."""


def check_client_id(value: object, what: str) -> str:
    """Return ``value`` if it is a valid client-chosen id, else raise ValueError."""
    if not isinstance(value, str) or CLIENT_ID_PATTERN.fullmatch(value) is None:
        raise ValueError(f"{what} must be 1 to 64 letters, digits, '_' or '-', got {value!r}")
    return value


class IdFactory:
    """Makes PFIDs in one partition."""

    __slots__ = ("_partition_bits", "partition")

    def __init__(self, partition: int = 0) -> None:
        self.partition = 0
        self._partition_bits = 0
        self.set_partition(partition)

    def set_partition(self, partition: int) -> None:
        """Use ``partition`` for the ids made from now on."""
        if not 0 <= partition <= MAX_PARTITION:
            raise ValueError(f"partition must be between 0 and {MAX_PARTITION}")
        self.partition = partition
        self._partition_bits = partition << 80

    def new_id(self) -> str:
        """Return a new PFID."""
        value = ((time.time_ns() // 1_000_000) << 110) | self._partition_bits | _rng.getrandbits(80)
        return base64.b32encode(value.to_bytes(20, "big")).translate(_TO_CROCKFORD).decode()
