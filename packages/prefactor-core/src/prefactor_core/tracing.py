"""``@trace``: a span per call of a function, in the current agent instance.

The decorated function runs in the current agent instance (``prefactor_core.current``)
and nests under the current span, hand-written or decorated; outside any instance it runs
unchanged. Every call does only local work: bind the arguments, queue the span's create
and finish. What this module guarantees, and how:

* **No token ever crosses a context.** Current span and instance live in ContextVars and
  are restored by value, never with ``ContextVar.reset(token)``, which fails when the
  token was made in another context.
* **Generators run in their own context.** A generator's (or async generator's) body runs
  each step inside a ``contextvars.Context`` copied where it was called, with its span on
  top: it nests where it was called, whichever task or thread consumes it, and the
  consumer's context is never touched.
* **Spans always finish.** Return, exception (``failed``, re-raised unchanged),
  cancellation (``cancelled``), a generator exhausted, closed early (``break``,
  ``close()``/``aclose()``) or collected: each finishes the span exactly once.
* **Telemetry never breaks the function.** An error of the SDK while recording is logged
  and the function runs on.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, cast, overload

from prefactor_core._engine.wire import _OPTIONS, _dumps
from prefactor_core._traced_types import declare
from prefactor_core.context_stack import SpanContextStack
from prefactor_core.current import _INSTANCE
from prefactor_core.managers.agent_instance import AgentInstanceHandle
from prefactor_core.operations import Operation
from prefactor_core.span_context import SpanContext

__all__ = ["trace"]

logger = logging.getLogger("prefactor_core")

F = TypeVar("F", bound=Callable[..., Any])

_EMPTY = inspect.Parameter.empty
_warned: set[str] = set()


def _warn_once(what: str, error: BaseException) -> None:
    if what not in _warned:
        _warned.add(what)
        logger.warning("@trace could not %s: %r (the function runs on; logged once)", what, error)


def _safe(payload: dict[str, Any]) -> dict[str, Any]:
    """``payload`` with each value that JSON cannot take replaced by its type's name."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        try:
            _dumps(value, option=_OPTIONS)
            out[str(key)] = value
        except (TypeError, ValueError):
            out[str(key)] = f"<{type(value).__name__}>"
    return out


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


class _Options:
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
                _warn_once(f"run process_inputs of {self.name}", error)
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
                _warn_once(f"run process_outputs of {self.name}", error)
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
                _warn_once(f"run reduce of {self.name}", error)
                return None
        return self.result(items)


class _Call:
    """The span of one call: opened, started and finished through the sync core."""

    __slots__ = ("client", "ctx")

    def __init__(self, handle: AgentInstanceHandle, options: _Options) -> None:
        self.client = cast(Any, handle._client)  # PrefactorCoreClient
        self.ctx: SpanContext = self.client.span(handle.id, options.name)

    def start(self, params: dict[str, Any]) -> list[Operation] | None:
        ctx = self.ctx
        ctx._enter_now()
        try:
            return ctx._start_now(params, None)
        except TypeError:
            return ctx._start_now(_safe(params), None)

    def finish(
        self, error: BaseException | None, result: dict[str, Any] | None
    ) -> list[Operation] | None:
        ctx = self.ctx
        if error is None and result is not None:
            ctx._result = result
        try:
            return ctx._exit_now(error)
        except TypeError:
            ctx._result = _safe(ctx._result or {})
            return ctx._exit_now(error)

    def abandon(self) -> None:
        """Forget a span that could not start: off the stack and out of the open spans,
        so it never becomes a parent that nothing will release."""
        ctx = self.ctx
        if ctx.id:
            SpanContextStack.remove(ctx.id)
            ctx._manager._close(ctx)

    def emit(self, leftover: list[Operation] | None) -> None:
        if leftover:
            self.client._emit_all(leftover)

    async def enqueue(self, leftover: list[Operation] | None) -> None:
        if leftover:
            await self.ctx._manager._enqueue_all(leftover)


