"""JSON text primitives of the wire: encoding a value, quoting a string, a timestamp.

Params and results are JSON-encoded once, on the caller's path, when the span starts or
finishes (that both checks them and takes a snapshot the caller can no longer change).
The renderers (``prefactor_core._engine.optable``) splice the encoded text into request
bodies as it is, so nothing is encoded twice.
"""

from __future__ import annotations

from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as quote
from typing import Any

import orjson

__all__ = ["encode_json", "iso", "quote", "second_text"]

_dumps = orjson.dumps
_OPTIONS = orjson.OPT_NON_STR_KEYS


def encode_json(value: Any) -> str:
    """Encode a JSON value compactly (orjson: fast, and strict about what is JSON).

    Raises:
        TypeError: For values JSON cannot represent (objects, sets, bytes, ...), and
            for integers beyond 64 bits. NaN and infinities become ``null``.
    """
    return _dumps(value, option=_OPTIONS).decode()


_seconds: dict[int, str] = {}
"""The date and time of recent seconds (Unix time), formatted (``iso``, ``second_text``)."""
_MOST_SECONDS = 256


def second_text(second: int) -> str:
    """The date and time of a second (Unix time) in ISO 8601, UTC, without the zone
    (kept in ``_seconds`` for a few hundred seconds)."""
    text = _seconds.get(second)
    if text is None:
        if len(_seconds) >= _MOST_SECONDS:
            _seconds.clear()
        text = _seconds[second] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return text


def iso(timestamp: float) -> str:
    """Format a Unix timestamp as ISO 8601 in UTC with microseconds.

    The date and time to the second are formatted once per second and kept for a few
    hundred seconds (the background sender formats two timestamps per span: its start,
    often seconds before its end, and its end).
    """
    micros = round(timestamp * 1_000_000)
    second, fraction = divmod(micros, 1_000_000)
    return "%s.%06d+00:00" % (_seconds.get(second) or second_text(second), fraction)  # noqa: UP031 - faster than an f-string here
