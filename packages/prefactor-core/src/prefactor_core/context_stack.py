"""The stack of open spans of the current asyncio task."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["SpanContextStack"]

# A tuple, never mutated in place: a task created inside a span copies the context and
# so sees its parent's stack, and whatever it pushes stays its own.
_STACK: ContextVar[tuple[str, ...]] = ContextVar("prefactor_span_stack", default=())


class SpanContextStack:
    """The ids of the spans open in the current context, outermost first.

    The top of the stack is the innermost open span, the default parent of the next
    span. The stack lives in a ``contextvars.ContextVar``, so every asyncio task has
    its own: concurrent tasks never see each other's spans, and a task started inside
    a span inherits that span as its parent.

    Example::

        SpanContextStack.push("span-1")
        SpanContextStack.push("span-2")
        assert SpanContextStack.peek() == "span-2"
        SpanContextStack.pop()
        assert SpanContextStack.get_stack() == ["span-1"]
    """

    @classmethod
    def get_stack(cls) -> list[str]:
        """Return the open span ids, outermost first (a copy)."""
        return list(_STACK.get())

    @classmethod
    def push(cls, span_id: str) -> None:
        """Make ``span_id`` the innermost open span."""
        _STACK.set((*_STACK.get(), span_id))

    @classmethod
    def pop(cls) -> str | None:
        """Remove and return the innermost span id, or None if the stack is empty."""
        stack = _STACK.get()
        if not stack:
            return None
        _STACK.set(stack[:-1])
        return stack[-1]

    @classmethod
    def remove(cls, span_id: str) -> None:
        """Remove ``span_id`` wherever it is (spans may close out of order)."""
        stack = _STACK.get()
        if stack and stack[-1] == span_id:
            _STACK.set(stack[:-1])
        elif span_id in stack:
            position = len(stack) - 1 - stack[::-1].index(span_id)
            _STACK.set(stack[:position] + stack[position + 1 :])

    @classmethod
    def peek(cls) -> str | None:
        """Return the innermost span id without removing it, or None."""
        stack = _STACK.get()
        return stack[-1] if stack else None

    @classmethod
    def depth(cls) -> int:
        """Return how many spans are open in this context."""
        return len(_STACK.get())

    @classmethod
    def is_empty(cls) -> bool:
        """Return True when no span is open in this context."""
        return not _STACK.get()
