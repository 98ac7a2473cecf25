"""Turning user payloads (span params and results, quality records) into JSON text.

One encode path for everything the agent hands the SDK, used on the caller's path by
``SpanContext`` and the managers, and by ``@trace`` for the raw values it records. It
never raises for what a payload *contains*:

* values JSON has no type for are encoded the way users expect: ``datetime``/``date``/
  ``time`` as ISO 8601, ``timedelta`` as an ISO 8601 duration, ``UUID``/``Decimal``/
  ``Path`` as strings, ``set``/``frozenset``/``tuple`` as arrays, ``Enum`` as its value,
  dataclasses and pydantic models as objects (``model_dump(mode="json")``), ``bytes`` as
  UTF-8 text (or ``"<bytes base64:...>"`` when they are not text); integers beyond 64 bits
  become strings of their digits; keys JSON cannot have become strings;
* what cannot be encoded at all becomes the marker ``"<unencodable: module.Type>"``, and
  so do cycles and nesting deeper than ``MAX_DEPTH``;
* a string longer than the per-field budget is cut, ending in ``"…<truncated N of M
  bytes>"``; a payload still over its budget after that is replaced by a marker object;
* the client-wide masking hook (``PrefactorCoreConfig.mask``) sees every payload before it
  is encoded; a hook that raises is logged and counted, and the payload becomes a marker.

Marker objects have one key, ``MARKER_KEY`` (``"_prefactor"``), naming what was replaced
and why, e.g. ``{"_prefactor": {"replaced": "too_large", "bytes": 12582912, ...}}``.

Only the *type* of the payload itself is the caller's mistake: a payload that is not a
mapping (or an object that encodes as one: a dataclass, a pydantic model) raises
``TypeError`` at the call, as the SDK has always documented.

The function API::

    encoder = PayloadEncoder(mask=None, max_field_bytes=256 * 1024, max_span_bytes=1 << 20)
    text = encoder.encode({"at": datetime.now(UTC)}, "span payload")   # -> '{"at":"2026-..."}'
    value = to_jsonable(anything)                  # JSON-compatible Python, never raises
    encode_value(anything)                         # JSON text of any value, never raises
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable, Mapping
from enum import Enum
from pathlib import PurePath
from typing import Any, NamedTuple

import orjson
from pydantic_core import PydanticSerializationError, to_jsonable_python

__all__ = [
    "DEFAULT_MAX_FIELD_BYTES",
    "DEFAULT_MAX_SPAN_BYTES",
    "MARKER_KEY",
    "MAX_DEPTH",
    "PayloadEncoder",
    "PayloadStatistics",
    "encode_value",
    "encoded_size",
    "marker",
    "to_jsonable",
]

logger = logging.getLogger("prefactor_core.payload")

MARKER_KEY = "_prefactor"
"""The one key of the objects that stand in for a replaced payload."""

MAX_DEPTH = 200
"""Containers nested deeper than this are replaced by a marker (orjson stops at 254)."""

DEFAULT_MAX_FIELD_BYTES = 256 * 1024
"""Default budget of one string value, in bytes of UTF-8."""

DEFAULT_MAX_SPAN_BYTES = 1024 * 1024
"""Default budget of a span's params and result together, in bytes of JSON."""

_dumps = orjson.dumps
_loads = orjson.loads
_OPTIONS = orjson.OPT_NON_STR_KEYS
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_PREVIEW_CHARS = 256
_JSON_SCALARS = (str, int, float, bool, type(None))


def marker(replaced: str, **details: Any) -> dict[str, Any]:
    """The object that stands in for a payload the SDK replaced (see the module doc)."""
    return {MARKER_KEY: {"replaced": replaced, **details}}


def _type_name(value: object) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _unencodable_text(value: object) -> str:
    return f"<unencodable: {_type_name(value)}>"


def _bytes_text(value: bytes | bytearray | memoryview) -> str:
    raw = bytes(value)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "<bytes base64:" + base64.b64encode(raw).decode("ascii") + ">"


def _known(value: Any) -> Any:
    """orjson's ``default`` hook: encode the types users expect; TypeError for the rest."""
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes_text(value)
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, PurePath):
        return str(value)
    try:
        # pydantic models, Decimal, Path, timedelta, IP addresses, generators, ...: the
        # same JSON that pydantic itself would produce (model_dump(mode="json")).
        return to_jsonable_python(value)
    except (PydanticSerializationError, ValueError, TypeError):
        raise TypeError(f"unencodable {_type_name(value)}") from None


class PayloadStatistics(NamedTuple):
    """What the encoder had to change in payloads (counted since the client started).

    Attributes:
        truncated: Payloads cut to their field or span budget.
        unencodable: Values replaced by a ``<unencodable: ...>`` marker.
        mask_errors: Payloads replaced by a marker because the masking hook raised.
    """

    truncated: int
    unencodable: int
    mask_errors: int