def _open(
    options: _Options, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[_Call, dict[str, Any]] | None:
    """The span of this call, or None outside an instance (or if telemetry cannot)."""
    handle = _INSTANCE.get()
    if handle is None or handle._finished:
        return None
    try:
        return _Call(handle, options), options.params(args, kwargs)
    except Exception as error:
        _warn_once(f"open a span of {options.name}", error)
        return None


def _wrap_function(func: Callable[..., Any], options: _Options) -> Callable[..., Any]:
    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Any:
        opened = _open(options, args, kwargs)
        if opened is None:
            return func(*args, **kwargs)
        call, params = opened
        try:
            call.emit(call.start(params))
        except Exception as error:
            call.abandon()
            _warn_once(f"start a span of {options.name}", error)
            return func(*args, **kwargs)
        try:
            value = func(*args, **kwargs)
        except BaseException as error:
            _finish_sync(call, options, error, None)
            raise
        _finish_sync(call, options, None, options.result(value))
        return value

    return traced


def _finish_sync(
    call: _Call, options: _Options, error: BaseException | None, result: dict[str, Any] | None
) -> None:
    try:
        call.emit(call.finish(error, result))
    except Exception as failure:
        _warn_once(f"finish a span of {options.name}", failure)


def _wrap_coroutine(func: Callable[..., Any], options: _Options) -> Callable[..., Any]:
    @functools.wraps(func)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        opened = _open(options, args, kwargs)
        if opened is None:
            return await func(*args, **kwargs)
        call, params = opened
        try:
            await call.enqueue(call.start(params))
        except Exception as error:
            call.abandon()
            _warn_once(f"start a span of {options.name}", error)
            return await func(*args, **kwargs)
        try:
            value = await func(*args, **kwargs)
        except BaseException as error:
            await _finish_async(call, options, error, None)
            raise
        await _finish_async(call, options, None, options.result(value))
        return value

    return traced


async def _finish_async(
    call: _Call, options: _Options, error: BaseException | None, result: dict[str, Any] | None
) -> None:
    try:
        await call.enqueue(call.finish(error, result))
    except Exception as failure:
        _warn_once(f"finish a span of {options.name}", failure)


class _Stream:
    """A generator's span and its own context (where each step of its body runs)."""

    __slots__ = ("args", "call", "context", "items", "kwargs", "options")

    def __init__(self, options: _Options, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # Copied at the call, so the stream nests where it was called, wherever consumed.
        self.context = contextvars.copy_context()
        self.options = options
        self.args = args
        self.kwargs = kwargs
        self.call: _Call | None = None
        self.items: list[Any] = []

    def begin(self) -> None:
        """Open and start the span (at the first step, inside the stream's context)."""
        opened = self.context.run(_open, self.options, self.args, self.kwargs)
        self.args, self.kwargs = (), {}
        if opened is None:
            return
        call, params = opened
        try:
            call.emit(self.context.run(call.start, params))
        except Exception as error:
            self.context.run(call.abandon)
            _warn_once(f"start a span of {self.options.name}", error)
            return
        self.call = call

    def add(self, item: Any) -> None:
        if self.call is not None and self.options.capture_output:
            self.items.append(item)

    def end(self, error: BaseException | None) -> None:
        """Finish the span once: ``error`` None means exhausted or closed early."""
        call, self.call = self.call, None
        if call is None:
            return
        result = None if error is not None else self.options.stream_result(self.items)
        try:
            call.emit(self.context.run(call.finish, error, result))
        except Exception as failure:
            _warn_once(f"finish a span of {self.options.name}", failure)


def _wrap_generator(
    func: Callable[..., Generator[Any, Any, Any]], options: _Options
) -> Callable[..., Any]:
    # A plain function that returns a generator: the stream's context must be copied at
    # the call (where it nests), and a generator function's body only runs at next().
    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        if _INSTANCE.get() is None:
            return func(*args, **kwargs)
        stream = _Stream(options, args, kwargs)
        return _traced_generator(stream, func(*args, **kwargs))

    return traced


def _traced_generator(stream: _Stream, inner: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    run = stream.context.run
    stream.begin()
    sent: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            try:
                if thrown is None:
                    item = run(inner.send, sent)
                else:
                    error, thrown = thrown, None
                    item = run(inner.throw, error)
            except StopIteration as stop:
                stream.end(None)
                return stop.value
            stream.add(item)
            try:
                sent = yield item
            except GeneratorExit:
                run(inner.close)
                stream.end(None)  # closed early (break, close(), garbage collection)
                raise
            except BaseException as error:
                thrown, sent = error, None
    except BaseException as error:
        stream.end(error)
        raise


class _InContext:
    """Await ``awaitable`` with every step of it run inside ``context``."""

    __slots__ = ("_awaitable", "_context")

    def __init__(self, context: contextvars.Context, awaitable: Any) -> None:
        self._context = context
        self._awaitable = awaitable

    def __await__(self) -> Generator[Any, Any, Any]:
        run = self._context.run
        steps = self._awaitable.__await__()
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                if thrown is None:
                    out = run(steps.send, sent)
                else:
                    error, thrown = thrown, None
                    out = run(steps.throw, error)
            except StopIteration as stop:
                return stop.value
            try:
                sent = yield out
            except BaseException as error:
                thrown, sent = error, None


def _wrap_async_generator(
    func: Callable[..., AsyncGenerator[Any, Any]], options: _Options
) -> Callable[..., Any]:
    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        if _INSTANCE.get() is None:
            return func(*args, **kwargs)
        stream = _Stream(options, args, kwargs)
        return _traced_async_generator(stream, func(*args, **kwargs))

    return traced


async def _traced_async_generator(
    stream: _Stream, inner: AsyncGenerator[Any, Any]
) -> AsyncGenerator[Any, Any]:
    context = stream.context
    stream.begin()
    sent: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            try:
                if thrown is None:
                    item = await _InContext(context, inner.asend(sent))
                else:
                    error, thrown = thrown, None
                    item = await _InContext(context, inner.athrow(error))
            except StopAsyncIteration:
                stream.end(None)
                return
            stream.add(item)
            try:
                sent = yield item
            except GeneratorExit:
                stream.end(None)  # closed early (aclose(), garbage collection)
                await _InContext(context, inner.aclose())
                raise
            except BaseException as error:
                thrown, sent = error, None
    except BaseException as error:
        stream.end(error)
        raise


def _decorate(func: Any, options_for: Callable[[Callable[..., Any]], _Options]) -> Any:
    if isinstance(func, (classmethod, staticmethod)):
        return type(func)(_decorate(func.__func__, options_for))
    if not callable(func):
        raise TypeError(f"@trace needs a function, got {type(func).__name__}")
    options = options_for(func)
    if inspect.isasyncgenfunction(func):
        return _wrap_async_generator(func, options)
    if inspect.iscoroutinefunction(func):
        return _wrap_coroutine(func, options)
    if inspect.isgeneratorfunction(func):
        return _wrap_generator(func, options)
    return _wrap_function(func, options)


def _default_name(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or "function"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", "call")
    return f"{module}:{qualname}"


@overload
def trace(name: F, /) -> F: ...


@overload
def trace(
    name: str | None = None,
    /,
    *,
    title: str | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    process_inputs: Callable[[dict[str, Any]], Any] | None = None,
    process_outputs: Callable[[Any], Any] | None = None,
    reduce: Callable[[list[Any]], Any] | None = None,
) -> Callable[[F], F]: ...


def trace(
    name: Any = None,
    /,
    *,
    title: str | None = None,
    capture_input: bool = True,
    capture_output: bool = True,
    process_inputs: Callable[[dict[str, Any]], Any] | None = None,
    process_outputs: Callable[[Any], Any] | None = None,
    reduce: Callable[[list[Any]], Any] | None = None,
) -> Any:
    """Record each call of a function as a span of the current agent instance.

    Works on functions, coroutine functions, generators and async generators, methods
    included (``self``/``cls`` are left out of the params). Use it bare (``@trace``, the
    span type is ``module:qualified.name``) or with a span type (``@trace("agent:tool")``).

    The span's params are the call's arguments by parameter name, defaults applied; its
    result is the return value (a dict is the result as is, anything else becomes
    ``{"output": value}``), or for generators the list of yielded items (or ``reduce`` of
    it). An exception finishes the span as ``failed`` with the exception's type and
    message and propagates unchanged; ``asyncio.CancelledError`` finishes it as
    ``cancelled``. Outside any agent instance the function runs unchanged.

    A span type not in the client's schema registry is registered with a permissive
    schema when the client builds an instance's schema version, so decorate before
    creating the instance.

    Example::

        @trace("agent:tool")
        def search(query: str, limit: int = 5) -> list[str]:
            return index.search(query, limit)

    Args:
        name: The span type; ``module:qualified.name`` of the function when omitted.
        title: The span type's title when it is registered here (the function's name).
        capture_input: Record the arguments (an empty params object when False).
        capture_output: Record the return value or yielded items.
        process_inputs: Maps the arguments dict to what is recorded (a dict, or any
            value, recorded as ``{"input": value}``); for redaction and trimming.
        process_outputs: Maps the return value (after ``reduce``) to what is recorded.
        reduce: For generators: maps the list of yielded items to the recorded output
            (e.g. ``"".join`` for streamed text).

    Raises:
        TypeError: If what is decorated is not callable, or ``name`` is not a string.
    """

    def options_for(func: Callable[..., Any]) -> _Options:
        span_type = name if isinstance(name, str) else _default_name(func)
        declare(span_type, title or str(getattr(func, "__qualname__", span_type)))
        return _Options(
            func, span_type, capture_input, capture_output, process_inputs, process_outputs, reduce
        )

    if name is not None and not isinstance(name, str):
        if callable(name) or isinstance(name, (classmethod, staticmethod)):
            return _decorate(name, options_for)
        raise TypeError(f"@trace's span type must be a string, got {type(name).__name__}")
    if name is not None and not name:
        raise ValueError("@trace's span type must be a non-empty string")
    return lambda func: _decorate(func, options_for)
