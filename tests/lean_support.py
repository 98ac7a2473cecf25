"""Counting the requests a lean route (``prefactor_server.api.lean``) answers."""

from __future__ import annotations

from typing import Any

import pytest

from prefactor_server.api import lean


def count_lean_answers(monkeypatch: pytest.MonkeyPatch, route: tuple[str, str]) -> list[str]:
    """Wrap the lean route of ``route`` (method, path) so that every request it answers
    appends its path to the returned list (undone with the monkeypatch)."""
    served: list[str] = []
    endpoint = lean.ROUTES[route]

    async def counted(request: Any) -> Any:
        served.append(request.url.path)
        return await endpoint(request)

    monkeypatch.setitem(lean.ROUTES, route, counted)
    return served