class PayloadEncoder:
    """Encodes payloads for one client: its masking hook, its budgets, its counters.

    Args:
        mask: Called with every payload before it is encoded; returns the payload to
            send (for removing secrets and personal data). None: no masking.
        max_field_bytes: The most bytes of UTF-8 one string value may take.
        max_span_bytes: The most bytes of JSON a span's params and result may take
            together (a quality payload on its own).
    """

    __slots__ = (
        "_warned",
        "mask",
        "mask_errors",
        "max_field_bytes",
        "max_span_bytes",
        "truncated",
        "unencodable",
    )

    def __init__(
        self,
        *,
        mask: Callable[[Any], Any] | None = None,
        max_field_bytes: int = DEFAULT_MAX_FIELD_BYTES,
        max_span_bytes: int = DEFAULT_MAX_SPAN_BYTES,
    ) -> None:
        self.mask = mask
        self.max_field_bytes = max_field_bytes
        self.max_span_bytes = max_span_bytes
        self.mask_errors = 0
        self.truncated = 0
        self.unencodable = 0
        self._warned: set[str] = set()

    def statistics(self) -> PayloadStatistics:
        """The encoder's counters."""
        return PayloadStatistics(self.truncated, self.unencodable, self.mask_errors)

    # -- the entry points ---------------------------------------------------------------

    def encode(self, data: Any, what: str, budget: int | None = None) -> str:
        """Return the JSON text of the payload ``data`` (an object), within ``budget`` bytes.

        Args:
            data: A dict, another mapping, or an object that encodes as one (a dataclass,
                a pydantic model).
            what: How the payload is named in errors and warnings ("span payload").
            budget: The most bytes the text may take (``max_span_bytes`` when None).

        Raises:
            TypeError: If ``data`` does not encode as a JSON object.
        """
        if self.mask is None:
            raw = self._encode_bytes(data)
        else:
            masked = self._masked(data, what)
            raw = self._encode_bytes(masked)
            if raw[:1] != b"{" and self._encode_bytes(data)[:1] == b"{":
                # The hook's mistake, not the caller's: never raised into the agent.
                failed = self._mask_failed(what, f"returned {type(masked).__name__}, not a dict")
                raw = _dumps(failed)
        if raw[:1] != b"{":
            raise TypeError(f"{what} must be a dict (a JSON object), got {type(data).__name__}")
        return self.fit(raw, what, budget)

    def fit(self, raw: bytes, what: str, budget: int | None = None) -> str:
        """Cut the encoded object ``raw`` to the field budget and ``budget``; return text."""
        limit = self.max_span_bytes if budget is None else budget
        if len(raw) <= self.max_field_bytes and len(raw) <= limit:
            return raw.decode()
        return self._cut(raw, what, limit)

    def cut_items(self, what: str, kept: int, dropped: int, limit: int) -> dict[str, Any]:
        """Count a stream whose items were cut to ``limit`` bytes; return the marker object
        that goes into its result (``{"_prefactor": {"replaced": "items_cut", ...}}``)."""
        self.truncated += 1
        self._warn_once(
            "items_cut",
            "a %s yielded more than its budget of %d bytes; %d items were kept and the "
            "%d after them left out (logged once; statistics().truncated counts them)",
            what,
            limit,
            kept,
            dropped,
        )
        return marker("items_cut", kept=kept, dropped=dropped, limit=limit)

    def jsonable(self, data: Any) -> Any:
        """Return ``data`` as JSON-compatible Python (markers for what cannot be encoded)."""
        return _loads(self._encode_bytes(data))

    # -- internals ------------------------------------------------------------------------

    def _encode_bytes(self, data: Any) -> bytes:
        try:
            return _dumps(data, default=_known, option=_OPTIONS)
        except TypeError:
            pass
        try:
            return _dumps(data, default=self._fallback, option=_OPTIONS)
        except TypeError:
            # Keys JSON cannot have, integers beyond 64 bits, cycles, deep nesting.
            return _dumps(self._sanitize(data, 0, set()), default=self._fallback, option=_OPTIONS)

    def _fallback(self, value: Any) -> Any:
        try:
            return _known(value)
        except TypeError:
            self.unencodable += 1
            self._warn_once(
                "unencodable",
                "a payload holds a value JSON cannot encode (%s); it is sent as a marker "
                "(logged once; statistics().unencodable counts them)",
                _type_name(value),
            )
            return _unencodable_text(value)

    def _sanitize(self, value: Any, depth: int, path: set[int]) -> Any:
        """A JSON-compatible copy of ``value`` (the slow path for what orjson refuses)."""
        if isinstance(value, str):
            return _valid_text(value)
        if isinstance(value, bool | type(None)):
            return value
        if isinstance(value, int) and not isinstance(value, Enum):
            return value if _INT_MIN <= value <= _INT_MAX else str(value)
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if depth >= MAX_DEPTH:
            self.unencodable += 1
            return f"<unencodable: nested deeper than {MAX_DEPTH} levels>"
        if isinstance(value, Mapping | list | tuple | set | frozenset):
            if id(value) in path:
                self.unencodable += 1
                return "<unencodable: circular reference>"
            path.add(id(value))
            try:
                if isinstance(value, Mapping):
                    return {
                        _valid_text(_key(k)): self._sanitize(v, depth + 1, path)
                        for k, v in value.items()
                    }
                return [self._sanitize(v, depth + 1, path) for v in value]
            finally:
                path.discard(id(value))
        try:
            converted = _known(value)
        except TypeError:
            return self._fallback(value)
        return self._sanitize(converted, depth + 1, path)

    def _masked(self, data: Any, what: str) -> Any:
        assert self.mask is not None
        try:
            masked = self.mask(data)
        except Exception as error:
            return self._mask_failed(what, f"raised {type(error).__name__}", type(error).__name__)
        return masked

    def _mask_failed(self, what: str, how: str, error: str = "TypeError") -> dict[str, Any]:
        self.mask_errors += 1
        self._warn_once(
            "mask",
            "the masking hook %s on the %s; the payload is replaced by a marker "
            "(logged once; statistics().mask_errors counts them)",
            how,
            what,
        )
        return marker("mask_failed", error=error)

    def _cut(self, raw: bytes, what: str, limit: int) -> str:
        doc = _loads(raw)
        field = min(self.max_field_bytes, limit)
        while True:
            changed = [0]
            cut = _cut_strings(doc, field, changed)
            if not changed[0] and len(raw) <= limit:
                return raw.decode()  # large, but no string over budget: nothing to cut
            text = _dumps(cut, option=_OPTIONS)
            if len(text) <= limit:
                self.truncated += 1
                self._warn_once(
                    "truncated",
                    "a %s of %d bytes was cut to its budget (max_field_bytes=%d, "
                    "max_span_bytes=%d); markers say what was cut (logged once; "
                    "statistics().truncated counts them)",
                    what,
                    len(raw),
                    self.max_field_bytes,
                    self.max_span_bytes,
                )
                return text.decode()
            if field <= 64:
                break
            field //= 4
        self.truncated += 1
        self._warn_once(
            "too_large",
            "a %s of %d bytes does not fit its budget of %d bytes even with its strings cut; "
            "it is replaced by a marker (logged once; statistics().truncated counts them)",
            what,
            len(raw),
            limit,
        )
        preview = raw[:_PREVIEW_CHARS].decode("utf-8", "ignore")
        return _dumps(marker("too_large", bytes=len(raw), limit=limit, preview=preview)).decode()

    def _warn_once(self, kind: str, message: str, *args: object) -> None:
        if kind in self._warned:
            logger.debug(message, *args)
            return
        self._warned.add(kind)
        logger.warning(message, *args)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, Enum):
        return str(key.value)
    return str(key)


