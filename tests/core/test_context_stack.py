"""Tests for prefactor_core.context_stack: the per-task stack of open spans."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from prefactor_core import SpanContextStack


def _clear() -> None:
    while SpanContextStack.pop() is not None:
        pass


@pytest.fixture(name="empty_stack", autouse=True)
def fixture_empty_stack() -> Iterator[None]:
    """Start and end every test with an empty stack (sync tests share one context)."""
    _clear()
    yield
    _clear()


def test_seed_example() -> None:
    """The example from the SpanContextStack documentation holds."""
    SpanContextStack.push("span-1")
    assert SpanContextStack.peek() == "span-1"

    SpanContextStack.push("span-2")
    assert SpanContextStack.peek() == "span-2"

    SpanContextStack.pop()
    assert SpanContextStack.peek() == "span-1"

    SpanContextStack.pop()
    assert SpanContextStack.peek() is None


def test_empty_stack_state() -> None:
    """An empty stack has depth 0, no top, an empty list and reports itself empty."""
    assert SpanContextStack.depth() == 0
    assert SpanContextStack.peek() is None
    assert SpanContextStack.get_stack() == []
    assert SpanContextStack.is_empty() is True


def test_pop_on_empty_stack_returns_none() -> None:
    """Popping an empty stack returns None and leaves it empty."""
    assert SpanContextStack.pop() is None
    assert SpanContextStack.is_empty()


def test_push_and_pop_are_lifo() -> None:
    """Pop returns the ids in the reverse order of their pushes."""
    for span_id in ("a", "b", "c"):
        SpanContextStack.push(span_id)
    assert [SpanContextStack.pop() for _ in range(4)] == ["c", "b", "a", None]


def test_depth_and_is_empty_follow_pushes_and_pops() -> None:
    """depth() counts open spans and is_empty() is False while any is open."""
    SpanContextStack.push("a")
    SpanContextStack.push("b")
    assert SpanContextStack.depth() == 2
    assert SpanContextStack.is_empty() is False
    SpanContextStack.pop()
    assert SpanContextStack.depth() == 1
    SpanContextStack.pop()
    assert SpanContextStack.depth() == 0
    assert SpanContextStack.is_empty() is True


def test_peek_does_not_remove() -> None:
    """peek() returns the innermost id and leaves the stack unchanged."""
    SpanContextStack.push("outer")
    SpanContextStack.push("inner")
    assert SpanContextStack.peek() == "inner"
    assert SpanContextStack.peek() == "inner"
    assert SpanContextStack.depth() == 2


def test_get_stack_is_outermost_first() -> None:
    """get_stack() lists the open spans from outermost to innermost."""
    for span_id in ("root", "child", "grandchild"):
        SpanContextStack.push(span_id)
    assert SpanContextStack.get_stack() == ["root", "child", "grandchild"]


def test_get_stack_returns_a_copy() -> None:
    """Mutating the list get_stack() returned does not change the stack."""
    SpanContextStack.push("a")
    snapshot = SpanContextStack.get_stack()
    snapshot.append("intruder")
    snapshot.remove("a")
    assert SpanContextStack.get_stack() == ["a"]


def test_remove_top() -> None:
    """remove() of the innermost id behaves like pop."""
    SpanContextStack.push("a")
    SpanContextStack.push("b")
    SpanContextStack.remove("b")
    assert SpanContextStack.get_stack() == ["a"]


def test_remove_from_the_middle() -> None:
    """remove() takes out a span that closed out of order and keeps the others in order."""
    for span_id in ("a", "b", "c"):
        SpanContextStack.push(span_id)
    SpanContextStack.remove("b")
    assert SpanContextStack.get_stack() == ["a", "c"]
    assert SpanContextStack.peek() == "c"


def test_remove_bottom() -> None:
    """remove() of the outermost id keeps the inner ones."""
    for span_id in ("a", "b", "c"):
        SpanContextStack.push(span_id)
    SpanContextStack.remove("a")
    assert SpanContextStack.get_stack() == ["b", "c"]


def test_remove_unknown_id_is_a_no_op() -> None:
    """remove() of an id that is not open changes nothing and does not raise."""
    SpanContextStack.push("a")
    SpanContextStack.remove("missing")
    assert SpanContextStack.get_stack() == ["a"]


def test_remove_on_empty_stack_is_a_no_op() -> None:
    """remove() on an empty stack does not raise."""
    SpanContextStack.remove("missing")
    assert SpanContextStack.is_empty()


def test_remove_duplicate_id_removes_innermost_occurrence() -> None:
    """With the same id open twice, remove() takes out only the innermost one."""
    for span_id in ("x", "a", "x", "b"):
        SpanContextStack.push(span_id)
    SpanContextStack.remove("x")
    assert SpanContextStack.get_stack() == ["x", "a", "b"]


async def test_task_inherits_parent_stack() -> None:
    """A task created inside a span sees that span as its current span."""
    SpanContextStack.push("parent")

    async def child() -> list[str]:
        return SpanContextStack.get_stack()

    assert await asyncio.create_task(child()) == ["parent"]


async def test_child_task_pushes_do_not_leak_back() -> None:
    """What a child task pushes or pops stays in the child task."""
    SpanContextStack.push("parent")

    async def child() -> tuple[str | None, list[str]]:
        SpanContextStack.push("child")
        inner = SpanContextStack.get_stack()
        popped_parent = (SpanContextStack.pop(), SpanContextStack.pop())
        return popped_parent[1], inner

    popped, seen_inside = await asyncio.create_task(child())
    assert seen_inside == ["parent", "child"]
    assert popped == "parent"
    assert SpanContextStack.get_stack() == ["parent"]


async def test_parent_pushes_after_task_creation_are_not_seen_by_task() -> None:
    """A task keeps the stack it was created with, even if the parent pushes later."""
    SpanContextStack.push("parent")
    created = asyncio.Event()
    parent_pushed = asyncio.Event()

    async def child() -> list[str]:
        created.set()
        await parent_pushed.wait()
        return SpanContextStack.get_stack()

    task = asyncio.create_task(child())
    await created.wait()
    SpanContextStack.push("later")
    parent_pushed.set()
    assert await task == ["parent"]
    assert SpanContextStack.get_stack() == ["parent", "later"]


async def test_concurrent_tasks_have_independent_stacks() -> None:
    """Two interleaved tasks never see each other's spans."""
    a_pushed = asyncio.Event()
    b_pushed = asyncio.Event()

    async def task_a() -> list[str]:
        SpanContextStack.push("a1")
        a_pushed.set()
        await b_pushed.wait()
        SpanContextStack.push("a2")
        return SpanContextStack.get_stack()

    async def task_b() -> tuple[list[str], list[str]]:
        await a_pushed.wait()
        before = SpanContextStack.get_stack()
        SpanContextStack.push("b1")
        b_pushed.set()
        return before, SpanContextStack.get_stack()

    result_a, (b_before, result_b) = await asyncio.gather(task_a(), task_b())
    assert result_a == ["a1", "a2"]
    assert b_before == []
    assert result_b == ["b1"]
    assert SpanContextStack.is_empty()
