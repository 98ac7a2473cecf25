"""Carrying the current context (agent instance, span) into threads.

``asyncio.to_thread`` copies the caller's context into the worker thread; a plain
``concurrent.futures.ThreadPoolExecutor`` and a bare ``threading.Thread`` do not, so code
they run sees no current instance and ``@trace`` records nothing there. These two helpers
carry it.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["ContextThreadPoolExecutor", "with_current_context"]

P = ParamSpec("P")
R = TypeVar("R")


def with_current_context(func: Callable[P, R]) -> Callable[P, R]:
    """Return ``func`` bound to the current context (instance and span included).

    Each call runs in a fresh copy of the context captured here, so the result can be
    called from any thread, even from several at once (``pool.map``), and spans made
    inside nest under the span that was current when it was wrapped.
    """
    captured = contextvars.copy_context()

    @functools.wraps(func)
    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(func, *args, **kwargs)

    return bound


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose tasks run in the context they were submitted from.

    A plain ``ThreadPoolExecutor`` runs tasks in the worker thread's own context, where
    no agent instance or span is current; this one copies the submitter's context, as
    ``asyncio.to_thread`` does, so ``@trace`` functions submitted inside a span nest
    under it. ``map`` and ``loop.run_in_executor`` go through ``submit`` and carry it too.

    Example::

        with ContextThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(fetch, urls))
    """

    def submit(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Future[R]:
        context = contextvars.copy_context()
        return super().submit(functools.partial(context.run, fn, *args, **kwargs))
