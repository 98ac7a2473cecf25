"""One traced call: binding its arguments, shaping its result, driving its span.

Shared by ``tracing`` (functions and coroutines) and ``_trace_streams`` (generators).
Everything here only does local work, and nothing here raises into the user's function:
``_open`` returns None when there is no span to record.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any, cast

from prefactor_core._payload import PayloadEncoder
from prefactor_core.current import _INSTANCE
from prefactor_core.managers.agent_instance import AgentInstanceHandle
from prefactor_core.operations import Operation
from prefactor_core.span_context import SpanContext

__all__ = ["Call", "Options", "open_call", "warn_once"]

logger = logging.getLogger("prefactor_core")

_EMPTY = inspect.Parameter.empty
_warned: set[str] = set()


def warn_once(what: str, error: BaseException) -> None:
    if what not in _warned:
        _warned.add(what)
        logger.warning("@trace could not %s: %r (the function runs on; logged once)", what, error)


class _Binder:
    """Turns a call's arguments into ``{parameter name: value}``, defaults applied."""

    __slots__ = ("_defaults", "_drop", "_names", "_signature", "_simple")

    def __init__(self, func: Callable[..., Any]) -> None:
        try:
            self._signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):  # some builtins and C callables have none
            self._signature = None
        params = list(self._signature.parameters.values()) if self._signature else []
        self._drop = params[0].name if params and params[0].name in ("self", "cls") else None
        self._names = tuple(p.name for p in params)
        self._defaults = {p.name: p.default for p in params if p.default is not _EMPTY}
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        self._simple = self._signature is not None and all(p.kind in kinds for p in params)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        names = self._names
        if self._simple and len(args) <= len(names):
            bound = dict(zip(names, args, strict=False))
            if len(bound) < len(names) or kwargs:
                defaults = self._defaults
                for name in names[len(args) :]:
                    if name in kwargs:
                        bound[name] = kwargs[name]
                    elif name in defaults:
                        bound[name] = defaults[name]
                if len(kwargs) + len(args) > len(bound) or any(
                    name in kwargs for name in names[: len(args)]
                ):
                    return self._slow(args, kwargs)
        else:
            return self._slow(args, kwargs)
        if self._drop is not None:
            bound.pop(self._drop, None)
        return bound

    def _slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._signature is None:
            return {"args": list(args), "kwargs": kwargs}
        try:
            arguments = self._signature.bind(*args, **kwargs)
        except TypeError:
            return {}  # the call itself raises the precise error
        arguments.apply_defaults()
        bound = dict(arguments.arguments)
        if self._drop is not None:
            bound.pop(self._drop, None)
        return bound


class Options:
    """One decorated function's settings."""

    __slots__ = (
        "binder",
        "capture_input",
        "capture_output",
        "name",
        "process_inputs",
        "process_outputs",
        "reduce",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        name: str,
        capture_input: bool,
        capture_output: bool,
        process_inputs: Callable[[dict[str, Any]], Any] | None,
        process_outputs: Callable[[Any], Any] | None,
        reduce: Callable[[list[Any]], Any] | None,
    ) -> None:
        self.name = name
        self.binder = _Binder(func)
        self.capture_input = capture_input
        self.capture_output = capture_output
        self.process_inputs = process_inputs
        self.process_outputs = process_outputs
        self.reduce = reduce

    def params(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if not self.capture_input:
            return {}
        params = self.binder.bind(args, kwargs)
        if self.process_inputs is not None:
            try:
                processed = self.process_inputs(params)
            except Exception as error:
                warn_once(f"run process_inputs of {self.name}", error)
                return {}
            if isinstance(processed, dict):
                return processed
            return {"input": processed}
        return params

    def result(self, value: Any) -> dict[str, Any] | None:
        if not self.capture_output:
            return None
        if self.process_outputs is not None:
            try:
                value = self.process_outputs(value)
            except Exception as error:
                warn_once(f"run process_outputs of {self.name}", error)
                return None
        if isinstance(value, dict):
            return value
        return {"output": value}

    def stream_result(self, items: list[Any]) -> dict[str, Any] | None:
        if not self.capture_output:
            return None
        if self.reduce is not None:
            try:
                return self.result(self.reduce(items))
            except Exception as error:
                warn_once(f"run reduce of {self.name}", error)
                return None
        return self.result(items)


class Call:
    """The span of one call: opened, started and finished through the sync core."""

    __slots__ = ("client", "ctx")

    def __init__(self, handle: AgentInstanceHandle, options: Options) -> None:
        self.client = cast(Any, handle._client)  # PrefactorCoreClient
        self.ctx: SpanContext = self.client.span(handle.id, options.name)

    def start(self, params: dict[str, Any]) -> list[Operation] | None:
        # Raw values go in as they are: the span encodes them with the client's encoder
        # (masking hook, size budgets, markers for what cannot be encoded), like any span.
        ctx = self.ctx
        ctx._enter_now()
        return ctx._start_now(params, None)

    def finish(
        self, error: BaseException | None, result: dict[str, Any] | None
    ) -> list[Operation] | None:
        ctx = self.ctx
        if error is None and result is not None:
            ctx._result = result
        return ctx._exit_now(error)

    @property
    def encoder(self) -> PayloadEncoder:
        """The client's payload encoder (its budgets and counters)."""
        return self.ctx._table.encoder

    def result_budget(self) -> int:
        """The bytes left for the span's result once its params are encoded."""
        ctx = self.ctx
        return ctx._table.span_budget - ctx._params_bytes

    def abandon(self) -> None:
        """Forget a span that could not start: off the stack and out of the open spans,
        so it never becomes a parent that nothing will release."""
        ctx = self.ctx
        if ctx.id:
            ctx._table.leave(ctx.id)
            ctx._table.close(ctx)

    def emit(self, leftover: list[Operation] | None) -> None:
        if leftover:
            self.client._emit_all(leftover)

    async def enqueue(self, leftover: list[Operation] | None) -> None:
        if leftover:
            await self.ctx._table.enqueue_all(leftover)


def open_call(
    options: Options, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Call, dict[str, Any]] | None:
    """The span of this call, or None outside an instance (or if telemetry cannot)."""
    handle = _INSTANCE.get()
    if handle is None or handle._finished:
        return None
    allowed = handle._span_types
    if allowed and options.name not in allowed:
        # The API would refuse it (and a refusal must not cost the run its telemetry).
        warn_once(
            f"record {options.name} (not in a run's schema version)",
            LookupError(
                f"span type {options.name!r} is not in the instance's schema version; "
                "decorate before creating the instance, or register the type"
            ),
        )
        return None
    try:
        return Call(handle, options), options.params(args, kwargs)
    except Exception as error:
        warn_once(f"open a span of {options.name}", error)
        return None
