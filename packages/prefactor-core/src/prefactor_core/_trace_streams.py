"""``@trace`` for generators and async generators (streams).

Each step of a stream's body runs inside a ``contextvars.Context`` copied where the
stream was called, with the stream's span on top: it nests where it was called, whichever
task or thread consumes it, and the consumer's context is never touched (no token ever
crosses a context). The span opens at the first step (a stream never iterated records
nothing and leaves nothing open) and finishes exactly once: exhausted, failed, closed
early (``break``, ``close()``, ``aclose()``) or collected.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from prefactor_core._payload import encoded_size
from prefactor_core._trace_call import Call, Options, open_call, warn_once
from prefactor_core.current import _INSTANCE

__all__ = ["wrap_async_generator", "wrap_generator"]


# Bytes of the result around the items (``{"output": [...]}`` and a cut marker), kept
# out of the items' share of the span's budget.
_RESULT_OVERHEAD = 256


class _Stream:
    """A generator's span and its own context (where each step of its body runs)."""

    __slots__ = ("args", "call", "context", "dropped", "items", "kwargs", "options", "room")

    def __init__(self, options: Options, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # Copied at the call, so the stream nests where it was called, wherever consumed.
        self.context = contextvars.copy_context()
        self.options = options
        self.args = args
        self.kwargs = kwargs
        self.call: Call | None = None
        self.items: list[Any] = []
        self.room = 0  # bytes of JSON the kept items may still take; -1 once cut
        self.dropped = 0  # items yielded after the cut

    def begin(self) -> None:
        """Open and start the span (at the first step, inside the stream's context)."""
        opened = self.context.run(open_call, self.options, self.args, self.kwargs)
        self.args, self.kwargs = (), {}
        if opened is None:
            return
        call, params = opened
        try:
            call.emit(self.context.run(call.start, params))
        except Exception as error:
            self.context.run(call.abandon)
            warn_once(f"start a span of {self.options.name}", error)
            return
        self.call = call
        self.room = max(call.result_budget() - _RESULT_OVERHEAD, 0)

    def add(self, item: Any) -> None:
        if self.call is None or not self.options.capture_output:
            return
        if self.room >= 0:
            size = encoded_size(item) + 1  # and a comma
            if size <= self.room:
                self.room -= size
                self.items.append(item)
                return
            self.room = -1  # the items kept stay a prefix of the stream
        self.dropped += 1

    def end(self, error: BaseException | None) -> None:
        """Finish the span once: ``error`` None means exhausted or closed early."""
        call, self.call = self.call, None
        if call is None:
            return
        result = None if error is not None else self.options.stream_result(self.items)
        if self.dropped and result is not None:
            cut = call.encoder.cut_items(
                "stream's items", len(self.items), self.dropped, call.result_budget()
            )
            result = {**result, **cut}
        self.items = []
        try:
            call.emit(self.context.run(call.finish, error, result))
        except Exception as failure:
            warn_once(f"finish a span of {self.options.name}", failure)


def wrap_generator(
    func: Callable[..., Generator[Any, Any, Any]], options: Options
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


def wrap_async_generator(
    func: Callable[..., AsyncGenerator[Any, Any]], options: Options
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
