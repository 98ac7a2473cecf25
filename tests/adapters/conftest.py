"""A real ``prefactor serve`` on 127.0.0.1 for the adapter tests (one per module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefactor_server.testing import serve_process

from .support import TOKEN


@pytest.fixture(scope="module", name="served")
def fixture_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's URL; every scenario makes its own instances on it."""
    with serve_process(tmp_path_factory.mktemp("adapters") / "adapters.db", token=TOKEN) as url:
        yield url
