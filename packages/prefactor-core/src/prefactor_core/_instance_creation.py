"""``InstanceCreation``: what ``PrefactorCoreClient.create_agent_instance`` returns."""

from __future__ import annotations

from collections.abc import Coroutine, Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prefactor_core._client_base import InstanceRequest
from prefactor_core.managers.agent_instance import AgentInstanceHandle

if TYPE_CHECKING:
    from prefactor_core.client import PrefactorCoreClient

__all__ = ["InstanceCreation"]


class InstanceCreation(Coroutine[Any, Any, AgentInstanceHandle]):
    """What ``create_agent_instance`` returns: a coroutine that also works with ``async with``.

    ``await client.create_agent_instance(...)`` gives the ``AgentInstanceHandle``, and
    like any coroutine the result can be given to ``asyncio.create_task`` or
    ``asyncio.gather`` (as with the published SDK, whose method is a coroutine
    function). ``async with client.create_agent_instance(...) as instance`` gives the
    handle too, and finishes the instance on exit if the block did not.
    """

    __slots__ = ("_client", "_coroutine", "_handle", "_request")

    def __init__(self, client: PrefactorCoreClient, request: InstanceRequest) -> None:
        self._client = client
        self._request = request
        self._handle: AgentInstanceHandle | None = None
        self._coroutine: Coroutine[Any, Any, AgentInstanceHandle] | None = None

    def _run(self) -> Coroutine[Any, Any, AgentInstanceHandle]:
        if self._coroutine is None:
            self._coroutine = self._client._create_instance(self._request)
        return self._coroutine

    def __await__(self) -> Generator[Any, None, AgentInstanceHandle]:
        return self._run().__await__()

    def send(self, value: Any) -> Any:
        return self._run().send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if val is None and tb is None:
            return self._run().throw(typ)
        return self._run().throw(typ, val, tb)

    def close(self) -> None:
        if self._coroutine is not None:
            self._coroutine.close()

    async def __aenter__(self) -> AgentInstanceHandle:
        self._handle = await self._run()
        return await self._handle.__aenter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            await self._handle.__aexit__(exc_type, exc, tb)