def _valid_text(text: str) -> str:
    """``text`` as valid Unicode: a lone surrogate (which UTF-8 cannot carry) becomes
    U+FFFD, a surrogate pair the character it stands for."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _cut_strings(value: Any, budget: int, changed: list[int]) -> Any:
    """A copy of the JSON value with every string over ``budget`` bytes cut and marked;
    ``changed[0]`` counts the strings cut."""
    if isinstance(value, str):
        if len(value) * 4 <= budget:
            return value
        data = value.encode("utf-8", "surrogatepass")
        if len(data) <= budget:
            return value
        changed[0] += 1
        kept = data[: max(budget - 48, 0)].decode("utf-8", "ignore")
        return f"{kept}…<truncated {len(data) - len(kept.encode())} of {len(data)} bytes>"
    if isinstance(value, dict):
        return {k: _cut_strings(v, budget, changed) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_strings(v, budget, changed) for v in value]
    return value


_DEFAULT = PayloadEncoder()
_SIZER = PayloadEncoder()
_SIZER._warned.add("unencodable")  # it only measures: the real encode warns


def encoded_size(value: Any) -> int:
    """Bytes of the JSON text ``value`` encodes to, before any budget; never raises.

    Counts nothing: a stream's items are measured here when kept and encoded for real,
    with the client's encoder, when its span finishes.
    """
    try:
        return len(_dumps(value, default=_known, option=_OPTIONS))
    except TypeError:
        return len(_SIZER._encode_bytes(value))


def to_jsonable(value: Any) -> Any:
    """Return ``value`` as JSON-compatible Python, encoded as ``encode_value`` would.

    Never raises: what cannot be encoded becomes a marker (no masking, no budgets).
    """
    return _DEFAULT.jsonable(value)


def encode_value(value: Any) -> str:
    """Return the compact JSON text of any value; never raises (markers instead)."""
    return _DEFAULT._encode_bytes(value).decode()
