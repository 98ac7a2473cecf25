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

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from prefactor_core._trace_call import Call, Options, open_call, warn_once
from prefactor_core._trace_streams import wrap_async_generator, wrap_generator
from prefactor_core._traced_types import declare

__all__ = ["trace"]

F = TypeVar("F", bound=Callable[..., Any])


def _wrap_function(func: Callable[..., Any], options: Options) -> Callable[..., Any]:
    @functools.wraps(func)
    def traced(*args: Any, **kwargs: Any) -> Any:
        opened = open_call(options, args, kwargs)
        if opened is None:
            return func(*args, **kwargs)
        call, params = opened
        try:
            call.emit(call.start(params))
        except Exception as error:
            call.abandon()
            warn_once(f"start a span of {options.name}", error)
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
    call: Call, options: Options, error: BaseException | None, result: dict[str, Any] | None
) -> None:
    try:
        call.emit(call.finish(error, result))
    except Exception as failure:
        warn_once(f"finish a span of {options.name}", failure)


def _wrap_coroutine(func: Callable[..., Any], options: Options) -> Callable[..., Any]:
    @functools.wraps(func)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        opened = open_call(options, args, kwargs)
        if opened is None:
            return await func(*args, **kwargs)
        call, params = opened
        try:
            await call.enqueue(call.start(params))
        except Exception as error:
            call.abandon()
            warn_once(f"start a span of {options.name}", error)
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
    call: Call, options: Options, error: BaseException | None, result: dict[str, Any] | None
) -> None:
    try:
        await call.enqueue(call.finish(error, result))
    except Exception as failure:
        warn_once(f"finish a span of {options.name}", failure)


def _decorate(func: Any, options_for: Callable[[Callable[..., Any]], Options]) -> Any:
    if isinstance(func, (classmethod, staticmethod)):
        return type(func)(_decorate(func.__func__, options_for))
    if not callable(func):
        raise TypeError(f"@trace needs a function, got {type(func).__name__}")
    options = options_for(func)
    if inspect.isasyncgenfunction(func):
        return wrap_async_generator(func, options)
    if inspect.iscoroutinefunction(func):
        return _wrap_coroutine(func, options)
    if inspect.isgeneratorfunction(func):
        return wrap_generator(func, options)
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

    def options_for(func: Callable[..., Any]) -> Options:
        span_type = name if isinstance(name, str) else _default_name(func)
        declare(span_type, title or str(getattr(func, "__qualname__", span_type)))
        return Options(
            func, span_type, capture_input, capture_output, process_inputs, process_outputs, reduce
        )

    if name is not None and not isinstance(name, str):
        if callable(name) or isinstance(name, (classmethod, staticmethod)):
            return _decorate(name, options_for)
        raise TypeError(f"@trace's span type must be a string, got {type(name).__name__}")
    if name is not None and not name:
        raise ValueError("@trace's span type must be a non-empty string")
    return lambda func: _decorate(func, options_for)
